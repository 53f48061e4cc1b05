#!/usr/bin/env bash
# Kills the broker of KAFKA_RUN_DIR (see lib.sh) with SIGKILL, as a crash or a
# power cut would. Data is kept; start.sh brings the broker back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kafka_stop KILL 0 killed
