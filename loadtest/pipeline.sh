#!/usr/bin/env bash
# `make bench-pipeline`: the whole pipeline on this machine, loadtest → ingest →
# Kafka → correlator (built-in Kubernetes rules) → Kafka, held at a rate, then
# every acknowledged sample checked out of the join.
#
# Builds release ingest, correlator and loadtest, starts a private Kafka (its
# own ports and state dir under target/bench-pipeline, deleted at the end), posts
# the topology of BENCH_SERIES synthetic series (nodes, pods, containers: each
# sample binds three times) and waits until the correlator's join index holds it.
# Then, for each rate of BENCH_RATES in turn (highest first), with topics and a
# consumer group of its own: BENCH_WARMUP s of unrecorded load, then
# `loadtest --rate R --duration BENCH_DURATION --verify --verify-outputs`. The
# run is *sustained* when, once the load stops, the correlator has consumed
# everything ingest wrote within BENCH_CATCH_UP_LIMIT s; the script stops at the
# first sustained rate.
#
# Per run: acknowledged samples/s, request latency p50/p99 (open loop: from each
# request's due time), answers by status, missing and duplicated samples in
# metrics.samples, samples out of the join (bound, unbound, missing), the
# correlator's catch-up time after the load, the end-to-end lag (from a samples
# record's Kafka timestamp, set when ingest writes it, to the acknowledgement of
# its bound records: correlator_end_to_end_lag_seconds, p50/p99 interpolated in
# its buckets), and the CPU seconds of ingest, correlator, broker and generator
# over the load (from /proc), with peak RSS. Markdown on stdout and in
# target/bench-pipeline/report.md.
#
#   BENCH_RATES                samples/s to try, highest first           ["400000 200000 100000"]
#   BENCH_DURATION             seconds of the measured load              [60]
#   BENCH_WARMUP               seconds of unrecorded load first          [10]
#   BENCH_CATCH_UP_LIMIT       seconds after the load for "sustained"    [5]
#   BENCH_SERIES               synthetic series (and their topology)     [100000]
#   BENCH_CONNECTIONS          HTTP connections                          [16]
#   BENCH_SAMPLES_PER_REQUEST  samples per request                       [2000]
#   BENCH_PARTITIONS           partitions of every topic                 [8]
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT                                    [39992, 39993]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK="$REPO/target/bench-pipeline"
KAFKA_SH="$REPO/deploy/local/kafka.sh"
BENCH_NAME=bench-pipeline
# shellcheck source=loadtest/bench-lib.sh
source "$HERE/bench-lib.sh"

RATES="${BENCH_RATES:-400000 200000 100000}"
DURATION="${BENCH_DURATION:-60}"
WARMUP="${BENCH_WARMUP:-10}"
CATCH_UP_LIMIT="${BENCH_CATCH_UP_LIMIT:-5}"
SERIES="${BENCH_SERIES:-100000}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SAMPLES_PER_REQUEST="${BENCH_SAMPLES_PER_REQUEST:-2000}"
PARTITIONS="${BENCH_PARTITIONS:-8}"
export KAFKA_PORT="${KAFKA_PORT:-39992}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39993}"
export KAFKA_STATE_DIR="$WORK/kafka"
BROKERS="127.0.0.1:$KAFKA_PORT"
API_KEY="bench-pipeline-key-0123456789"
CLOCK_TICKS="$(getconf CLK_TCK)"
STAMP="$(date +%Y%m%d%H%M%S)"
PREFIX="bench-pipeline.$STAMP"
CLUSTER="bench-pipeline-cluster"
TOPIC_COMPONENTS="$PREFIX.topology-components"

for tool in curl jq awk kcat; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (make deps installs it)"
done

# Samples records the correlator on port $1 has consumed, and the components in its index.
correlator_progress() {
    curl -fs --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /^correlator_records_consumed_total\{kind="samples"\}/ { consumed = $2 }
        /^correlator_topology_components / { components = $2 }
        END { printf "%d %d\n", consumed, components }'
}

# The end-to-end lag histogram of the correlator on port $1: "le count" lines.
lag_buckets() {
    curl -fs --max-time 5 "http://127.0.0.1:$1/metrics" |
        sed -n 's/^correlator_end_to_end_lag_seconds_bucket{le="\([^"]*\)"} \([0-9.e+]*\)$/\1 \2/p'
}

# Quantile $3 of the observations between bucket files $1 (before) and $2
# (after), interpolated linearly within its bucket; "> 300" past the last one.
lag_quantile() {
    awk -v q="$3" '
        FNR == NR { before[$1] = $2; next }
        { le[++n] = $1; count[n] = $2 - before[$1] }
        END {
            total = count[n]
            if (total <= 0) { print "-"; exit }
            target = q * total; low = 0; below = 0
            for (i = 1; i <= n; i++) {
                if (count[i] >= target) {
                    if (le[i] == "+Inf") { printf "> %s\n", le[i - 1]; exit }
                    inside = count[i] - below
                    share = inside > 0 ? (target - below) / inside : 1
                    printf "%.3f\n", low + share * (le[i] - low)
                    exit
                }
                low = le[i]; below = count[i]
            }
        }' "$1" "$2"
}

take_run_lock
arm_cleanup

mkdir -p "$WORK/runs" "$WORK/bin"
rm -f "$WORK"/runs/* "$WORK"/*.log "$WORK/runs.tsv"

say "building release ingest, correlator and loadtest ..."
(cd "$REPO" && cargo build --release --bin ingest --bin correlator --bin loadtest >&2)
for binary in loadtest ingest correlator; do cp "$REPO/target/release/$binary" "$WORK/bin/$binary"; done
LOADTEST="$WORK/bin/loadtest"
revision="$(code_revision)"

start_private_kafka
write_bench_keys
ingest_port="$(free_port 39994)"
correlator_port="$(free_port $((ingest_port + 1)))"
INGEST_URL="http://127.0.0.1:$ingest_port/receiver/prometheus/api/v1/write"

# start_ingest SAMPLES_TOPIC RAW_TOPIC LOG
start_ingest() {
    KAFKA_BROKERS="$BROKERS" INGEST_LISTEN="127.0.0.1:$ingest_port" \
        API_KEYS_FILE="$WORK/keys.toml" TOPIC_PARTITIONS="$PARTITIONS" \
        TOPIC_SAMPLES="$1" TOPIC_TOPOLOGY_RAW="$2" RUST_LOG="info,librdkafka=warn" \
        "$WORK/bin/ingest" >>"$3" 2>&1 &
    ingest_pid=$!
    wait_ready "http://127.0.0.1:$ingest_port/readyz" "$ingest_pid" ingest "$3" 1500
}

# start_correlator NAME SAMPLES_TOPIC RAW_TOPIC
start_correlator() {
    local name="$1"
    KAFKA_BROKERS="$BROKERS" CORRELATOR_LISTEN="127.0.0.1:$correlator_port" \
        KAFKA_GROUP_ID="$PREFIX-$name" TOPIC_PARTITIONS="$PARTITIONS" \
        TOPIC_SAMPLES="$2" TOPIC_TOPOLOGY_RAW="$3" TOPIC_TOPOLOGY="$TOPIC_COMPONENTS" \
        TOPIC_BOUND="$PREFIX.$name.bound" TOPIC_UNBOUND="$PREFIX.$name.unbound" \
        RUST_LOG="info,librdkafka=warn" "$WORK/bin/correlator" >>"$WORK/$name.log" 2>&1 &
    correlator_pid=$!
    wait_ready "http://127.0.0.1:$correlator_port/readyz" "$correlator_pid" correlator "$WORK/$name.log" 3000
}

# ---------------------------------------------------------------- topology

say "topology: $SERIES series' nodes, pods and containers"
start_ingest "$PREFIX.setup-samples" "$PREFIX.topology-raw" "$WORK/ingest-setup.log"
start_correlator setup "$PREFIX.setup-samples" "$PREFIX.topology-raw"
"$LOADTEST" --url "$INGEST_URL" --api-key "$API_KEY" --rate 1000 --duration 1 \
    --series "$SERIES" --samples-per-request "$SAMPLES_PER_REQUEST" \
    --cluster-name "$CLUSTER" --run-id "$PREFIX-topology" --topology \
    >/dev/null 2>"$WORK/runs/topology.log" ||
    { tail -n 20 "$WORK/runs/topology.log" >&2; die "posting the topology failed"; }
components="$(sed -n 's/^posted \([0-9]*\) components.*/\1/p' "$WORK/runs/topology.log")"
[[ -n "$components" ]] || die "loadtest did not say how many components it posted"
for _ in $(seq 1 3000); do
    read -r _ indexed < <(correlator_progress "$correlator_port" || echo "0 0")
    ((indexed >= components)) && break
    sleep 0.1
done
((indexed >= components)) || die "the join index holds $indexed of $components components after 300 s"
say "all $components components materialized"
stop_pid "$correlator_pid"
correlator_pid=""
stop_pid "$ingest_pid"
ingest_pid=""

# ---------------------------------------------------------------- runs

run=0
sustained_rate=""
for rate in $RATES; do
    run=$((run + 1))
    name="run$run"
    samples_topic="$PREFIX.$name.samples"
    say "$name: $rate samples/s for $DURATION s (after $WARMUP s of warm-up)"
    start_ingest "$samples_topic" "$PREFIX.$name.topology-raw" "$WORK/ingest-$name.log"
    start_correlator "$name" "$samples_topic" "$PREFIX.$name.topology-raw"
    common=(--url "$INGEST_URL" --api-key "$API_KEY" --connections "$CONNECTIONS" --series "$SERIES"
        --samples-per-request "$SAMPLES_PER_REQUEST" --cluster-name "$CLUSTER")
    "$LOADTEST" "${common[@]}" --passes 2 --rate "$rate" --duration "$WARMUP" --run-id "$PREFIX-$name-warmup" \
        >/dev/null 2>"$WORK/runs/$name-warmup.log" || say "warning: the warm-up's loadtest failed"
    "$LOADTEST" "${common[@]}" --passes 100 --rate "$rate" --duration "$DURATION" --run-id "$PREFIX-$name" \
        --verify --verify-outputs --brokers "$BROKERS" --topic "$samples_topic" \
        --correlator-group "$PREFIX-$name" --bound-topic "$PREFIX.$name.bound" \
        --unbound-topic "$PREFIX.$name.unbound" --settle-timeout 900 \
        --json "$WORK/runs/$name.json" >/dev/null 2>"$WORK/runs/$name.log" &
    loadtest_pid=$!
    until grep -q "pre-encoded" "$WORK/runs/$name.log" 2>/dev/null; do
        kill -0 "$loadtest_pid" 2>/dev/null || die "loadtest stopped before its load; see $WORK/runs/$name.log"
        sleep 0.05
    done
    lag_buckets "$correlator_port" >"$WORK/runs/$name.lag-before"
    load_before="$(cut -d' ' -f1 /proc/loadavg)"
    machine_before="$(machine_ticks)"
    ingest_before="$(process_ticks "$ingest_pid")"
    correlator_before="$(process_ticks "$correlator_pid")"
    kafka_before="$(process_ticks "$kafka_pid")"
    loadtest_before="$(process_ticks "$loadtest_pid")"
    sleep "$((DURATION + 1))"
    ingest_ticks=$(($(process_ticks "$ingest_pid") - ingest_before))
    correlator_ticks=$(($(process_ticks "$correlator_pid") - correlator_before))
    kafka_ticks=$(($(process_ticks "$kafka_pid") - kafka_before))
    loadtest_ticks=$(($(process_ticks "$loadtest_pid" || echo "$loadtest_before") - loadtest_before))
    machine_ticks_used=$(($(machine_ticks) - machine_before))
    # Catch-up: until the correlator has consumed every record ingest wrote.
    load_end="$(now)"
    written="$(end_offsets "$samples_topic")" || die "cannot read the end offsets of $samples_topic"
    read -r consumed _ < <(correlator_progress "$correlator_port")
    behind_records=$((written - consumed))
    while ((consumed < written)); do
        kill -0 "$correlator_pid" 2>/dev/null || die "the correlator exited; see $WORK/$name.log"
        sleep 0.2
        read -r consumed _ < <(correlator_progress "$correlator_port")
        written="$(end_offsets "$samples_topic")"
    done
    catch_up="$(awk -v a="$load_end" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
    rc=0
    wait "$loadtest_pid" || rc=$?
    loadtest_pid=""
    lag_buckets "$correlator_port" >"$WORK/runs/$name.lag-after"
    lag_p50="$(lag_quantile "$WORK/runs/$name.lag-before" "$WORK/runs/$name.lag-after" 0.5)"
    lag_p99="$(lag_quantile "$WORK/runs/$name.lag-before" "$WORK/runs/$name.lag-after" 0.99)"
    ingest_rss="$(peak_rss_mib "$ingest_pid")"
    correlator_rss="$(peak_rss_mib "$correlator_pid")"
    stop_pid "$correlator_pid"
    correlator_pid=""
    stop_pid "$ingest_pid"
    ingest_pid=""
    [[ -s "$WORK/runs/$name.json" ]] || die "loadtest wrote no summary; see $WORK/runs/$name.log"
    sustained=no
    if awk -v c="$catch_up" -v l="$CATCH_UP_LIMIT" 'BEGIN { exit !(c <= l) }'; then sustained=yes; fi
    jq -r --arg name "$name" --arg rate "$rate" --arg rc "$rc" --arg sustained "$sustained" \
        --arg catch_up "$catch_up" --arg behind "$behind_records" --arg p50 "$lag_p50" --arg p99 "$lag_p99" \
        --arg ingest "$ingest_ticks" --arg correlator "$correlator_ticks" --arg kafka "$kafka_ticks" \
        --arg loadtest "$loadtest_ticks" --arg machine "$machine_ticks_used" --arg load "$load_before" \
        --arg ingest_rss "$ingest_rss" --arg correlator_rss "$correlator_rss" '
        [ $name, $rate, (.totals.samples_per_second | floor), .totals.latency_ms.p50, .totals.latency_ms.p99,
          (.totals.responses_by_status | tojson), .verify.counts.missing, .verify.counts.duplicated,
          .verify.outputs.counts.expected, .verify.outputs.counts.bound, .verify.outputs.counts.unbound,
          .verify.outputs.counts.missing, .verify.outputs.counts.duplicated, $behind, $catch_up, $sustained,
          $p50, $p99, $ingest, $correlator, $kafka, $loadtest, $machine, $ingest_rss, $correlator_rss,
          $load, $rc ] | @tsv' "$WORK/runs/$name.json" >>"$WORK/runs.tsv"
    say "$name: $(tail -n 1 "$WORK/runs.tsv")"
    if [[ "$sustained" == yes ]]; then
        sustained_rate="$rate"
        break
    fi
done

# ---------------------------------------------------------------- report

{
    echo "## bench-pipeline ($STAMP)"
    echo
    echo "loadtest → ingest → Kafka → correlator (built-in Kubernetes rules: container, pod, node) → Kafka, all on one machine:" \
        "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB; code $revision." \
        "Load: $SERIES series of 10 labels, $SAMPLES_PER_REQUEST samples per request, remote-write 1.0, $CONNECTIONS connections, open loop, $DURATION s after $WARMUP s of warm-up;" \
        "$components components; $PARTITIONS partitions. Sustained: the correlator had consumed everything within $CATCH_UP_LIMIT s of the end of the load." \
        "${sustained_rate:+Highest sustained rate tried: $sustained_rate samples/s.}"
    echo
    echo "| rate | acknowledged samples/s | p50 / p99 ms | answers | missing / duplicated in metrics.samples | out of the join: expected / bound / unbound / missing / repeated | records behind at the end of the load | catch-up s | sustained | end-to-end lag p50 / p99 s |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' '{ printf "| %d | %d | %s / %s | %s | %s / %s | %s / %s / %s / %s / %s | %s | %s | %s | %s / %s |\n",
        $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 }' "$WORK/runs.tsv"
    echo
    echo "| rate | CPU s over the load: ingest | correlator | broker | generator | others | peak RSS MiB: ingest / correlator | load avg |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v hz="$CLOCK_TICKS" '{ others = $23 - $19 - $20 - $21 - $22;
        printf "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %s / %s | %s |\n",
        $2, $19 / hz, $20 / hz, $21 / hz, $22 / hz, (others > 0 ? others : 0) / hz, $24, $25, $26 }' "$WORK/runs.tsv"
} | tee "$WORK/report.md"

# A run that lost an acknowledged sample, or a sample out of the join, failed.
if ! awk -F'\t' '$7 != 0 || $12 != 0 || $27 != 0 { bad = 1 } END { exit bad }' "$WORK/runs.tsv"; then
    say "a run lost samples or its loadtest failed; see $WORK/runs/"
    exit 1
fi
say "report: $WORK/report.md"
