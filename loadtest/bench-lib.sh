# Shell helpers shared by the benchmark scripts of loadtest/ (sourced, not run).
# The sourcing script sets BENCH_NAME (for messages) first.

say() { echo "${BENCH_NAME:-bench}: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# The first port from $1 up on which nothing listens.
free_port() {
    local port="$1"
    while port_open "$port"; do port=$((port + 1)); done
    echo "$port"
}

# CPU time (user + system) of a process so far, in clock ticks. Fails when
# the process is gone, or a zombie (exited, not yet reaped).
process_ticks() {
    local stat fields
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # The command name (field 2) may hold spaces; fields after it start at 3.
    read -r -a fields <<<"${stat##*) }"
    [[ "${fields[0]}" != Z ]] || return 1
    echo $((fields[11] + fields[12]))
}

# CPU time of each thread of process $1 so far, one line per thread:
# "tid<TAB>thread name<TAB>clock ticks" (user + system).
thread_ticks() {
    local task stat fields
    for task in /proc/"$1"/task/*; do
        stat="$(cat "$task/stat" 2>/dev/null)" || continue
        read -r -a fields <<<"${stat##*) }"
        printf '%s\t%s\t%s\n' "${task##*/}" "$(cat "$task/comm" 2>/dev/null)" $((fields[11] + fields[12]))
    done
}

# Busy CPU time of the whole machine (every core) so far, in clock ticks.
machine_ticks() {
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# Peak resident memory of a process, in MiB.
peak_rss_mib() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

# Waits until `curl` gets a 2xx from $1, while pid $2 lives ($5 tries of 0.1 s).
wait_ready() {
    local url="$1" pid="$2" name="$3" log="$4" tries="${5:-600}"
    for _ in $(seq 1 "$tries"); do
        curl -fs -m 5 -o /dev/null "$url" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$name did not become ready at $url; see $log"
}

# Starts the private broker of $KAFKA_SH / $KAFKA_STATE_DIR afresh, stopping
# one an interrupted run left behind; sets kafka_started=1 (for the caller's
# cleanup) and kafka_pid. The broker does not inherit fd 8, where a caller may
# hold its run lock.
start_private_kafka() {
    if "$KAFKA_SH" status >/dev/null 2>&1; then "$KAFKA_SH" stop 8>&- >&2; fi
    kafka_started=1
    "$KAFKA_SH" start 8>&- >&2
    kafka_pid="$(cat "$KAFKA_STATE_DIR/kafka.pid")"
}

now() { date +%s.%N; }

# Sum of the end offsets of every partition of topic $1 (records it holds), on
# $BROKERS, for the $PARTITIONS partitions the script made it with.
end_offsets() {
    local topic="$1" arguments=() partition
    for ((partition = 0; partition < PARTITIONS; partition++)); do
        arguments+=(-t "$topic:$partition:-1")
    done
    timeout 10 kcat -b "$BROKERS" -Q "${arguments[@]}" 2>/dev/null |
        awk '/ offset / { sum += $NF; n++ } END { if (n == 0) exit 1; print sum + 0 }'
}

# SIGTERM to process $1 (if any), and waits for it.
stop_pid() {
    local pid="$1"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    wait "$pid" 2>/dev/null || true
}

# One run of the calling script at a time (a second would stop this one's
# broker and clear its files): fd 8 holds target/$BENCH_NAME.lock; the broker
# is started with it closed, so a broker left behind by a killed run does not
# hold it.
take_run_lock() {
    mkdir -p "$REPO/target"
    exec 8>"$REPO/target/$BENCH_NAME.lock"
    flock -n 8 || die "another $BENCH_NAME run holds $REPO/target/$BENCH_NAME.lock; wait for it to finish"
}

# The EXIT trap of a script with a private broker: stops the processes whose
# pids are in $loadtest_pid, $correlator_pid and $ingest_pid, then resets the
# broker (stop and delete its data: gigabytes of records do not stay behind).
stop_everything() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in ${loadtest_pid:-} ${correlator_pid:-} ${ingest_pid:-}; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in ${loadtest_pid:-} ${correlator_pid:-} ${ingest_pid:-}; do wait "$pid" 2>/dev/null || true; done
    if [[ "${kafka_started:-0}" == 1 ]]; then "$KAFKA_SH" reset 8>&- >&2 || true; fi
    exit "$rc"
}

# The revision measured: HEAD's short hash, marked when the code differs from it.
code_revision() {
    echo "$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- correlator ingest proto loadtest || echo '+uncommitted changes')"
}

# $WORK/keys.toml: one tenant, "bench", whose key is $API_KEY.
write_bench_keys() {
    cat >"$WORK/keys.toml" <<KEYS
[[keys]]
tenant = "bench"
key = "$API_KEY"
KEYS
}

# No process started yet; from here on, stop_everything runs on exit.
arm_cleanup() {
    ingest_pid=""
    correlator_pid=""
    loadtest_pid=""
    kafka_started=0
    trap stop_everything EXIT
    trap 'exit 130' INT TERM
}
