#!/usr/bin/env bash
# Run a real Apache Kafka (KRaft) for local development and tests: one node
# (broker+controller in one JVM) by default, or a cluster of KAFKA_NODES. The
# broker jars come from Maven Central through deploy/local/pom.xml (cached in
# ~/.m2); nothing but Java 17+ and Maven is needed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/local/kafka.sh start|stop|status|reset
       deploy/local/kafka.sh stop-node|start-node|kill-node N

  start        start every node in the background; returns once each answers
               on its port (exit 0; also 0 when they already run); prints the
               bootstrap list
  stop         stop every node (SIGTERM, then SIGKILL after 30 s); 0 when none runs
  status       print each node's state; exit 0 when all run, 3 otherwise
  reset        stop every node and delete its data dir (topics, offsets)
  stop-node N  stop node N (1..KAFKA_NODES) with SIGTERM, as stop does
  start-node N start node N and wait until it answers
  kill-node N  SIGKILL node N: no controlled shutdown, nothing flushed

Environment:
  KAFKA_NODES            nodes of the cluster                 (default 1)
  KAFKA_PORT             PLAINTEXT listener port of node 1    (default 9092)
  KAFKA_CONTROLLER_PORT  KRaft controller port of node 1      (default KAFKA_PORT+1)
                         node N listens on both plus 2*(N-1)
  KAFKA_HOSTS            listen address of each node, space-separated
                         (default 127.0.0.1 for every node)
  KAFKA_NETNS            network namespace of each node, space-separated, made
                         by the caller (default none: the caller's own)
  KAFKA_STATE_DIR        libs/, cluster.id and the nodes' files: data/,
                         server.properties, kafka.log, kafka.pid in the state
                         dir itself for one node, in node1/, node2/, ... for more
                         (default <repo>/target/kafka-local)
  KAFKA_HEAP_OPTS        JVM heap options of each node  (default -Xms256m -Xmx1g,
                         in a cluster -Xms128m -Xmx512m)
  KAFKA_OPTS             extra JVM options               (default none)
  KAFKA_SERVER_PROPERTIES  node properties over the template's, as
                         space-separated name=value pairs (default none)
  KAFKA_START_TIMEOUT    seconds to wait for the nodes   (default 120)

A cluster's nodes are each broker and controller (KRaft combined mode): three
JVMs instead of six fit on a developer machine beside the pipeline, and losing
a node costs a broker and a voter at once, as in a small Strimzi cluster of
dual-role nodes. Its topics default to replication factor 3 (at most the node
count), min.insync.replicas=2 and no unclean leader election.
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

NODES="${KAFKA_NODES:-1}"
if ! [[ "$NODES" =~ ^[1-9][0-9]?$ ]]; then
    echo "kafka.sh: error: KAFKA_NODES must be 1 to 99, not '$NODES'" >&2
    exit 2
fi
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
STATE="${KAFKA_STATE_DIR:-$REPO/target/kafka-local}"
if ((NODES == 1)); then
    KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
else
    KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
fi
KAFKA_OPTS="${KAFKA_OPTS:-}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT=30
HOSTS=()
NETNS=()
read -r -a HOSTS <<<"${KAFKA_HOSTS:-}"
read -r -a NETNS <<<"${KAFKA_NETNS:-}"

LIBS="$STATE/libs"
CLUSTER_ID_FILE="$STATE/cluster.id"
POM="$HERE/pom.xml"

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "kafka.sh: $*"; }
die() {
    echo "kafka.sh: error: $*" >&2
    exit 1
}

node_host() { echo "${HOSTS[$1 - 1]:-127.0.0.1}"; }
node_port() { echo "$((KAFKA_PORT + 2 * ($1 - 1)))"; }
node_controller_port() { echo "$((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1)))"; }

# Points NODE_DIR, DATA, CONF, LOG, OUT, PIDFILE, HOST, PORT and CONTROLLER_PORT
# at node $1. A single node keeps its files in the state dir itself, as before
# clusters existed.
select_node() {
    NODE="$1"
    if ((NODES == 1)); then
        NODE_DIR="$STATE"
    else
        NODE_DIR="$STATE/node$NODE"
    fi
    DATA="$NODE_DIR/data"
    CONF="$NODE_DIR/server.properties"
    LOG="$NODE_DIR/kafka.log"
    OUT="$NODE_DIR/kafka.out" # JVM stdout/stderr: WARN+ console logging and crashes
    PIDFILE="$NODE_DIR/kafka.pid"
    HOST="$(node_host "$NODE")"
    PORT="$(node_port "$NODE")"
    CONTROLLER_PORT="$(node_controller_port "$NODE")"
}

# Comma-separated, one entry per node: "bootstrap" gives host:port (the
# clients' bootstrap.servers), "voters" id@host:controller-port (the quorum).
node_list() {
    local node list=()
    for ((node = 1; node <= NODES; node++)); do
        if [[ "$1" == voters ]]; then
            list+=("$node@$(node_host "$node"):$(node_controller_port "$node")")
        else
            list+=("$(node_host "$node"):$(node_port "$node")")
        fi
    done
    local IFS=,
    echo "${list[*]}"
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

# True when something accepts TCP connections on $1:$2.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# True when pid $1 is a broker started by this script with the selected node's config.
is_our_broker() {
    local pid="$1" cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"kafka.Kafka $CONF"* ]]
}

# Prints the selected node's pid, if it runs. Falls back to scanning processes
# so a lost pid file does not leave an unstoppable broker behind.
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

# Writes the selected node's server.properties from the template (every start,
# so port changes apply).
write_config() {
    local tpl
    mkdir -p "$NODE_DIR"
    tpl="$(cat "$HERE/server.properties.template")"
    tpl="${tpl//@NODE_ID@/"$NODE"}"
    tpl="${tpl//@QUORUM_VOTERS@/"$(node_list voters)"}"
    tpl="${tpl//@KAFKA_HOST@/"$HOST"}"
    tpl="${tpl//@KAFKA_PORT@/"$PORT"}"
    tpl="${tpl//@KAFKA_CONTROLLER_PORT@/"$CONTROLLER_PORT"}"
    tpl="${tpl//@DATA_DIR@/"$DATA"}"
    printf '%s\n' "$tpl" >"$CONF"
    # Later lines win in a Java properties file.
    if ((NODES > 1)); then
        local replicas=$((NODES < 3 ? NODES : 3))
        local min_isr=$((replicas > 1 ? replicas - 1 : 1))
        cat >>"$CONF" <<EOF

# A cluster: every topic, internal ones included, on $replicas replicas, and an
# acks=all write needs $min_isr of them in sync. A replica that was out of sync
# never becomes leader (that would lose acknowledged writes).
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
unclean.leader.election.enable=false
EOF
    fi
    local properties=() property
    read -r -a properties <<<"${KAFKA_SERVER_PROPERTIES:-}"
    for property in "${properties[@]}"; do
        printf '%s\n' "$property" >>"$CONF"
    done
}

# The cluster id every node is formatted with, made once per state dir.
ensure_cluster_id() {
    [[ -s "$CLUSTER_ID_FILE" ]] && return 0
    "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        -Dkafka.logs.dir="$STATE" kafka.tools.StorageTool random-uuid | tail -n 1 >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
}

# Formats the selected node's KRaft storage once; meta.properties marks a formatted log dir.
ensure_formatted() {
    [[ -f "$DATA/meta.properties" ]] && return 0
    ensure_cluster_id
    local id
    id="$(tr -d '[:space:]' <"$CLUSTER_ID_FILE")"
    say "formatting storage in $DATA (cluster id $id)"
    mkdir -p "$DATA"
    if ! "$JAVA" -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        -Dkafka.logs.dir="$NODE_DIR" kafka.tools.StorageTool format \
        -t "$id" -c "$CONF" --ignore-formatted >"$NODE_DIR/format.log" 2>&1; then
        cat "$NODE_DIR/format.log" >&2
        die "formatting the storage of node $NODE failed"
    fi
}

# Where each launched node's log ended before its start: only lines after it
# count as "started".
declare -A LOG_OFFSET=()

# Launches the selected node in the background (not waiting for it), unless
# it runs. Prints nothing but progress.
launch_node() {
    local pid
    if pid="$(broker_pid)"; then
        say "node $NODE already running (pid $pid) on $HOST:$PORT"
        return 0
    fi
    local port
    for port in "$PORT" "$CONTROLLER_PORT"; do
        if port_open "$HOST" "$port"; then
            die "port $HOST:$port is already in use by another process; stop it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
        fi
    done
    write_config
    ensure_formatted

    LOG_OFFSET[$NODE]=0
    [[ -f "$LOG" ]] && LOG_OFFSET[$NODE]="$(wc -c <"$LOG")"

    local heap=() extra=() netns=()
    read -r -a heap <<<"$KAFKA_HEAP_OPTS"
    read -r -a extra <<<"$KAFKA_OPTS"
    local namespace="${NETNS[$NODE - 1]:-}"
    # ip netns exec execs the JVM itself: $! stays the broker's pid.
    [[ -n "$namespace" ]] && netns=(ip netns exec "$namespace")
    say "starting Kafka node $NODE on $HOST:$PORT${namespace:+ in network namespace $namespace} (state: $NODE_DIR)"
    # setsid+nohup: the broker outlives the calling shell and its terminal.
    setsid nohup "${netns[@]}" "$JAVA" "${heap[@]}" \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$NODE_DIR" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
        "${extra[@]}" -cp "$LIBS/*" kafka.Kafka "$CONF" \
        </dev/null >"$OUT" 2>&1 9>&- &
    echo "$!" >"$PIDFILE"
}

# Waits until every node in $@ launched by launch_node is ready: its JVM lives,
# its port accepts connections and it logged that it finished starting (only
# after it is unfenced). Stops them all if one does not come up.
wait_started() {
    local t0=$SECONDS pending=("$@")
    while ((${#pending[@]} > 0)); do
        local still=() node
        for node in "${pending[@]}"; do
            select_node "$node"
            local pid
            pid="$(cat "$PIDFILE" 2>/dev/null || true)"
            if ! kill -0 "$pid" 2>/dev/null; then
                say "Kafka node $node exited during startup; last log lines:" >&2
                tail -n 30 "$LOG" "$OUT" >&2 2>/dev/null || true
                rm -f "$PIDFILE"
                stop_nodes "$@" >&2 || true
                exit 1
            fi
            local offset="${LOG_OFFSET[$node]:-}"
            if [[ -z "$offset" ]]; then
                continue # was already running
            fi
            if [[ -f "$LOG" ]]; then
                local size
                size="$(wc -c <"$LOG")"
                ((size < offset)) && offset=0 && LOG_OFFSET[$node]=0 # log rolled over meanwhile
                # Process substitution, not a pipe: with pipefail, grep -q quitting
                # early would SIGPIPE tail and turn a match into a failure.
                if grep -q 'Kafka Server started' < <(tail -c +"$((offset + 1))" "$LOG") &&
                    port_open "$HOST" "$PORT"; then
                    say "node $node is up on $HOST:$PORT (pid $pid, $((SECONDS - t0))s)"
                    continue
                fi
            fi
            still+=("$node")
        done
        pending=("${still[@]}")
        ((${#pending[@]} == 0)) && break
        if ((SECONDS - t0 >= START_TIMEOUT)); then
            for node in "${pending[@]}"; do
                select_node "$node"
                say "Kafka node $node did not come up within ${START_TIMEOUT}s; last log lines:" >&2
                tail -n 40 "$LOG" "$OUT" >&2 2>/dev/null || true
            done
            say "stopping the half-started nodes" >&2
            stop_nodes "$@" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

all_nodes() { seq 1 "$NODES"; }

start_nodes() {
    mkdir -p "$STATE"
    take_lock
    require_tools
    ensure_libs
    local node
    for node in "$@"; do
        select_node "$node"
        launch_node
    done
    # A cluster's nodes finish starting only together (they need a quorum).
    wait_started "$@"
}

# SIGTERMs the nodes in $@ together (controlled shutdown normally takes a few
# seconds), then SIGKILLs whatever still runs after STOP_TIMEOUT.
stop_nodes() {
    local node pid pids=() nodes=()
    for node in "$@"; do
        select_node "$node"
        if pid="$(broker_pid)"; then
            say "stopping node $node (pid $pid) ..."
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            nodes+=("$node")
        else
            rm -f "$PIDFILE"
            ((NODES == 1)) && say "not running" || say "node $node not running"
        fi
    done
    local i alive
    for ((i = 0; i < STOP_TIMEOUT * 2; i++)); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2>/dev/null && die "pid $pid did not exit"
    done
    for node in "${nodes[@]}"; do
        select_node "$node"
        rm -f "$PIDFILE"
        if port_open "$HOST" "$PORT"; then
            die "node $node stopped but something still listens on $HOST:$PORT"
        fi
        say "node $node stopped"
    done
    return 0
}

cmd_start() {
    # shellcheck disable=SC2046
    start_nodes $(all_nodes)
    say "bootstrap servers: $(node_list bootstrap)"
}

cmd_stop() {
    take_lock
    # shellcheck disable=SC2046
    stop_nodes $(all_nodes)
}

cmd_status() {
    local node pid running=0
    for node in $(all_nodes); do
        select_node "$node"
        local name="node $node "
        ((NODES == 1)) && name=""
        if pid="$(broker_pid)"; then
            echo "kafka.sh: ${name}running (pid $pid) on $HOST:$PORT"
            running=$((running + 1))
        else
            echo "kafka.sh: ${name}not running"
        fi
    done
    ((running == NODES)) && return 0
    return 3
}

cmd_reset() {
    cmd_stop
    local node
    for node in $(all_nodes); do
        select_node "$node"
        rm -rf "$DATA"
        say "deleted $DATA (storage is formatted again on the next start)"
    done
}

# Checks the N of a *-node command.
node_argument() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= NODES)) ||
        die "expected a node number 1..$NODES, got '${1:-}'"
    echo "$1"
}

cmd_kill_node() {
    local node pid
    node="$(node_argument "${1:-}")"
    take_lock
    select_node "$node"
    if ! pid="$(broker_pid)"; then
        say "node $node not running"
        return 0
    fi
    kill -KILL "$pid"
    local i
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -0 "$pid" 2>/dev/null && die "pid $pid did not exit"
    rm -f "$PIDFILE"
    say "node $node killed (SIGKILL, pid $pid)"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
start-node)
    node="$(node_argument "${2:-}")"
    start_nodes "$node"
    ;;
stop-node)
    node="$(node_argument "${2:-}")"
    take_lock
    stop_nodes "$node"
    ;;
kill-node) cmd_kill_node "${2:-}" ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
