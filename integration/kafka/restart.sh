#!/usr/bin/env bash
# Restarts the broker of KAFKA_RUN_DIR (see lib.sh) on the same ports with the
# same data: stop.sh (or kill9.sh with --kill), then start.sh. Prints the
# bootstrap address like start.sh.
set -euo pipefail
dir=$(dirname "${BASH_SOURCE[0]}")
if [[ ${1:-} == --kill ]]; then
	"$dir/kill9.sh"
else
	"$dir/stop.sh"
fi
exec "$dir/start.sh"
