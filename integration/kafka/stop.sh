#!/usr/bin/env bash
# Stops the broker of KAFKA_RUN_DIR (see lib.sh): SIGTERM, then SIGKILL after
# KAFKA_STOP_TIMEOUT seconds. Stopping a broker that is not running succeeds.
# Data is kept, so start.sh brings the same broker back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! pid=$(kafka_pid); then
	rm -f "$KAFKA_PID_FILE"
	kafka_log "not running"
	exit 0
fi
kill -TERM "$pid" 2>/dev/null || true
if ! kafka_wait_gone "$pid" "$KAFKA_STOP_TIMEOUT"; then
	kafka_log "pid $pid ignored SIGTERM for ${KAFKA_STOP_TIMEOUT}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	kafka_wait_gone "$pid" 10 || {
		kafka_log "pid $pid survived SIGKILL"
		exit 1
	}
fi
kafka_wait_ports_free 10 || {
	kafka_log "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still taken after pid $pid exited"
	exit 1
}
rm -f "$KAFKA_PID_FILE"
kafka_log "stopped (pid $pid)"
