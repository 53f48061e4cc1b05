#!/usr/bin/env bash
# Creates .venv beside this script and installs the hashed, pinned
# requirements into it. Idempotent: when .venv already holds exactly this
# requirements.txt (recorded by its checksum) it returns at once. A lock keeps
# concurrent runs from building the same venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v python3 >/dev/null || {
	echo "python setup: python3 not found" >&2
	exit 1
}
exec 9>.setup.lock
flock 9
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && $(<"$stamp") == "$want" ]]; then
	exit 0
fi
# A half-built venv from an interrupted run is removed, not patched.
rm -rf .venv
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.txt >&2
echo "$want" >"$stamp"
