#!/usr/bin/env bash
# Installs the locked dependencies into node_modules beside this script with
# npm ci. Idempotent: when node_modules already matches this package-lock.json
# (recorded by its checksum) it returns at once. A lock keeps concurrent runs
# from installing into the same folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for tool in node npm; do
	command -v "$tool" >/dev/null || {
		echo "asyncapi-check setup: $tool not found" >&2
		exit 1
	}
done
exec 9>.setup.lock
flock 9
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
	exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >&2
echo "$want" >"$stamp"
