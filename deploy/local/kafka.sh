#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, broker+controller in one JVM) for
# local development and tests. The broker jars come from Maven Central through
# deploy/local/pom.xml (cached in ~/.m2); nothing but Java 17+ and Maven is needed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/local/kafka.sh start|stop|status|reset

  start   start the broker in the background; returns once it answers on
          127.0.0.1:$KAFKA_PORT (exit 0; also 0 when it already runs)
  stop    stop the broker (SIGTERM, then SIGKILL after 30 s); 0 when not running
  status  print "running" (exit 0) or "not running" (exit 3)
  reset   stop the broker and delete its data dir (topics, offsets)

Environment:
  KAFKA_PORT             PLAINTEXT listener port         (default 9092)
  KAFKA_CONTROLLER_PORT  KRaft controller listener port  (default 9093)
  KAFKA_STATE_DIR        libs/, data/, server.properties, kafka.log, kafka.pid
                         (default <repo>/target/kafka-local)
  KAFKA_HEAP_OPTS        JVM heap options                (default -Xms256m -Xmx1g)
  KAFKA_OPTS             extra JVM options               (default none)
  KAFKA_SERVER_PROPERTIES  broker properties over the template's, as
                         space-separated name=value pairs (default none)
  KAFKA_START_TIMEOUT    seconds to wait for the broker  (default 120)
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
STATE="${KAFKA_STATE_DIR:-$REPO/target/kafka-local}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT=30

LIBS="$STATE/libs"
DATA="$STATE/data"
CONF="$STATE/server.properties"
LOG="$STATE/kafka.log"
OUT="$STATE/kafka.out" # JVM stdout/stderr: WARN+ console logging and crashes
PIDFILE="$STATE/kafka.pid"
CLUSTER_ID_FILE="$STATE/cluster.id"
POM="$HERE/pom.xml"

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "kafka.sh: $*"; }
die() {
    echo "kafka.sh: error: $*" >&2
    exit 1
}

# Only needed by start; stop/status/reset must work without them.
require_tools() {
    command -v "$JAVA" >/dev/null 2>&1 ||
        die "java not found; install Java 17+ (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
    local ver major
    ver="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${ver%%.*}"
    [[ "$major" == 1 ]] && major="$(echo "$ver" | cut -d. -f2)" # "1.8.0_x" style
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot tell the Java version from '$JAVA -version'"
    ((major >= 17)) || die "Kafka 4.x needs Java 17+, found Java $ver ($JAVA)"
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found; install Maven 3.8+ (e.g. apt-get install maven): it fetches the Kafka jars"
}

# Serializes start/stop/reset of one state dir (e.g. parallel `make` targets).
take_lock() {
    [[ -d "$STATE" ]] || return 0
    exec 9>"$STATE/.lock"
    flock -w 180 9 || die "another kafka.sh holds $STATE/.lock"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True when pid $1 is a broker started by this script with this state dir.
is_our_broker() {
    local pid="$1" cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"kafka.Kafka $CONF"* ]]
}

# Prints the broker's pid, if it runs. Falls back to scanning processes so a
# lost pid file does not leave an unstoppable broker behind.
broker_pid() {
    local pid
    if [[ -f "$PIDFILE" ]]; then
        pid="$(cat "$PIDFILE" 2>/dev/null || true)"
        if is_our_broker "$pid"; then
            echo "$pid"
            return 0
        fi
    fi
    for pid in $(pgrep -f 'kafka\.Kafka' 2>/dev/null || true); do
        if is_our_broker "$pid"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Resolves the broker jars into $LIBS unless they are there for this very pom.
ensure_libs() {
    local sum
    sum="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$LIBS/.pom.sha256" && "$(cat "$LIBS/.pom.sha256")" == "$sum" ]]; then
        return 0
    fi
    say "resolving Kafka jars with Maven (first run downloads them into ~/.m2) ..."
    # Copy into a temp dir and swap, so an interrupted run never leaves half a classpath.
    local tmp="$STATE/libs.tmp"
    rm -rf "$tmp"
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STATE/mvn.log" 2>&1; then
        tail -n 40 "$STATE/mvn.log" >&2
        die "Maven could not resolve the Kafka jars (full output: $STATE/mvn.log)"
    fi
    echo "$sum" >"$tmp/.pom.sha256"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    say "jars in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) files)"
}

# Writes server.properties from the template (every start, so port changes apply).
write_config() {
    local tpl
    tpl="$(cat "$HERE/server.properties.template")"
    tpl="${tpl//@KAFKA_PORT@/"$KAFKA_PORT"}"
    tpl="${tpl//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
    tpl="${tpl//@DATA_DIR@/"$DATA"}"
    printf '%s\n' "$tpl" >"$CONF"
    # Later lines win in a Java properties file.
    local properties=() property
    read -r -a properties <<<"${KAFKA_SERVER_PROPERTIES:-}"
    for property in "${properties[@]}"; do
        printf '%s\n' "$property" >>"$CONF"
    done
}

# Formats the KRaft storage once; meta.properties marks a formatted log dir.
ensure_formatted() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
        "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
            -Dkafka.logs.dir="$STATE" kafka.tools.StorageTool random-uuid | tail -n 1 >"$CLUSTER_ID_FILE.tmp"
        mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
    fi
    local id
    id="$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")"
    say "formatting storage in $DATA (cluster id $id)"
    mkdir -p "$DATA"
    if ! "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        -Dkafka.logs.dir="$STATE" kafka.tools.StorageTool format \
        -t "$id" -c "$CONF" --ignore-formatted >"$STATE/format.log" 2>&1; then
        cat "$STATE/format.log" >&2
        die "formatting the storage failed"
    fi
}

cmd_start() {
    local pid
    mkdir -p "$STATE"
    take_lock
    if pid="$(broker_pid)"; then
        say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    require_tools
    local port
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$port"; then
            die "port 127.0.0.1:$port is already in use by another process; stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
        fi
    done
    ensure_libs
    write_config
    ensure_formatted

    # Remember where the log ends so only lines of this start count as "started".
    local log_offset=0
    [[ -f "$LOG" ]] && log_offset="$(wc -c <"$LOG")"

    local heap=() extra=()
    read -r -a heap <<<"$KAFKA_HEAP_OPTS"
    read -r -a extra <<<"$KAFKA_OPTS"
    say "starting Kafka on 127.0.0.1:$KAFKA_PORT (state: $STATE)"
    # setsid+nohup: the broker outlives the calling shell and its terminal.
    setsid nohup "$JAVA" "${heap[@]}" \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$STATE" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        "${extra[@]}" -cp "$LIBS/*" kafka.Kafka "$CONF" \
        </dev/null >"$OUT" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PIDFILE"

    # Ready = our JVM lives, the port accepts connections and the broker logged
    # that it finished starting (it does so only after it is unfenced).
    local waited=0 t0=$SECONDS
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "Kafka exited during startup; last log lines:" >&2
            tail -n 30 "$LOG" "$OUT" >&2 2>/dev/null || true
            rm -f "$PIDFILE"
            exit 1
        fi
        if [[ -f "$LOG" ]]; then
            local size
            size="$(wc -c <"$LOG")"
            ((size < log_offset)) && log_offset=0 # log rolled over meanwhile
            # Process substitution, not a pipe: with pipefail, grep -q quitting
            # early would SIGPIPE tail and turn a match into a failure.
            if grep -q 'Kafka Server started' < <(tail -c +"$((log_offset + 1))" "$LOG") &&
                port_open "$KAFKA_PORT"; then
                break
            fi
        fi
        waited=$((SECONDS - t0))
        if ((waited >= START_TIMEOUT)); then
            say "Kafka did not come up within ${START_TIMEOUT}s; last log lines:" >&2
            tail -n 40 "$LOG" "$OUT" >&2 2>/dev/null || true
            say "stopping the half-started broker (pid $pid)" >&2
            cmd_stop >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    say "Kafka is up on 127.0.0.1:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
}

cmd_stop() {
    local pid
    take_lock
    if ! pid="$(broker_pid)"; then
        rm -f "$PIDFILE"
        say "not running"
        return 0
    fi
    say "stopping Kafka (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null || true
    local i
    # Controlled shutdown normally takes a few seconds.
    for ((i = 0; i < STOP_TIMEOUT * 2; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
    fi
    kill -0 "$pid" 2>/dev/null && die "pid $pid did not exit"
    rm -f "$PIDFILE"
    if port_open "$KAFKA_PORT"; then
        die "Kafka (pid $pid) stopped but something still listens on 127.0.0.1:$KAFKA_PORT"
    fi
    say "stopped"
}

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        echo "kafka.sh: running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    echo "kafka.sh: not running"
    return 3
}

cmd_reset() {
    cmd_stop
    rm -rf "$DATA"
    say "deleted $DATA (storage is formatted again on the next start)"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
