#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft, combined broker+controller)
# on 127.0.0.1 and waits until it answers metadata requests. Prints the
# bootstrap address (127.0.0.1:PORT) on stdout and nothing else.
#
#   start.sh [--fresh]
#
# --fresh deletes this broker's data first. Without it an existing data dir is
# reused, which is what restart.sh relies on. Starting a broker that already
# runs only prints its address. Settings: see lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fresh=0
for arg in "$@"; do
	case $arg in
	--fresh) fresh=1 ;;
	*)
		kafka_log "unknown argument $arg"
		exit 2
		;;
	esac
done

if pid=$(kafka_pid); then
	if ((fresh)); then
		kafka_log "broker $pid is running; stop it before --fresh"
		exit 1
	fi
	kafka_log "already running (pid $pid)"
	echo "127.0.0.1:$KAFKA_PORT"
	exit 0
fi

# A few seconds of grace: the previous broker on these ports may still be
# releasing its sockets.
if ! kafka_wait_ports_free 5; then
	kafka_log "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on 127.0.0.1 is taken; set KAFKA_PORT (and KAFKA_CONTROLLER_PORT)"
	exit 1
fi

# Jars: copied once per pom.xml content, so changing a version fetches anew
# and a warm start skips Maven entirely. The lock keeps parallel test
# packages from fetching into the same directory at once.
command -v java >/dev/null || {
	kafka_log "java not found (Kafka 4 needs Java 17+)"
	exit 1
}
mkdir -p "$KAFKA_CACHE_DIR"
pom_sum=$(sha256sum "$KAFKA_SCRIPT_DIR/pom.xml" | cut -c1-12)
libs=$KAFKA_CACHE_DIR/libs-$pom_sum
if [[ ! -f $libs/.complete ]]; then
	(
		flock 9
		if [[ ! -f $libs/.complete ]]; then
			command -v mvn >/dev/null || {
				kafka_log "mvn not found; it fetches the broker jars"
				exit 1
			}
			kafka_log "fetching broker jars into $libs"
			rm -rf "$libs.tmp"
			mvn -q -B -f "$KAFKA_SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
				-DincludeScope=runtime -DoutputDirectory="$libs.tmp" >&2
			touch "$libs.tmp/.complete"
			rm -rf "$libs"
			mv "$libs.tmp" "$libs"
		fi
	) 9>"$KAFKA_CACHE_DIR/.lock"
fi

# The readiness probe is Go (kafka-go), the client the bridge uses.
probe=$KAFKA_CACHE_DIR/bin/waitkafka
(cd "$KAFKA_SCRIPT_DIR" && go build -o "$probe" ./waitkafka)

if ((fresh)); then
	rm -rf "$KAFKA_RUN_DIR"
fi
mkdir -p "$KAFKA_RUN_DIR/data"

cat >"$KAFKA_RUN_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_RUN_DIR/data
# Topics are created by the sinks; a typo must fail, not invent a topic.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
# One partition instead of 50: the first consumer group comes up in well
# under a second on a 2-core machine.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a crash the controller keeps the dead incarnation registered until its
# session times out (9 s by default), and the restarted broker waits for that.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
EOF

if [[ -n ${KAFKA_EXTRA_PROPERTIES:-} ]]; then
	# Later keys win in a properties file: a test can redefine listeners to
	# add SASL or TLS ones, writing {{PORT}} and {{CTL}} for this broker's
	# client and controller ports.
	sed -e "s/{{PORT}}/$KAFKA_PORT/g" -e "s/{{CTL}}/$KAFKA_CONTROLLER_PORT/g" \
		"$KAFKA_EXTRA_PROPERTIES" >>"$KAFKA_RUN_DIR/server.properties"
fi

cat >"$KAFKA_RUN_DIR/log4j2.properties" <<EOF
appender.file.type=File
appender.file.name=file
appender.file.fileName=$KAFKA_RUN_DIR/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.state.name=state.change.logger
logger.state.level=WARN
EOF

cp="$libs/*"
if [[ ! -f $KAFKA_RUN_DIR/data/meta.properties ]]; then
	# A Kafka Uuid is 16 random bytes in unpadded URL-safe base64; making it
	# here saves a JVM start. Like Kafka's own Uuid.randomUuid, draw again
	# when it starts with "-": the format tool would read it as an option
	# (one start in 64 failed that way).
	cluster_id=-
	while [[ $cluster_id == -* ]]; do
		cluster_id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	read -r -a format_args <<<"${KAFKA_FORMAT_ARGS:-}"
	java -Xmx128m -cp "$cp" -Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
		kafka.tools.StorageTool format --standalone -t "$cluster_id" \
		-c "$KAFKA_RUN_DIR/server.properties" "${format_args[@]}" >"$KAFKA_RUN_DIR/format.log" 2>&1 || {
		kafka_log "formatting storage failed:"
		cat "$KAFKA_RUN_DIR/format.log" >&2
		exit 1
	}
fi

# nohup + closed stdio: the broker must not hold the caller's pipes open
# (a Go test reading start.sh's stdout would otherwise never see EOF).
nohup java -Xms64m -Xmx"$KAFKA_HEAP" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
	-Djava.awt.headless=true \
	-Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
	-cp "$cp" kafka.Kafka "$KAFKA_RUN_DIR/server.properties" \
	</dev/null >"$KAFKA_RUN_DIR/broker.out" 2>&1 &
pid=$!
echo "$pid" >"$KAFKA_PID_FILE"

if [[ -n ${KAFKA_WATCH_PID:-} ]]; then
	# setsid + closed stdio for the same reason as the broker itself.
	setsid bash -c '
		while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
		kill -9 "$2" 2>/dev/null
	' watchdog "$KAFKA_WATCH_PID" "$pid" </dev/null >/dev/null 2>&1 &
fi

if ! "$probe" ${KAFKA_PROBE_VERBOSE:+-v} -addr "127.0.0.1:$KAFKA_PORT" -timeout "${KAFKA_START_TIMEOUT}s" -pid "$pid"; then
	kafka_log "broker did not become ready; errors and last lines of $KAFKA_RUN_DIR/server.log, then broker.out:"
	grep -E '^\[[^]]*\] (ERROR|FATAL)' "$KAFKA_RUN_DIR/server.log" 2>/dev/null | head -n 10 >&2 || true
	tail -n 30 "$KAFKA_RUN_DIR/server.log" >&2 2>/dev/null || true
	tail -n 30 "$KAFKA_RUN_DIR/broker.out" >&2 2>/dev/null || true
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$KAFKA_PID_FILE"
	exit 1
fi
kafka_log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid, run dir $KAFKA_RUN_DIR)"
echo "127.0.0.1:$KAFKA_PORT"
