#!/usr/bin/env bash
# Stops the broker of KAFKA_RUN_DIR (see lib.sh): SIGTERM, then SIGKILL after
# KAFKA_STOP_TIMEOUT seconds. Stopping a broker that is not running succeeds.
# Data is kept, so start.sh brings the same broker back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kafka_stop TERM "$KAFKA_STOP_TIMEOUT" stopped
