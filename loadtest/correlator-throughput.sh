#!/usr/bin/env bash
# `make bench-correlator`: the correlator's Kafka-to-Kafka throughput, measured
# on a backlog so that the correlator has the machine (and the broker) to itself.
#
#   loadtest/correlator-throughput.sh
#
# Builds release ingest, correlator and loadtest, starts a private Kafka (its
# own ports and state dir under target/bench-correlator, deleted again at the
# end), then:
#
#   1. Topology. An ingest (whose samples go to a throwaway topic) and a setup
#      correlator; `loadtest --topology` posts the nodes, pods and containers
#      of BENCH_SERIES synthetic series, and the script waits until the setup
#      correlator's join index holds all of them, i.e. until the materializer
#      has written them to the compacted components topic. Both stop.
#   2. Backlog. A fresh ingest writes `loadtest --max` for BENCH_SECONDS into
#      the backlog topic, no correlator running; `--verify` reads it back, so
#      the number of samples in the topic is known exactly. Ingest stops.
#   3. Measured runs, one per entry of BENCH_CONFIGS, each a fresh correlator
#      with a fresh consumer group (so it reads the backlog from the start),
#      output topics of its own, and an empty topology-raw topic of its own (so
#      its materializer has nothing to redo): "3" runs the built-in Kubernetes
#      rules (each sample binds to its container, pod and node: 3 bound records
#      per sample), "1" a BINDINGS_FILE with only the pod rule (1 per sample);
#      "3b" and "1b" run the same with the BENCH_BASELINE_CORRELATOR binary,
#      to compare two builds in one session (alternate them: "1b 1 1b 1");
#      "p" is no correlator but the Kafka write ceiling: the produce_ceiling
#      example (correlator/examples) writes as many bound records of the same
#      shape as the backlog has samples, through the join's producer path,
#      with nothing consumed or joined, into a topic of its own.
#      The clock starts when the correlator is ready (topology loaded, join
#      starting) and stops when its /metrics say every record of the backlog was
#      consumed and every sample bound (or unbound); then the script waits until
#      the output topics' end offsets hold every record the correlator produced,
#      stops the correlator (SIGTERM), and starts it once more on the same group
#      to check that it committed past the end (it must consume nothing).
#
# Per run: input samples/s, its ratio to the rate at which ingest filled the
# backlog, bound records/s, bound records per input record, bound samples/s
# (a sample bound to three components counts three times) and the bytes the
# broker stores per bound sample (lz4) against those per input sample (over
# the time from the first consumed record to the last sample joined), CPU seconds of the correlator
# (utime + stime from /proc, from ready to done) and its share of one core,
# of the broker, and of everything else on the machine, and the correlator's
# peak RSS (VmHWM), and the CPU of each of the correlator's threads (the join's,
# librdkafka's broker threads, the delivery reports). Markdown tables on stdout
# and in target/bench-correlator/report.md.
# Exit 1 when a run did not finish, left samples unbound, bound other than
# samples x bindings (samples in bound records; one record per sample for a
# baseline binary that does not count them), or had not committed past the end.
#
# Environment (defaults in brackets):
#   BENCH_SERIES               synthetic series (loadtest --series)                  [100000]
#   BENCH_SECONDS              seconds of `loadtest --max` filling the backlog       [10]
#   BENCH_PASSES               loadtest --passes: the ring of the fill, in passes    [100]
#   BENCH_CONNECTIONS          loadtest --connections for the fill                   [16]
#   BENCH_SAMPLES_PER_REQUEST  loadtest --samples-per-request                        [2000]
#   BENCH_CONFIGS              measured runs, in order: 3 (default rules), 1 (pod),
#                              3b, 1b (the same with the baseline binary),
#                              p (the Kafka write ceiling)                           ["3 1"]
#   BENCH_BASELINE_CORRELATOR  a correlator binary to compare with (another build)   [none]
#   BENCH_RUN_CONFIGS          one --config TOML file per BENCH_CONFIGS entry, or "-"
#                              for none (to compare [kafka.properties] in a session)  [none]
#   BENCH_PARTITIONS           partitions of every topic                             [8]
#   BENCH_PARTITION_BY_LABELS  ingest's PARTITION_BY_LABELS for the fill ("" spreads
#                              every series by all its labels)                  [ingest's default]
#   BENCH_TIMEOUT              seconds a measured run may take                       [900]
#   BENCH_COMMIT_CHECK         restart each run's correlator to check its commits    [1]
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT                                                [39892, 39893]
#
# The fill's ring holds BENCH_PASSES passes, each 15 s of samples time after the
# previous; when the fill sends more than the ring holds, the ring repeats and
# the backlog holds copies of samples (the join binds every copy; the counts
# below are copies). Keep BENCH_PASSES x 15 s under the correlator's 30 min
# HISTORY_MS, or the repeated passes come out as "late".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK="$REPO/target/bench-correlator"
KAFKA_SH="$REPO/deploy/local/kafka.sh"

SERIES="${BENCH_SERIES:-100000}"
FILL_SECONDS="${BENCH_SECONDS:-10}"
PASSES="${BENCH_PASSES:-100}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SAMPLES_PER_REQUEST="${BENCH_SAMPLES_PER_REQUEST:-2000}"
CONFIGS="${BENCH_CONFIGS:-3 1}"
PARTITIONS="${BENCH_PARTITIONS:-8}"
RUN_TIMEOUT="${BENCH_TIMEOUT:-900}"
COMMIT_CHECK="${BENCH_COMMIT_CHECK:-1}"
export KAFKA_PORT="${KAFKA_PORT:-39892}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39893}"
export KAFKA_STATE_DIR="$WORK/kafka"
BROKERS="127.0.0.1:$KAFKA_PORT"

API_KEY="bench-correlator-key-0123456789"
CLOCK_TICKS="$(getconf CLK_TCK)"
STAMP="$(date +%Y%m%d%H%M%S)"
PREFIX="bench-correlator.$STAMP"
CLUSTER="bench-correlator-cluster"
TOPIC_RAW="$PREFIX.topology-raw"
TOPIC_COMPONENTS="$PREFIX.topology-components"
TOPIC_BACKLOG="$PREFIX.samples"

BENCH_NAME=bench-correlator
# shellcheck source=loadtest/bench-lib.sh
source "$HERE/bench-lib.sh"

for tool in curl jq awk kcat; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (make deps installs it)"
done
BASELINE="${BENCH_BASELINE_CORRELATOR:-}"
read -r -a RUN_CONFIG_FILES <<<"${BENCH_RUN_CONFIGS:-}"
for file in "${RUN_CONFIG_FILES[@]}"; do
    [[ "$file" == - || -r "$file" ]] || die "BENCH_RUN_CONFIGS: $file is not a readable file"
done
for config in $CONFIGS; do
    [[ "$config" =~ ^([13]b?|p)$ ]] || die "BENCH_CONFIGS entries are 1, 3, 1b, 3b or p, not $config"
    if [[ "$config" == *b && ! -x "$BASELINE" ]]; then
        die "BENCH_CONFIGS has $config but BENCH_BASELINE_CORRELATOR (${BASELINE:-unset}) is not an executable"
    fi
done
((PASSES * 15 < 1800)) ||
    die "BENCH_PASSES × 15 s must stay under the correlator's 30 min history, or repeated passes are late"

# ---------------------------------------------------------------- helpers

# The correlator's counters from /metrics on port $1, as
# "consumed bound released unbound produced_bound produced_unbound components
# points_bound" (points_bound: samples in the bound records, one per sample
# and component; 0 from a correlator that does not count them, whose bound
# records hold one sample each).
correlator_counters() {
    curl -fs --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /^correlator_records_consumed_total\{kind="samples"\}/ { consumed = $2 }
        /^correlator_bound_points_total / { bound = $2 }
        /^correlator_released_points_total / { released = $2 }
        /^correlator_unbound_points_total\{/ { unbound += $2 }
        /^correlator_records_produced_total\{kind="bound"\}/ { produced_bound = $2 }
        /^correlator_records_produced_total\{kind="unbound"\}/ { produced_unbound = $2 }
        /^correlator_topology_components / { components = $2 }
        /^correlator_points_produced_total\{kind="bound"\}/ { points_bound = $2 }
        END { printf "%d %d %d %d %d %d %d %d\n", consumed, bound, released, unbound,
              produced_bound, produced_unbound, components, points_bound }'
}

# Bytes the broker stores for topic $1 (its log segments, as compressed).
topic_bytes() {
    du -scb "$KAFKA_STATE_DIR/data/$1"-* 2>/dev/null | awk 'END { print $1 + 0 }'
}

# ---------------------------------------------------------------- start

take_run_lock
arm_cleanup

mkdir -p "$WORK/runs"
rm -f "$WORK"/runs/* "$WORK"/*.log "$WORK/runs.tsv" "$WORK/threads.tsv" "$WORK"/*.threads-*

say "building release ingest, correlator and loadtest ..."
(cd "$REPO" && cargo build --release --bin ingest --bin correlator --bin loadtest --example produce_ceiling >&2)
# Copies: a build by someone else in the same tree must not swap a binary between runs.
mkdir -p "$WORK/bin"
for binary in loadtest ingest correlator; do cp "$REPO/target/release/$binary" "$WORK/bin/$binary"; done
cp "$REPO/target/release/examples/produce_ceiling" "$WORK/bin/produce_ceiling"
LOADTEST="$WORK/bin/loadtest"
INGEST="$WORK/bin/ingest"
CORRELATOR="$WORK/bin/correlator"
if [[ -n "$BASELINE" ]]; then
    cp "$BASELINE" "$WORK/bin/correlator-baseline"
    BASELINE="$WORK/bin/correlator-baseline"
fi
revision="$(code_revision)"

start_private_kafka

write_bench_keys
# Only the pod rule of the built-in Kubernetes rules: one binding per sample.
cat >"$WORK/bindings-pod.toml" <<'RULES'
[[rules]]
name = "k8s-pod"
template = "urn:kubernetes:/${cluster_name|kube_cluster_name|k8s_cluster_name}:${namespace|kube_namespace|k8s_namespace_name}:pod/${pod|pod_name|kube_pod_name|k8s_pod_name}"
RULES

ingest_port="$(free_port 39894)"
correlator_port="$(free_port $((ingest_port + 1)))"
INGEST_URL="http://127.0.0.1:$ingest_port/receiver/prometheus/api/v1/write"

# start_ingest SAMPLES_TOPIC LOG
start_ingest() {
    # Unset: ingest's own default; set (even empty): passed on.
    local -a partitioning=()
    if [[ -n "${BENCH_PARTITION_BY_LABELS+set}" ]]; then partitioning=("PARTITION_BY_LABELS=$BENCH_PARTITION_BY_LABELS"); fi
    env "${partitioning[@]}" KAFKA_BROKERS="$BROKERS" INGEST_LISTEN="127.0.0.1:$ingest_port" \
        API_KEYS_FILE="$WORK/keys.toml" TOPIC_PARTITIONS="$PARTITIONS" \
        TOPIC_SAMPLES="$1" TOPIC_TOPOLOGY_RAW="$TOPIC_RAW" RUST_LOG="info,librdkafka=warn" \
        "$INGEST" >>"$2" 2>&1 &
    ingest_pid=$!
    wait_ready "http://127.0.0.1:$ingest_port/readyz" "$ingest_pid" ingest "$2" 1500
}

# start_correlator NAME GROUP SAMPLES_TOPIC RAW_TOPIC BINDINGS_FILE(or "") [BINARY]
# (with the current run's run_arguments: its --config, if any)
run_arguments=()
start_correlator() {
    local name="$1" group="$2" samples="$3" raw="$4" bindings="$5" binary="${6:-$CORRELATOR}"
    local log="$WORK/$name.log"
    local -a extra=()
    if [[ -n "$bindings" ]]; then extra+=("BINDINGS_FILE=$bindings"); fi
    env KAFKA_BROKERS="$BROKERS" CORRELATOR_LISTEN="127.0.0.1:$correlator_port" \
        KAFKA_GROUP_ID="$group" TOPIC_PARTITIONS="$PARTITIONS" \
        TOPIC_SAMPLES="$samples" TOPIC_TOPOLOGY_RAW="$raw" TOPIC_TOPOLOGY="$TOPIC_COMPONENTS" \
        TOPIC_BOUND="$PREFIX.$name.bound" TOPIC_UNBOUND="$PREFIX.$name.unbound" \
        RUST_LOG="info,librdkafka=warn" "${extra[@]}" \
        "$binary" "${run_arguments[@]}" >>"$log" 2>&1 &
    correlator_pid=$!
}

# ---------------------------------------------------------------- 1. topology

say "1. topology: ingest on 127.0.0.1:$ingest_port, setup correlator on 127.0.0.1:$correlator_port"
start_ingest "$PREFIX.setup-samples" "$WORK/ingest-setup.log"
start_correlator setup "$PREFIX-setup" "$PREFIX.setup-samples" "$TOPIC_RAW" ""
wait_ready "http://127.0.0.1:$correlator_port/readyz" "$correlator_pid" correlator "$WORK/setup.log" 1500
# One request of samples goes to the throwaway topic; what matters is the snapshot.
"$LOADTEST" --url "$INGEST_URL" --api-key "$API_KEY" --rate 1000 --duration 1 \
    --series "$SERIES" --samples-per-request "$SAMPLES_PER_REQUEST" \
    --cluster-name "$CLUSTER" --run-id "$PREFIX-topology" --topology \
    --json "$WORK/runs/topology.json" >/dev/null 2>"$WORK/runs/topology.log" ||
    { tail -n 20 "$WORK/runs/topology.log" >&2; die "posting the topology failed; see $WORK/runs/topology.log"; }
components="$(sed -n 's/^posted \([0-9]*\) components.*/\1/p' "$WORK/runs/topology.log")"
[[ -n "$components" ]] || die "loadtest did not say how many components it posted; see $WORK/runs/topology.log"
say "posted $components components; waiting for the materializer"
topology_started="$(now)"
for _ in $(seq 1 3000); do
    read -r _ _ _ _ _ _ indexed _ < <(correlator_counters "$correlator_port" || echo "0 0 0 0 0 0 0 0")
    ((indexed >= components)) && break
    kill -0 "$correlator_pid" 2>/dev/null || die "the setup correlator exited; see $WORK/setup.log"
    sleep 0.1
done
((indexed >= components)) || die "the join index holds $indexed of $components components after 300 s; see $WORK/setup.log"
materialized_seconds="$(awk -v a="$topology_started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
say "all $components components in topology.components after ${materialized_seconds} s"
stop_pid "$correlator_pid"
correlator_pid=""
stop_pid "$ingest_pid"
ingest_pid=""

# ---------------------------------------------------------------- 2. backlog

say "2. backlog: loadtest --max for $FILL_SECONDS s into $TOPIC_BACKLOG, no correlator running"
start_ingest "$TOPIC_BACKLOG" "$WORK/ingest-fill.log"
fill_started="$(now)"
"$LOADTEST" --url "$INGEST_URL" --api-key "$API_KEY" --max --duration "$FILL_SECONDS" \
    --connections "$CONNECTIONS" --series "$SERIES" --samples-per-request "$SAMPLES_PER_REQUEST" \
    --passes "$PASSES" --cluster-name "$CLUSTER" --run-id "$PREFIX-fill" \
    --verify --brokers "$BROKERS" --topic "$TOPIC_BACKLOG" \
    --json "$WORK/runs/fill.json" >/dev/null 2>"$WORK/runs/fill.log" &
loadtest_pid=$!
fill_rc=0
wait "$loadtest_pid" || fill_rc=$?
loadtest_pid=""
stop_pid "$ingest_pid"
ingest_pid=""
[[ -s "$WORK/runs/fill.json" ]] || { tail -n 20 "$WORK/runs/fill.log" >&2; die "the fill wrote no summary; see $WORK/runs/fill.log"; }
((fill_rc == 0)) || say "warning: the fill's loadtest exited $fill_rc (see $WORK/runs/fill.log)"
read -r fill_rate fill_acked fill_found fill_missing fill_duplicated fill_wrapped < <(jq -r '
    [ .totals.samples_per_second, .totals.samples_acknowledged, .verify.counts.found,
      .verify.counts.missing, .verify.counts.duplicated,
      (if .totals.requests_sent > .settings.ring_requests then 1 else 0 end) ] | @tsv' "$WORK/runs/fill.json")
backlog_records="$(end_offsets "$TOPIC_BACKLOG")" || die "cannot read the end offsets of $TOPIC_BACKLOG"
expected="$fill_found"
backlog_bytes="$(topic_bytes "$TOPIC_BACKLOG")"
say "backlog: $expected samples in $backlog_records records (fill: $(printf '%.0f' "$fill_rate") samples/s, $fill_acked acknowledged, missing $fill_missing, duplicated $fill_duplicated, ring wrapped: $fill_wrapped; $(awk -v a="$fill_started" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s with the read-back)"
((expected > 0)) || die "the backlog is empty"

# ---------------------------------------------------------------- 3. measured runs

: >"$WORK/runs.tsv"
: >"$WORK/threads.tsv"
: >"$WORK/ceiling.tsv"
run=0
for config in $CONFIGS; do
    run=$((run + 1))
    name="run$run"
    run_config="${RUN_CONFIG_FILES[$((run - 1))]:--}"
    run_arguments=()
    if [[ "$run_config" != - ]]; then
        run_arguments=(--config "$run_config")
        say "$name: --config $run_config"
    fi
    if [[ "$config" == p ]]; then
        sleep 3
        load_before="$(cut -d' ' -f1 /proc/loadavg)"
        say "3. $name: Kafka write ceiling, $expected bound records through the join's producer path (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        broker_before="$(process_ticks "$kafka_pid")"
        machine_before="$(machine_ticks)"
        env KAFKA_BROKERS="$BROKERS" TOPIC_PARTITIONS="$PARTITIONS" TOPIC_BOUND="$PREFIX.$name.bound" \
            CEILING_RECORDS="$expected" CEILING_BATCH="$((expected / backlog_records))" CEILING_CLOCK_TICKS="$CLOCK_TICKS" \
            RUST_LOG="warn,librdkafka=warn" "$WORK/bin/produce_ceiling" "${run_arguments[@]}" >"$WORK/runs/$name.txt" 2>"$WORK/$name.log" ||
            die "produce_ceiling failed; see $WORK/$name.log"
        broker_ticks=$(($(process_ticks "$kafka_pid") - broker_before))
        machine_busy_ticks=$(($(machine_ticks) - machine_before))
        written="$(end_offsets "$PREFIX.$name.bound" || echo 0)"
        # name records seconds producer_cpu broker_cpu machine_cpu written load
        awk -v OFS='\t' -v ticks="$CLOCK_TICKS" -v name="$name" -v bc="$broker_ticks" -v mc="$machine_busy_ticks" \
            -v written="$written" -v load="$load_before" '{
            print name, $2, $4, $8, bc / ticks, mc / ticks, written, load
        }' "$WORK/runs/$name.txt" >>"$WORK/ceiling.tsv"
        say "$name: $(cat "$WORK/runs/$name.txt"); topic holds $written records"
        continue
    fi
    bindings=""
    rules="built-in Kubernetes rules"
    if [[ "$config" == 1* ]]; then
        bindings="$WORK/bindings-pod.toml"
        rules="pod rule only"
    fi
    binary="$CORRELATOR"
    if [[ "$config" == *b ]]; then
        binary="$BASELINE"
        rules="$rules, baseline binary"
    fi
    group="$PREFIX-$name"
    raw_idle="$PREFIX.$name.topology-raw-idle"
    sleep 3
    load_before="$(cut -d' ' -f1 /proc/loadavg)"
    say "3. $name: $rules (${config%b} binding(s) per sample), group $group (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    start_correlator "$name" "$group" "$TOPIC_BACKLOG" "$raw_idle" "$bindings" "$binary"
    started="$(now)"
    wait_ready "http://127.0.0.1:$correlator_port/readyz" "$correlator_pid" correlator "$WORK/$name.log" 3000
    t_ready="$(now)"
    correlator_before="$(process_ticks "$correlator_pid")"
    thread_ticks "$correlator_pid" >"$WORK/$name.threads-ready"
    broker_before="$(process_ticks "$kafka_pid")"
    machine_before="$(machine_ticks)"
    t_first=""
    done_ok=0
    deadline=$(($(date +%s) + RUN_TIMEOUT))
    while (($(date +%s) < deadline)); do
        kill -0 "$correlator_pid" 2>/dev/null || break
        read -r consumed bound released unbound produced_bound produced_unbound _ < <(correlator_counters "$correlator_port" || echo "0 0 0 0 0 0 0")
        if [[ -z "$t_first" ]] && ((consumed > 0)); then t_first="$(now)"; fi
        if ((consumed >= backlog_records && bound + released + unbound >= expected)); then
            done_ok=1
            break
        fi
        sleep 0.2
    done
    t_done="$(now)"
    correlator_ticks=$(($(process_ticks "$correlator_pid" || echo "$correlator_before") - correlator_before))
    thread_ticks "$correlator_pid" >"$WORK/$name.threads-done"
    # Per thread from ready to done: "name<TAB>tid<TAB>CPU seconds", busiest first.
    awk -F'\t' -v OFS='\t' -v ticks="$CLOCK_TICKS" -v name="$name" '
        FNR == NR { before[$1] = $3; next }
        { cpu = ($3 - before[$1]) / ticks; if (cpu >= 0.05) print name, $2 " (" $1 ")", cpu }' \
        "$WORK/$name.threads-ready" "$WORK/$name.threads-done" | sort -t$'\t' -k3,3 -g -r >>"$WORK/threads.tsv"
    broker_ticks=$(($(process_ticks "$kafka_pid") - broker_before))
    machine_busy_ticks=$(($(machine_ticks) - machine_before))
    read -r consumed bound released unbound produced_bound produced_unbound _ < <(correlator_counters "$correlator_port" || echo "0 0 0 0 0 0 0")
    rss="$(peak_rss_mib "$correlator_pid" 2>/dev/null || echo 0)"
    ((done_ok == 1)) || say "$name: NOT DONE after $RUN_TIMEOUT s: consumed $consumed of $backlog_records records, $((bound + released + unbound)) of $expected samples"
    # Every record produced must be in the output topics (acknowledged) before we stop it.
    written_bound=0
    written_unbound=0
    written_deadline=$(($(date +%s) + 60))
    while (($(date +%s) < written_deadline)); do
        written_bound="$(end_offsets "$PREFIX.$name.bound" || echo 0)"
        written_unbound="$(end_offsets "$PREFIX.$name.unbound" || echo 0)"
        ((written_bound >= produced_bound && written_unbound >= produced_unbound)) && break
        sleep 0.2
    done
    t_written="$(now)"
    # Offsets are committed every second: give it two, then stop it (it commits again on the way out).
    sleep 2
    read -r _ _ _ _ produced_bound_final _ _ points_bound < <(correlator_counters "$correlator_port" || echo "0 0 0 0 0 0 0 0")
    bound_bytes="$(topic_bytes "$PREFIX.$name.bound")"
    kill -TERM "$correlator_pid"
    exit_rc=0
    wait "$correlator_pid" || exit_rc=$?
    correlator_pid=""
    replayed="-"
    if [[ "$COMMIT_CHECK" == 1 && "$done_ok" == 1 ]]; then
        start_correlator "$name" "$group" "$TOPIC_BACKLOG" "$raw_idle" "$bindings" "$binary"
        wait_ready "http://127.0.0.1:$correlator_port/readyz" "$correlator_pid" correlator "$WORK/$name.log" 3000
        sleep 5
        read -r replayed _ < <(correlator_counters "$correlator_port" || echo "-1")
        stop_pid "$correlator_pid"
        correlator_pid=""
    fi
    # "No offset stored": a commit with nothing new to commit (the restart, the idle materializer).
    errors="$(grep -E 'WARN|ERROR' "$WORK/$name.log" | grep -cv 'No offset stored' || true)"
    # name config expected records ready_s first_s done_s written_s consumed bound released unbound
    # produced_bound produced_unbound written_bound written_unbound correlator_cpu broker_cpu machine_cpu
    # rss load done_ok exit_rc replayed errors produced_bound_final points_bound bound_bytes
    awk -v OFS='\t' -v ticks="$CLOCK_TICKS" \
        -v name="$name" -v config="$config" -v expected="$expected" -v records="$backlog_records" \
        -v started="$started" -v ready="$t_ready" -v first="${t_first:-$t_done}" -v done="$t_done" -v written="$t_written" \
        -v consumed="$consumed" -v bound="$bound" -v released="$released" -v unbound="$unbound" \
        -v pb="$produced_bound" -v pu="$produced_unbound" -v wb="$written_bound" -v wu="$written_unbound" \
        -v cc="$correlator_ticks" -v bc="$broker_ticks" -v mc="$machine_busy_ticks" \
        -v rss="$rss" -v load="$load_before" -v ok="$done_ok" -v rc="$exit_rc" -v replayed="$replayed" \
        -v errors="$errors" -v pbf="$produced_bound_final" -v points="${points_bound:-0}" -v bytes="$bound_bytes" 'BEGIN {
        print name, config, expected, records, ready - started, first - ready, done - first, written - done,
            consumed, bound, released, unbound, pb, pu, wb, wu, cc / ticks, bc / ticks, mc / ticks,
            rss, load, ok, rc, replayed, errors, pbf, (points > 0 ? points : pb), bytes
    }' >>"$WORK/runs.tsv"
    say "$name: $(awk -F'\t' 'END { printf "%.0f samples/s, %.0f bound records/s over %.1f s; correlator %.1f CPU s; %d bound + %d unbound of %d samples; restart consumed %s records",
        $3 / $7, $13 / $7, $7, $17, $10 + $11, $12, $3, $24 }' "$WORK/runs.tsv")"
done

# ---------------------------------------------------------------- report

fill_partitioning="${BENCH_PARTITION_BY_LABELS-the default}"
fill_partitioning="\"${fill_partitioning}\""

{
    echo "Backlog: \`loadtest --max --duration $FILL_SECONDS --connections $CONNECTIONS --series $SERIES" \
        "--samples-per-request $SAMPLES_PER_REQUEST --passes $PASSES\` (remote-write 1.0, 10 labels per series) through ingest" \
        "into $PARTITIONS partitions (PARTITION_BY_LABELS: $fill_partitioning) with no correlator running: $expected samples in $backlog_records records" \
        "(fill at $(printf '%.0f' "$fill_rate") samples/s; ring wrapped: $([[ "$fill_wrapped" == 1 ]] && echo yes || echo no))," \
        "stored as $backlog_bytes bytes ($(awk -v b="$backlog_bytes" -v n="$expected" 'BEGIN { printf "%.1f", b / n }') bytes per sample, lz4)." \
        "Topology: $components components (nodes, pods, containers), materialized in ${materialized_seconds} s." \
        "Code: $revision${BASELINE:+; baseline binary: BENCH_BASELINE_CORRELATOR=$BENCH_BASELINE_CORRELATOR}. $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB." \
        "Each run: a fresh correlator and consumer group reading the whole backlog (at-least-once, protobuf output)." \
        "Rates over the time from the first consumed record to the last sample joined; CPU from ready (topology loaded) to that moment;" \
        "\"others\": the rest of the machine's busy CPU (other jobs, the script's polling, hypervisor steal)."
    echo
    echo "| run | bindings | samples | start to ready s | join s | input samples/s | × fill rate | bound records/s | bound records / input record | bound samples / s | stored bytes / bound sample | correlator CPU s (% of a core) | samples per CPU-s | broker CPU s | others CPU s | peak RSS MiB | unbound | committed | load avg |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v fill="$fill_rate" '{
        window = $6 + $7
        others = $19 - $17 - $18
        committed = ($24 == "-" ? "not checked" : ($24 == 0 ? "yes" : sprintf("no (%s records again)", $24)))
        printf "| %s | %s | %.2f M | %.1f | %.1f%s | %.0f k | %.2f | %.0f k | %.2f | %.0f k | %.1f | %.1f (%.0f %%) | %.0f k | %.1f | %.1f | %d | %d | %s | %s |\n",
            $1, (substr($2, 1, 1) == 3 ? "container, pod, node" : "pod") ($2 ~ /b$/ ? " (baseline binary)" : ""), $3 / 1e6, $5, $7, ($22 == 1 ? "" : " (not done)"),
            $3 / $7 / 1000, $3 / $7 / (fill > 0 ? fill : 1), $13 / $7 / 1000, $13 / ($4 > 0 ? $4 : 1),
            $27 / $7 / 1000, $28 / ($27 > 0 ? $27 : 1),
            $17, 100 * $17 / (window > 0 ? window : 1), $3 / ($17 > 0 ? $17 : 1) / 1000,
            $18, (others > 0 ? others : 0), $20, $12, committed, $21
    }' "$WORK/runs.tsv"
    echo
    if [[ -s "$WORK/ceiling.tsv" ]]; then
        echo "Kafka write ceiling (\`p\`: the produce_ceiling example, bound records of the same shape through the join's producer path, nothing consumed or joined):"
        echo
        echo "| run | records | seconds | records/s | producer CPU s (% of a core) | records per producer CPU-s | broker CPU s | others CPU s | in the topic | load avg |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        awk -F'\t' '{
            others = $6 - $4 - $5
            printf "| %s | %.2f M | %.1f | %.0f k | %.1f (%.0f %%) | %.0f k | %.1f | %.1f | %d | %s |\n",
                $1, $2 / 1e6, $3, $2 / $3 / 1000, $4, 100 * $4 / $3, $2 / ($4 > 0 ? $4 : 1) / 1000,
                $5, (others > 0 ? others : 0), $7, $8
        }' "$WORK/ceiling.tsv"
        echo
    fi
    if [[ -s "$WORK/threads.tsv" ]]; then
        echo "CPU per thread of each run's correlator, from ready to done (threads of librdkafka: rdk:main, rdk:broker<N> for each client's connection, the consumer's and the producer's alike; \"producer pollin\" serves the delivery reports; the join runs on \"correlator\"), and per input sample:"
        echo
        echo "| run | thread (tid) | CPU s | µs per sample |"
        echo "|---|---|---|---|"
        awk -F'\t' 'FNR == NR { samples[$1] = $3; next }
            { printf "| %s | %s | %.1f | %.2f |\n", $1, $2, $3, 1e6 * $3 / (samples[$1] > 0 ? samples[$1] : 1) }' \
            "$WORK/runs.tsv" "$WORK/threads.tsv"
        echo
    fi
    awk -F'\t' '{
        if ($15 != $13 || $16 != $14) printf "- %s: output topics hold %d bound and %d unbound records, the correlator produced %d and %d.\n", $1, $15, $16, $13, $14
        if ($23 != 0) printf "- %s: the correlator exited %d on SIGTERM.\n", $1, $23
        if ($25 > 0) printf "- %s: %d WARN/ERROR lines in its log (other than \"No offset stored\").\n", $1, $25
    }' "$WORK/runs.tsv"
} | tee "$WORK/report.md"

# A run that did not finish, left samples unbound, bound a sample other than
# `config` times, or did not commit past the end is not a measurement.
if ! awk -F'\t' '
    $22 != 1 || $12 != 0 || $27 != substr($2, 1, 1) * $3 || $15 != $13 || ($24 != "-" && $24 != 0) { bad = 1 }
    END { exit bad }' "$WORK/runs.tsv" ||
    ! awk -F'\t' '$7 != $2 { bad = 1 } END { exit bad }' "$WORK/ceiling.tsv"; then
    say "some runs are not valid (not done, unbound samples, bound samples != samples × bindings, or not committed); see $WORK/runs.tsv and $WORK/run*.log"
    exit 1
fi
say "report: $WORK/report.md"
