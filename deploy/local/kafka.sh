#!/usr/bin/env bash
# deploy/local/kafka.sh start|stop|status — single-node Apache Kafka 3.9.1 (KRaft).
#
# One JVM acting as broker and controller, listening on
# 127.0.0.1:$JUNCTION_KAFKA_PORT (PLAINTEXT) and
# 127.0.0.1:$JUNCTION_KAFKA_CONTROLLER_PORT (controller).
# Jars come from Maven Central via deploy/local/kafka/pom.xml, copied once into
# $STATE/kafka/libs (a stamp with the pom's hash skips Maven afterwards).
# Data in $STATE/kafka/data, log in $STATE/logs/kafka.log, pid in $STATE/run/kafka.pid.
set -euo pipefail
JL_TAG=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$LIB_DIR/kafka/pom.xml"
K_DIR="$STATE/kafka"
K_LIBS="$K_DIR/libs"
K_DATA="$K_DIR/data"
K_CONF="$K_DIR/server.properties"
K_LOG4J="$K_DIR/log4j.properties"
K_TOOLS_LOG4J="$K_DIR/tools-log4j.properties"
K_CLUSTER_ID="$K_DIR/cluster-id"
K_PIDFILE="$RUN_DIR/kafka.pid"
K_LOG="$LOG_DIR/kafka.log"
K_OUT="$LOG_DIR/kafka.out"
K_PORT="$JUNCTION_KAFKA_PORT"
K_CTRL_PORT="$JUNCTION_KAFKA_CONTROLLER_PORT"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
START_DEADLINE=90
STOP_TIMEOUT=30
READY_LINE="Kafka Server started"

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 ||
    die "java not found (Debian package openjdk-17-jre-headless); run deploy/local/deps.sh"
  local major
  major=$(java_major "$JAVA") || die "could not read the version of $JAVA"
  ((major >= 17)) || die "Java 17 or newer is required, $JAVA is Java $major"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

# ensure_jars — copy the pom's dependencies into $K_LIBS unless the stamp matches.
ensure_jars() {
  local hash
  hash=$(pom_hash)
  if [[ -f $K_LIBS/.pom-sha256 && $(<"$K_LIBS/.pom-sha256") == "$hash" ]] &&
    compgen -G "$K_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  need_cmd mvn maven
  log "resolving the Kafka jars with Maven (first run only, needs Maven Central)"
  local tmp="$K_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  mvn -B -q -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$LOG_DIR/maven.log" 2>&1 ||
    { rm -rf "$tmp"; tail_log "$LOG_DIR/maven.log"; die "Maven could not resolve the jars in $POM"; }
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null ||
    { rm -rf "$tmp"; die "Maven ran but no kafka_2.13 jar is in $tmp"; }
  printf '%s\n' "$hash" >"$tmp/.pom-sha256"
  rm -rf "$K_LIBS"
  mv "$tmp" "$K_LIBS"
  log "$(compgen -G "$K_LIBS/*.jar" | wc -l) jars in $K_LIBS"
}

write_config() {
  cat >"$K_CONF" <<EOF
# Written by deploy/local/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$K_CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$K_PORT,CONTROLLER://127.0.0.1:$K_CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$K_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$K_DATA
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
EOF
  cat >"$K_LOG4J" <<EOF
# Written by deploy/local/kafka.sh. Broker log: INFO, rolling 10 MB x 3.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$K_LOG
log4j.appender.file.MaxFileSize=10MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
  cat >"$K_TOOLS_LOG4J" <<'EOF'
# Written by deploy/local/kafka.sh. Storage tool: warnings to stderr only.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

storage_tool() {
  "$JAVA" -cp "$K_LIBS/*" -Dlog4j.configuration="file:$K_TOOLS_LOG4J" \
    kafka.tools.StorageTool "$@"
}

# format_storage — once: pick a cluster id (kept in a file) and format log.dirs.
format_storage() {
  [[ -f $K_DATA/meta.properties ]] && return 0
  if [[ ! -s $K_CLUSTER_ID ]]; then
    storage_tool random-uuid >"$K_CLUSTER_ID.tmp" || die "StorageTool random-uuid failed"
    mv "$K_CLUSTER_ID.tmp" "$K_CLUSTER_ID"
  fi
  log "formatting $K_DATA (cluster id $(<"$K_CLUSTER_ID"))"
  mkdir -p "$K_DATA"
  storage_tool format -t "$(<"$K_CLUSTER_ID")" -c "$K_CONF" >>"$K_OUT" 2>&1 ||
    { tail_log "$K_OUT"; die "StorageTool format failed"; }
}

running_pid() { pid_from_file "$K_PIDFILE" kafka.Kafka "$K_CONF"; }

# adopt_orphan — a broker of ours running without a pid file gets one again.
adopt_orphan() {
  local pid
  pid=$(pids_matching kafka.Kafka "$K_CONF" | head -n 1)
  [[ -n $pid ]] || return 1
  printf '%s\n' "$pid" >"$K_PIDFILE"
  log "found a running broker without pid file (pid $pid)"
}

file_size() { if [[ -f $1 ]]; then stat -c %s "$1"; else echo 0; fi; }

# ready_since OFFSET — the broker logged READY_LINE after byte OFFSET of the log.
ready_since() {
  local offset=$1
  [[ -f $K_LOG ]] || return 1
  (($(file_size "$K_LOG") >= offset)) || offset=0 # the log rolled over meanwhile
  grep -q "$READY_LINE" < <(tail -c "+$((offset + 1))" "$K_LOG")
}

# show_since FILE OFFSET LINES — what FILE got since OFFSET, last LINES lines.
show_since() {
  local file=$1 offset=$2 lines=$3 text
  text=$(tail -c "+$((offset + 1))" "$file" 2>/dev/null | tail -n "$lines")
  [[ -n $text ]] || return 0
  printf -- '--- %s (this start, last %s lines) ---\n%s\n---\n' "$file" "$lines" "$text" >&2
}

# wait_ready PID LOG_OFFSET OUT_OFFSET — until the port answers and the log
# says started; on failure show what this start logged.
wait_ready() {
  local pid=$1 log_off=$2 out_off=$3 deadline=$((SECONDS + START_DEADLINE))
  until port_open 127.0.0.1 "$K_PORT" && ready_since "$log_off"; do
    if ! pid_alive "$pid"; then
      rm -f "$K_PIDFILE"
      show_since "$K_LOG" "$log_off" 30
      show_since "$K_OUT" "$out_off" 30
      die "the broker exited during start-up (output above; full log $K_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      show_since "$K_LOG" "$log_off" 30
      die "the broker (pid $pid) is not ready after $START_DEADLINE s; it is left running, stop it with $0 stop"
    fi
    sleep 0.25
  done
}

# launch — start the broker JVM; JUNCTION_KAFKA_JAVA_OPTS adds/overrides options.
launch() {
  local -a extra
  read -r -a extra <<<"${JUNCTION_KAFKA_JAVA_OPTS:-}"
  start_bg "$K_PIDFILE" "$K_OUT" "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$K_LOG4J" -Dkafka.logs.dir="$LOG_DIR" "${extra[@]}" \
    -cp "$K_LIBS/*" kafka.Kafka "$K_CONF"
}

cmd_start() {
  take_lock kafka
  check_java
  mkdir -p "$K_DIR"
  local pid
  if pid=$(running_pid) || { adopt_orphan && pid=$(running_pid); }; then
    port_open 127.0.0.1 "$K_PORT" || wait_ready "$pid" 0 "$(file_size "$K_OUT")"
    log "already running on 127.0.0.1:$K_PORT (pid $pid)"
    return 0
  fi
  local p
  for p in "$K_PORT" "$K_CTRL_PORT"; do
    port_open 127.0.0.1 "$p" && die "port $p is already used by another process" \
      "(set JUNCTION_KAFKA_PORT / JUNCTION_KAFKA_CONTROLLER_PORT)"
  done
  ensure_jars
  write_config
  format_storage
  local t0=$SECONDS log_off out_off
  log_off=$(file_size "$K_LOG")
  out_off=$(file_size "$K_OUT")
  launch
  pid=$(<"$K_PIDFILE")
  wait_ready "$pid" "$log_off" "$out_off"
  log "started on 127.0.0.1:$K_PORT in $((SECONDS - t0)) s (pid $pid)"
}

cmd_stop() {
  take_lock kafka
  running_pid >/dev/null || adopt_orphan || true
  stop_pidfile broker "$K_PIDFILE" "$STOP_TIMEOUT" kafka.Kafka "$K_CONF"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    log "running on 127.0.0.1:$K_PORT (pid $pid)"
  else
    log "not running"
    return 1
  fi
}

main() {
  case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 start|stop|status" ;;
  esac
}

main "$@"
