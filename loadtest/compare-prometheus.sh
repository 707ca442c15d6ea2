#!/usr/bin/env bash
# `make bench-vs-prometheus`: ingest against Prometheus' own remote-write
# receiver, side by side in one run with the same load.
#
#   loadtest/compare-prometheus.sh
#
# Builds release ingest and loadtest, starts a private Kafka (its own ports and
# state dir under target/bench-vs-prometheus), ingest against it, and
# Prometheus (`--web.enable-remote-write-receiver`, no scrape jobs, its own
# TSDB dir on the same disk as Kafka's). Then the same `loadtest --max` load
# goes to each in the order ingest, Prometheus, Prometheus, ingest (A-B-B-A, so
# a drift of the shared machine's load over the run does not favour either),
# after a short unrecorded warm-up of ingest and the broker. For every run it
# records what loadtest measured (acknowledged samples/s, latency, non-2xx
# answers) and, from /proc, the CPU seconds of the receiver, of the broker and
# of the whole machine, and at the end each process's peak RSS (VmHWM). It
# prints Markdown tables, with the ratios ingest/Prometheus, and writes them to
# target/bench-vs-prometheus/report.md. Exit 1 when a run is not valid (a
# non-2xx answer, a failed or unsent request), so no ratio rests on it.
#
# Environment (defaults in brackets):
#   BENCH_DURATION             seconds of load per run                 [20]
#   BENCH_CONNECTIONS          loadtest --connections                  [16]
#   BENCH_SERIES               loadtest --series                       [200000]
#   BENCH_SAMPLES_PER_REQUEST  loadtest --samples-per-request          [2000]
#   BENCH_PASSES               loadtest --passes (ring size)           [30]
#   BENCH_WARMUP               seconds of unrecorded load on ingest    [5]
#   BENCH_PAUSE                seconds of rest before each run         [5]
#   PROMETHEUS                 the Prometheus binary                   [prometheus]
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT                                  [39792, 39793]
#
# What Prometheus' TSDB imposes on the load:
#   - It answers 400 to a sample older than the last one of its series, or as
#     old with another value (and drops the whole request), so a run must
#     never repeat a pass: the ring holds BENCH_PASSES passes over
#     BENCH_SERIES series, each pass 15 s later, and must hold more samples
#     than Prometheus takes in BENCH_DURATION seconds (the table says "ring
#     wrapped" when it did not).
#   - loadtest's connections take requests from the ring in order, but one
#     slow request can be overtaken by the next pass of its series if the
#     others get through a whole pass meanwhile (on 2 busy vCPUs Prometheus
#     answered in 0.25 s at the median but up to 2.3 s). So a pass must span
#     many times more requests than there are connections: at least 5×.
#   - Samples older than the head's newest minus 1 h are out of bounds, and a
#     run moves the head up to BENCH_PASSES × 15 s ahead of the clock, so
#     BENCH_PASSES stays at most 200 (50 min).
# Creating a series costs Prometheus far more than appending to it, and a
# long-running receiver mostly appends, so before each measured run one pass
# of its series goes out unrecorded (a slow open-loop run): the measured run
# then appends only, to Prometheus as to ingest. And since each run needs
# series of its own (its own `loadtest_run` label), each Prometheus run gets a
# fresh Prometheus with an empty TSDB, so that its head holds the active series
# only, as a long-running receiver's does, and not those of the run before
# (with them, the second run was a quarter slower per CPU-second once).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
WORK="$REPO/target/bench-vs-prometheus"
KAFKA_SH="$REPO/deploy/local/kafka.sh"

DURATION="${BENCH_DURATION:-20}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SERIES="${BENCH_SERIES:-200000}"
SAMPLES_PER_REQUEST="${BENCH_SAMPLES_PER_REQUEST:-2000}"
PASSES="${BENCH_PASSES:-30}"
WARMUP="${BENCH_WARMUP:-5}"
PAUSE="${BENCH_PAUSE:-5}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
export KAFKA_PORT="${KAFKA_PORT:-39792}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39793}"
export KAFKA_STATE_DIR="$WORK/kafka"

API_KEY="bench-vs-prometheus-key-0123456789"
CLOCK_TICKS="$(getconf CLK_TCK)"
STAMP="$(date +%Y%m%d%H%M%S)"

BENCH_NAME=compare-prometheus
# shellcheck source=loadtest/bench-lib.sh
source "$HERE/bench-lib.sh"

for tool in curl jq awk "$PROMETHEUS"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install ${tool##*/})"
done
((SERIES / SAMPLES_PER_REQUEST >= 5 * CONNECTIONS)) ||
    die "BENCH_SERIES / BENCH_SAMPLES_PER_REQUEST must be at least 5 × BENCH_CONNECTIONS, else a series' samples can overtake each other in flight and Prometheus answers 400"
((PASSES <= 200)) ||
    die "BENCH_PASSES over 200 puts samples more than 50 min ahead of the clock; later runs would be out of bounds in Prometheus' head"

# ---------------------------------------------------------------- start

ingest_pid=""
prometheus_pid=""
kafka_started=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in $ingest_pid $prometheus_pid; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $ingest_pid $prometheus_pid; do wait "$pid" 2>/dev/null || true; done
    # reset = stop and delete the topics: the next run starts empty, and
    # gigabytes of benchmark records do not stay behind.
    if [[ "$kafka_started" == 1 ]]; then "$KAFKA_SH" reset >&2 || true; fi
    rm -rf "$WORK/prometheus-data"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/runs"
rm -f "$WORK"/runs/* "$WORK/prometheus.log"

say "building release ingest and loadtest ..."
(cd "$REPO" && cargo build --release --bin ingest --bin loadtest >&2)
LOADTEST="$REPO/target/release/loadtest"

start_private_kafka

ingest_port="$(free_port 39794)"
cat >"$WORK/keys.toml" <<KEYS
[[keys]]
tenant = "bench"
key = "$API_KEY"
KEYS
say "starting ingest on 127.0.0.1:$ingest_port (log $WORK/ingest.log)"
KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" INGEST_LISTEN="127.0.0.1:$ingest_port" \
    API_KEYS_FILE="$WORK/keys.toml" \
    TOPIC_SAMPLES="bench.samples.$STAMP" TOPIC_TOPOLOGY_RAW="bench.topology.$STAMP" \
    "$REPO/target/release/ingest" >"$WORK/ingest.log" 2>&1 &
ingest_pid=$!
wait_ready "http://127.0.0.1:$ingest_port/readyz" "$ingest_pid" ingest "$WORK/ingest.log"

# No scrape jobs: everything Prometheus stores comes through the receiver.
cat >"$WORK/prometheus.yml" <<'PROM'
global:
  scrape_interval: 15s
PROM
prometheus_port="$(free_port $((ingest_port + 1)))"
prometheus_version="$("$PROMETHEUS" --version 2>&1 | head -n 1)"
prometheus_rss=0
prometheus_head_series=0

# A fresh Prometheus with an empty TSDB (on the same disk as Kafka's data).
start_prometheus() {
    rm -rf "$WORK/prometheus-data"
    "$PROMETHEUS" --config.file="$WORK/prometheus.yml" \
        --storage.tsdb.path="$WORK/prometheus-data" \
        --web.listen-address="127.0.0.1:$prometheus_port" \
        --web.enable-remote-write-receiver >>"$WORK/prometheus.log" 2>&1 &
    prometheus_pid=$!
    wait_ready "http://127.0.0.1:$prometheus_port/-/ready" "$prometheus_pid" Prometheus "$WORK/prometheus.log"
}

# Stops Prometheus, keeping the highest peak RSS and head series count seen.
stop_prometheus() {
    local rss series
    rss="$(peak_rss_mib "$prometheus_pid")"
    series="$(curl -fs "http://127.0.0.1:$prometheus_port/api/v1/status/tsdb" |
        jq -r '.data.headStats.numSeries // 0' || echo 0)"
    if ((rss > prometheus_rss)); then prometheus_rss="$rss"; fi
    if ((series > prometheus_head_series)); then prometheus_head_series="$series"; fi
    kill -TERM "$prometheus_pid"
    wait "$prometheus_pid" || true
    prometheus_pid=""
}

INGEST_URL="http://127.0.0.1:$ingest_port/receiver/prometheus/api/v1/write"
PROMETHEUS_URL="http://127.0.0.1:$prometheus_port/api/v1/write"

# ---------------------------------------------------------------- runs

# Sends the first pass of run NAME's series (same run id, same labels) to URL,
# unrecorded: open loop at BENCH_SERIES / 2 samples/s for 2 s, one sample per
# series. The measured run's ring starts at a later timestamp, so it appends.
create_series() {
    local name="$1" url="$2" json="$WORK/runs/$1-series.json"
    "$LOADTEST" --url "$url" --api-key "$API_KEY" --rate $((SERIES / 2)) --duration 2 \
        --connections "$CONNECTIONS" \
        --series "$SERIES" --samples-per-request "$SAMPLES_PER_REQUEST" --passes 1 \
        --run-id "$name-$STAMP" --cluster-name "bench-$name" \
        --json "$json" >/dev/null 2>"$WORK/runs/$name-series.log" || true
    local answers
    answers="$(jq -c '.totals.responses_by_status' "$json" 2>/dev/null || echo '?')"
    say "$name: created its series, answers $answers"
}

# One loadtest run: run_load NAME TARGET URL SECONDS PASSES. Appends a row to
# runs.tsv. The CPU counters are read when loadtest starts sending (it says
# "pre-encoded" then) and when it exits, so the encoding of the ring, which
# loads only the generator, stays out of the receivers' window.
run_load() {
    local name="$1" target="$2" url="$3" seconds="$4" passes="$5"
    local json="$WORK/runs/$name.json" log="$WORK/runs/$name.log"
    local receiver_pid="$ingest_pid"
    if [[ "$target" == prometheus ]]; then receiver_pid="$prometheus_pid"; fi

    say "$name: $target, ${seconds} s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$LOADTEST" --url "$url" --api-key "$API_KEY" --max \
        --connections "$CONNECTIONS" --duration "$seconds" \
        --series "$SERIES" --samples-per-request "$SAMPLES_PER_REQUEST" --passes "$passes" \
        --run-id "$name-$STAMP" --cluster-name "bench-$name" \
        --json "$json" >/dev/null 2>"$log" &
    local loadtest_pid=$!
    while kill -0 "$loadtest_pid" 2>/dev/null && ! grep -q 'pre-encoded' "$log"; do
        sleep 0.05
    done
    local load_before receiver_before broker_before machine_before generator_before
    load_before="$(cut -d' ' -f1 /proc/loadavg)"
    receiver_before="$(process_ticks "$receiver_pid")"
    broker_before="$(process_ticks "$kafka_pid")"
    machine_before="$(machine_ticks)"
    generator_before="$(process_ticks "$loadtest_pid" || echo 0)"
    # The generator's own CPU: its last reading before it exits (to 0.1 s).
    local generator_last="$generator_before" reading
    while reading="$(process_ticks "$loadtest_pid")"; do
        generator_last="$reading"
        sleep 0.1
    done
    local rc=0
    wait "$loadtest_pid" || rc=$?
    local receiver_ticks broker_ticks machine_busy_ticks generator_ticks
    receiver_ticks=$(($(process_ticks "$receiver_pid") - receiver_before))
    broker_ticks=$(($(process_ticks "$kafka_pid") - broker_before))
    machine_busy_ticks=$(($(machine_ticks) - machine_before))
    generator_ticks=$((generator_last - generator_before))
    # A Prometheus run does not load the broker: its ticks belong to "others".
    if [[ "$target" == prometheus ]]; then broker_ticks=0; fi
    if [[ ! -s "$json" ]]; then
        tail -n 20 "$log" >&2
        die "$name: loadtest exited with $rc and wrote no summary; see $log"
    fi

    # name target samples/s acknowledged p50 p99 non-2xx failed unsent wrapped
    # receiver-cpu-s broker-cpu-s machine-busy-cpu-s load-average generator-cpu-s
    jq -r --arg name "$name" --arg target "$target" --arg load "$load_before" \
        --argjson ticks "$CLOCK_TICKS" --argjson receiver "$receiver_ticks" \
        --argjson broker "$broker_ticks" --argjson machine "$machine_busy_ticks" \
        --argjson generator "$generator_ticks" '
        [ $name, $target,
          .totals.samples_per_second, .totals.samples_acknowledged,
          .totals.latency_ms.p50, .totals.latency_ms.p99,
          ([.totals.responses_by_status | to_entries[]
            | select(.key | startswith("2") | not) | .value] | add // 0),
          .totals.requests_failed, .totals.requests_unsent,
          (if .totals.requests_sent > .settings.ring_requests then 1 else 0 end),
          $receiver / $ticks, $broker / $ticks, $machine / $ticks, $load,
          $generator / $ticks ]
        | @tsv' "$json" >>"$WORK/runs.tsv"
    say "$name: $(jq -r '"\(.totals.samples_per_second | floor) samples/s, answers \(.totals.responses_by_status | tojson)"' "$json")"
}

: >"$WORK/runs.tsv"
# The warm-up is for the broker's JVM (JIT, heap): it is not recorded.
# Prometheus is compiled ahead of time and starts afresh for each run; the
# pass that creates its series warms it.
if ((WARMUP > 0)); then
    run_load warmup-ingest ingest "$INGEST_URL" "$WARMUP" 5
    : >"$WORK/runs.tsv"
fi
run=0
for target in ingest prometheus prometheus ingest; do
    run=$((run + 1))
    url="$INGEST_URL"
    if [[ "$target" == prometheus ]]; then
        url="$PROMETHEUS_URL"
        say "run$run: starting a fresh Prometheus on 127.0.0.1:$prometheus_port (log $WORK/prometheus.log)"
        start_prometheus
    fi
    create_series "run$run" "$url"
    sleep "$PAUSE"
    run_load "run$run" "$target" "$url" "$DURATION" "$PASSES"
    if [[ "$target" == prometheus ]]; then stop_prometheus; fi
done

ingest_rss="$(peak_rss_mib "$ingest_pid")"
broker_rss="$(peak_rss_mib "$kafka_pid")"

# ---------------------------------------------------------------- report

{
    echo "Load: \`loadtest --max --connections $CONNECTIONS --duration $DURATION --series $SERIES" \
        "--samples-per-request $SAMPLES_PER_REQUEST --passes $PASSES\` (remote-write 1.0, 10 labels per series)," \
        "order ingest, Prometheus, Prometheus, ingest, each run's series created beforehand by one unrecorded pass; $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB;" \
        "$prometheus_version. CPU seconds over the run; \"others\": the rest of the machine's busy CPU (other jobs, hypervisor steal);" \
        "load average at the start of each run."
    echo
    echo "| run | receiver | samples/s | p50 / p99 ms | non-2xx / failed | receiver CPU s (% of a core) | broker CPU s | generator CPU s | others CPU s | load avg |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v duration="$DURATION" '{
        others = $13 - $11 - $12 - $15
        printf "| %s | %s | %.0f k | %.1f / %.1f | %d / %d%s | %.1f (%.0f %%) | %s | %.1f | %.1f | %s |\n",
            $1, $2, $3 / 1000, $5, $6, $7, $8, ($10 == 1 && $2 == "prometheus" ? " (ring wrapped)" : ""),
            $11, 100 * $11 / duration, ($2 == "ingest" ? sprintf("%.1f", $12) : "–"), $15,
            (others > 0 ? others : 0), $14
    }' "$WORK/runs.tsv"
    echo
    # Sums over the two runs of each receiver: acknowledged samples / CPU seconds,
    # and the mean of the samples/s. A run with any non-2xx answer, failed or
    # unsent request does not count, and the exit status is 1.
    awk -F'\t' -v ingest_rss="$ingest_rss" -v broker_rss="$broker_rss" -v prometheus_rss="$prometheus_rss" '
        $7 + $8 + $9 > 0 { invalid[$2]++; next }
        { rate[$2] += $3; runs[$2]++; acked[$2] += $4; receiver[$2] += $11; broker[$2] += $12 }
        function ratio(a, b) { return (b > 0 ? sprintf("%.2f", a / b) : "n/a") }
        END {
            for (t in invalid) printf "**%d %s run(s) had errors and are left out.**\n\n", invalid[t], t
            if (!runs["ingest"] || !runs["prometheus"]) { print "No valid run of one receiver: no ratio."; exit 1 }
            ingest_rate = rate["ingest"] / runs["ingest"]
            prometheus_rate = rate["prometheus"] / runs["prometheus"]
            ingest_per_cpu = acked["ingest"] / receiver["ingest"]
            prometheus_per_cpu = acked["prometheus"] / receiver["prometheus"]
            pipeline_per_cpu = acked["ingest"] / (receiver["ingest"] + broker["ingest"])
            print "| | ingest | Prometheus | ratio ingest / Prometheus |"
            print "|---|---|---|---|"
            printf "| acknowledged samples/s (mean of %d and %d runs) | %.0f k | %.0f k | **%s** |\n",
                runs["ingest"], runs["prometheus"], ingest_rate / 1000, prometheus_rate / 1000, ratio(ingest_rate, prometheus_rate)
            printf "| samples per receiver CPU-second | %.0f k | %.0f k | **%s** |\n",
                ingest_per_cpu / 1000, prometheus_per_cpu / 1000, ratio(ingest_per_cpu, prometheus_per_cpu)
            printf "| samples per CPU-second, ingest + broker vs Prometheus | %.0f k | %.0f k | %s |\n",
                pipeline_per_cpu / 1000, prometheus_per_cpu / 1000, ratio(pipeline_per_cpu, prometheus_per_cpu)
            printf "| peak RSS (VmHWM) | %d MiB (broker %d MiB) | %d MiB | |\n", ingest_rss, broker_rss, prometheus_rss
        }' "$WORK/runs.tsv" || true
    echo
    echo "Prometheus: a fresh process and TSDB per run; at most $prometheus_head_series series in its head."
} | tee "$WORK/report.md"

# A run with non-2xx answers is not a measurement; say so in the exit status.
if awk -F'\t' '$7 + $8 + $9 > 0 { bad = 1 } END { exit bad ? 0 : 1 }' "$WORK/runs.tsv"; then
    say "some runs had non-2xx answers or failed requests; see $WORK/runs/*.json"
    exit 1
fi
grep -q 'ring wrapped' "$WORK/report.md" &&
    say "note: a run sent more than the ring holds (BENCH_PASSES); for Prometheus that means repeated samples"
say "report: $WORK/report.md"
