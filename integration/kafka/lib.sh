# Shared settings of start.sh, stop.sh, kill9.sh and restart.sh; sourced, not run.
#
# Environment (all optional):
#   KAFKA_PORT             client (PLAINTEXT) port, default 19092
#   KAFKA_CONTROLLER_PORT  KRaft controller port, default KAFKA_PORT+1
#   KAFKA_CACHE_DIR        where the broker jars are kept, default <this dir>/.cache
#   KAFKA_RUN_DIR          config, data, logs and PID of this broker,
#                          default <this dir>/.run/<KAFKA_PORT>
#   KAFKA_HEAP             JVM heap, default 384m
#   KAFKA_START_TIMEOUT    seconds start.sh waits for the broker to answer, default 90
#   KAFKA_STOP_TIMEOUT     seconds stop.sh waits after SIGTERM before SIGKILL, default 20
#   KAFKA_WATCH_PID        when set, the broker is killed once that process is gone
#                          (tests pass their own PID so a killed test leaks no JVM)
#   KAFKA_EXTRA_PROPERTIES a file appended to server.properties (extra listeners:
#                          SASL, TLS), with {{PORT}} and {{CTL}} replaced by the
#                          client and controller ports
#   KAFKA_FORMAT_ARGS      extra words for the first storage format, such as
#                          --add-scram SCRAM-SHA-256=[name=u,password=p]

KAFKA_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR:-$KAFKA_SCRIPT_DIR/.cache}
KAFKA_RUN_DIR=${KAFKA_RUN_DIR:-$KAFKA_SCRIPT_DIR/.run/$KAFKA_PORT}
KAFKA_HEAP=${KAFKA_HEAP:-384m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-20}
KAFKA_PID_FILE=$KAFKA_RUN_DIR/kafka.pid

kafka_log() { echo "kafka: $*" >&2; }

# kafka_pid prints the PID of this run dir's broker when it is alive. The
# command line is checked too, so a PID reused by another process after a
# crash is never signalled.
kafka_pid() {
	local pid
	[[ -f $KAFKA_PID_FILE ]] || return 1
	pid=$(<"$KAFKA_PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$KAFKA_RUN_DIR/server.properties" || return 1
	echo "$pid"
}

# kafka_wait_gone waits up to $2 seconds for process $1 to exit.
kafka_wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		# A zombie has exited; only its parent can reap it.
		[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
		((SECONDS >= deadline)) && return 1
		sleep 0.1
	done
}

kafka_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kafka_wait_ports_free waits up to $1 seconds until nothing listens on the
# broker's ports. A killed JVM keeps its sockets until its last thread has
# exited, which can be a second or more after kill -0 stops seeing it.
kafka_wait_ports_free() {
	local deadline=$((SECONDS + $1)) p
	for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
		while kafka_port_busy "$p"; do
			((SECONDS >= deadline)) && return 1
			sleep 0.1
		done
	done
}

# kafka_stop stops this run dir's broker with signal $1 (TERM or KILL). After
# TERM it waits $2 seconds before a KILL; either way it returns once the
# process is gone and the ports are free, saying $3 ("stopped", "killed").
# A broker that is not running is fine.
kafka_stop() {
	local signal=$1 grace=$2 done_word=$3 pid
	if ! pid=$(kafka_pid); then
		rm -f "$KAFKA_PID_FILE"
		kafka_log "not running"
		return 0
	fi
	kill -"$signal" "$pid" 2>/dev/null || true
	if [[ $signal != KILL ]] && ! kafka_wait_gone "$pid" "$grace"; then
		kafka_log "pid $pid ignored SIG$signal for ${grace}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	kafka_wait_gone "$pid" 10 || {
		kafka_log "pid $pid survived SIGKILL"
		return 1
	}
	kafka_wait_ports_free 10 || {
		kafka_log "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still taken after pid $pid exited"
		return 1
	}
	rm -f "$KAFKA_PID_FILE"
	kafka_log "$done_word (pid $pid)"
}
