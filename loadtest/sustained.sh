#!/usr/bin/env bash
# `make bench-sustained`: ingest held at a constant rate for a minute, then
# every acknowledged sample checked in Kafka.
#
# Builds release ingest and loadtest, starts a private Kafka (its own ports and
# state dir under target/bench-sustained) and ingest against it, sends
# BENCH_WARMUP seconds of unrecorded load, then `loadtest --rate BENCH_RATE
# --duration BENCH_DURATION --verify` (open loop: latency counts from each
# request's due time, so falling behind shows as latency). Reports acknowledged
# samples/s, latency percentiles, answers by status, missing and duplicated
# samples, the CPU seconds of ingest, the broker and the generator over the
# run (from /proc), and ingest's peak RSS. Markdown, also written to
# target/bench-sustained/report.md; the loadtest summary is in runs/run.json.
#
#   BENCH_RATE                 samples/s                              [1000000]
#   BENCH_DURATION             seconds of the measured run            [60]
#   BENCH_WARMUP               seconds of unrecorded load first       [10]
#   BENCH_CONNECTIONS          HTTP connections                       [16]
#   BENCH_SERIES               synthetic series                       [200000]
#   BENCH_SAMPLES_PER_REQUEST  samples per request                    [2000]
#   BENCH_PROTOCOL             v1 or v2                               [v1]
#   BENCH_INGEST               an ingest binary to run instead of this tree's
#                              (another revision's build, to compare)  [none]
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT                                 [39692, 39693]
#   KAFKA_SERVER_PROPERTIES    broker properties (kafka.sh), e.g.
#                              log.segment.bytes=1073741824 (Kafka's default)
#
# The ring of pre-encoded requests holds BENCH_PASSES passes over the series
# [20] and repeats when used up; --verify counts, per sample, acknowledgements
# against copies found, so a repeat is not a duplicate.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK="$REPO/target/bench-sustained"
KAFKA_SH="$REPO/deploy/local/kafka.sh"
BENCH_NAME=bench-sustained
# shellcheck source=loadtest/bench-lib.sh
source "$HERE/bench-lib.sh"

RATE="${BENCH_RATE:-1000000}"
DURATION="${BENCH_DURATION:-60}"
WARMUP="${BENCH_WARMUP:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SERIES="${BENCH_SERIES:-200000}"
SAMPLES_PER_REQUEST="${BENCH_SAMPLES_PER_REQUEST:-2000}"
PROTOCOL="${BENCH_PROTOCOL:-v1}"
PASSES="${BENCH_PASSES:-20}"
export KAFKA_PORT="${KAFKA_PORT:-39692}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39693}"
export KAFKA_STATE_DIR="$WORK/kafka"
API_KEY="bench-sustained-key-0123456789"
CLOCK_TICKS="$(getconf CLK_TCK)"
STAMP="$(date +%Y%m%d%H%M%S)"

for tool in curl jq awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (make deps)"
done

ingest_pid=""
kafka_started=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$ingest_pid" ]]; then
        kill -TERM "$ingest_pid" 2>/dev/null || true
        wait "$ingest_pid" 2>/dev/null || true
    fi
    # reset = stop and delete the topics: gigabytes of records do not stay behind.
    if [[ "$kafka_started" == 1 ]]; then "$KAFKA_SH" reset >&2 || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/runs"
rm -f "$WORK"/runs/*

say "building release ingest and loadtest ..."
(cd "$REPO" && cargo build --release --bin ingest --bin loadtest >&2)
LOADTEST="$REPO/target/release/loadtest"
INGEST="${BENCH_INGEST:-$REPO/target/release/ingest}"
[[ -x "$INGEST" ]] || die "BENCH_INGEST ($INGEST) is not an executable"
say "ingest: $INGEST"

start_private_kafka
BROKERS="127.0.0.1:$KAFKA_PORT"
TOPIC="bench.samples.$STAMP"

ingest_port="$(free_port 39694)"
write_bench_keys
say "starting ingest on 127.0.0.1:$ingest_port (log $WORK/ingest.log)"
KAFKA_BROKERS="$BROKERS" INGEST_LISTEN="127.0.0.1:$ingest_port" API_KEYS_FILE="$WORK/keys.toml" \
    TOPIC_SAMPLES="$TOPIC" TOPIC_TOPOLOGY_RAW="bench.topology.$STAMP" \
    "$INGEST" >"$WORK/ingest.log" 2>&1 &
ingest_pid=$!
wait_ready "http://127.0.0.1:$ingest_port/readyz" "$ingest_pid" ingest "$WORK/ingest.log"
URL="http://127.0.0.1:$ingest_port/receiver/prometheus/api/v1/write"
common=(--url "$URL" --api-key "$API_KEY" --connections "$CONNECTIONS" --series "$SERIES"
    --samples-per-request "$SAMPLES_PER_REQUEST" --protocol "$PROTOCOL")

say "warm-up: ${WARMUP} s at $RATE samples/s (not recorded)"
"$LOADTEST" "${common[@]}" --passes 2 --rate "$RATE" --duration "$WARMUP" --run-id "warmup-$STAMP" \
    >/dev/null 2>"$WORK/runs/warmup.log" || say "warning: the warm-up's loadtest failed (see $WORK/runs/warmup.log)"

say "run: $DURATION s at $RATE samples/s, then --verify (log $WORK/runs/run.log)"
"$LOADTEST" "${common[@]}" --passes "$PASSES" --rate "$RATE" --duration "$DURATION" --run-id "run-$STAMP" \
    --verify --brokers "$BROKERS" --topic "$TOPIC" \
    --json "$WORK/runs/run.json" >/dev/null 2>"$WORK/runs/run.log" &
loadtest_pid=$!
# CPU is counted from the end of pre-encoding (loadtest says "pre-encoded")
# to the end of the load (the duration, plus a second for the last answers),
# before the generator reads the topic back for --verify.
until grep -q "pre-encoded" "$WORK/runs/run.log" 2>/dev/null; do
    kill -0 "$loadtest_pid" 2>/dev/null || die "loadtest stopped before its load; see $WORK/runs/run.log"
    sleep 0.05
done
machine_before="$(machine_ticks)"
ingest_before="$(process_ticks "$ingest_pid")"
kafka_before="$(process_ticks "$kafka_pid")"
loadtest_before="$(process_ticks "$loadtest_pid")"
load_before="$(cut -d' ' -f1 /proc/loadavg)"
sleep "$((DURATION + 1))"
loadtest_ticks=$(($(process_ticks "$loadtest_pid" || echo "$loadtest_before") - loadtest_before))
ingest_ticks=$(($(process_ticks "$ingest_pid") - ingest_before))
kafka_ticks=$(($(process_ticks "$kafka_pid") - kafka_before))
machine_used=$(($(machine_ticks) - machine_before))
ingest_rss="$(peak_rss_mib "$ingest_pid")"
kafka_rss="$(peak_rss_mib "$kafka_pid")"
run_rc=0
wait "$loadtest_pid" || run_rc=$?
((run_rc == 0)) || say "warning: the run's loadtest exited $run_rc (see $WORK/runs/run.log)"

seconds() { awk -v t="$1" -v hz="$CLOCK_TICKS" 'BEGIN { printf "%.1f", t / hz }'; }
share() { awk -v t="$1" -v hz="$CLOCK_TICKS" -v d="$((DURATION + 1))" 'BEGIN { printf "%.0f %%", 100 * t / hz / d }'; }
others=$((machine_used - ingest_ticks - kafka_ticks - loadtest_ticks))
report="$WORK/report.md"
{
    echo "## bench-sustained: $RATE samples/s for $DURATION s ($STAMP)"
    echo
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), load average $load_before when the load began."
    echo "Load: $SERIES series, $SAMPLES_PER_REQUEST samples per request, remote-write $PROTOCOL, $CONNECTIONS connections, open loop."
    echo
    jq -r '
      "| acknowledged samples/s | p50 / p99 / p99.9 / max ms | answers by status | failed / unsent requests | sent / acknowledged / found / missing / duplicated |",
      "|---|---|---|---|---|",
      "| \(.totals.samples_per_second | floor) | \(.totals.latency_ms.p50) / \(.totals.latency_ms.p99) / \(.totals.latency_ms.p999) / \(.totals.latency_ms.max) | \(.totals.responses_by_status | tojson) | \(.totals.requests_failed) / \(.totals.requests_unsent) | \(.totals.samples_sent) / \(.totals.samples_acknowledged) / \(.verify.counts.found // "?") / \(.verify.counts.missing // "?") / \(.verify.counts.duplicated // "?") |"
    ' "$WORK/runs/run.json"
    echo
    echo "| CPU over the run | seconds | % of one core |"
    echo "|---|---|---|"
    echo "| ingest | $(seconds "$ingest_ticks") | $(share "$ingest_ticks") |"
    echo "| broker | $(seconds "$kafka_ticks") | $(share "$kafka_ticks") |"
    echo "| generator | $(seconds "$loadtest_ticks") | $(share "$loadtest_ticks") |"
    echo "| everything else | $(seconds "$others") | $(share "$others") |"
    echo
    echo "Peak RSS: ingest $ingest_rss MiB, broker $kafka_rss MiB."
} | tee "$report"
