#!/usr/bin/env bash
# Kills the broker of KAFKA_RUN_DIR (see lib.sh) with SIGKILL, as a crash or a
# power cut would. Data is kept; start.sh brings the broker back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! pid=$(kafka_pid); then
	rm -f "$KAFKA_PID_FILE"
	kafka_log "not running"
	exit 0
fi
kill -KILL "$pid" 2>/dev/null || true
kafka_wait_gone "$pid" 10 || {
	kafka_log "pid $pid survived SIGKILL"
	exit 1
}
kafka_wait_ports_free 10 || {
	kafka_log "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still taken after pid $pid exited"
	exit 1
}
rm -f "$KAFKA_PID_FILE"
kafka_log "killed (pid $pid)"
