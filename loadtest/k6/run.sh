#!/usr/bin/env bash
# Runs one k6 load scenario of loadtest/k6 against ingest.
#
#   loadtest/k6/run.sh [SCENARIO] [--local] [k6 run args, e.g. -e RATE=100 --summary-export FILE]
#
# The scenarios are k6 scripts using the extension module k6/x/remotewrite.
# By default they run on k6 built here with this project's own extension
# (build-k6.sh: target/k6/bin/k6, from the Go module proxy, rebuilt only when
# xk6-remotewrite/ changes); K6=/path/to/k6 runs them on another k6 with that
# module instead, e.g. one built with grafana/xk6-client-prometheus-remote.
# It runs `$K6 run -e INGEST_URL=... -e API_KEY=... [args] SCRIPT`.
#
# SCENARIO: constant-rate (default), ramp, spike, many-tenants, or a path to a
# script. Without --local it writes to ${INGEST_URL} with ${API_KEY} (and
# ${API_KEYS} for many-tenants). With --local (or LOCAL=1) it starts a private
# pipeline first: Kafka on free ports (its own state dir under target/k6),
# ingest built with `cargo build --release --bin ingest` on a free port and an
# API keys file of its own, and stops all of it again on exit.
#
# The exit code is k6's: 0 when every threshold passed, 99 when one failed,
# others for errors. See loadtest/k6/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="${K6_WORK_DIR:-$REPO/target/k6}"
LOCAL="${LOCAL:-0}"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    echo
    echo "Scenarios:"
    for f in "$HERE"/*.js; do
        [[ "$f" == */lib.js ]] || echo "  $(basename "$f" .js)"
    done
}

scenario=""
args=()
while (($#)); do
    case "$1" in
    --local) LOCAL=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        if [[ -z "$scenario" && "$1" != -* ]]; then
            scenario="$1"
        else
            args+=("$1")
        fi
        ;;
    esac
    shift
done
scenario="${scenario:-constant-rate}"
if [[ -f "$HERE/$scenario.js" ]]; then
    script="$HERE/$scenario.js"
elif [[ -f "$scenario" ]]; then
    script="$scenario"
else
    echo "run.sh: no scenario '$scenario'" >&2
    usage >&2
    exit 2
fi

say() { echo "k6/run.sh: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---------------------------------------------------------------- k6

K6="${K6:-}"
if [[ -n "$K6" ]]; then
    # Another k6; it must have a k6/x/remotewrite module.
    k6_given="$K6"
    if [[ "$K6" != */* ]]; then
        K6="$(command -v "$K6" || true)"
    fi
    [[ -n "$K6" && -x "$K6" ]] || die "K6=$k6_given: not an executable k6 binary"
    if ! "$K6" version 2>/dev/null | grep -qi 'prometheus-remote\|remotewrite'; then
        say "warning: '$K6 version' lists no remote-write extension; the scripts need k6/x/remotewrite"
    fi
else
    K6="$("$HERE/build-k6.sh")" || die "building k6 failed (loadtest/k6/build-k6.sh)"
fi
# No anonymous usage report to k6.io at the end of a run, and no download of
# a k6 with other extensions (k6 v1's automatic extension resolution) if a
# script imports one this k6 lacks: load stays between here and ingest.
export K6_NO_USAGE_REPORT="${K6_NO_USAGE_REPORT:-true}"
export K6_AUTO_EXTENSION_RESOLUTION="${K6_AUTO_EXTENSION_RESOLUTION:-false}"

# ---------------------------------------------------------------- local pipeline

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
    if [[ "$kafka_started" == 1 ]]; then
        # reset = stop and delete the data: each run starts with empty topics.
        if [[ "${KEEP_KAFKA_DATA:-0}" == 1 ]]; then
            "$REPO/deploy/local/kafka.sh" stop >&2 || true
        else
            "$REPO/deploy/local/kafka.sh" reset >&2 || true
        fi
    fi
    exit "$rc"
}

# Prints N distinct free TCP ports on 127.0.0.1: random ones below the
# kernel's ephemeral range (32768+) that nothing answers on.
free_ports() {
    local ports=() p
    while ((${#ports[@]} < $1)); do
        p=$((20000 + RANDOM % 12000))
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
        ports+=("$p")
    done
    echo "${ports[*]}"
}

if [[ "$LOCAL" == 1 ]]; then
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$WORK"
    read -r kafka_port controller_port ingest_port <<<"$(free_ports 3)"
    export KAFKA_PORT="$kafka_port" KAFKA_CONTROLLER_PORT="$controller_port"
    export KAFKA_STATE_DIR="$WORK/kafka"
    export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"

    # A broker left behind by an interrupted run with this state dir.
    if "$REPO/deploy/local/kafka.sh" status >/dev/null 2>&1; then
        "$REPO/deploy/local/kafka.sh" stop >&2
    fi
    kafka_started=1
    "$REPO/deploy/local/kafka.sh" start >&2

    say "building ingest (cargo build --release --bin ingest) ..."
    (cd "$REPO" && cargo build --release --bin ingest >&2)

    # One tenant without a quota, one limited tenant for many-tenants (its
    # burst must hold one request: more samples than the burst is a 413).
    main_key="k6-local-main-key-0123456789"
    limited_key="k6-local-limited-key-0123456789"
    limited_rate="${LIMITED_SAMPLES_PER_SECOND:-1000}"
    cat >"$WORK/keys.toml" <<KEYS
[[keys]]
tenant = "k6-main"
key = "$main_key"

[[keys]]
tenant = "k6-limited"
key = "$limited_key"
samples_per_second = $limited_rate
burst_samples = $((limited_rate * 2))
KEYS

    ingest_log="$WORK/ingest.log"
    say "starting ingest on 127.0.0.1:$ingest_port (Kafka 127.0.0.1:$kafka_port; log $ingest_log)"
    KAFKA_BROKERS="127.0.0.1:$kafka_port" INGEST_LISTEN="127.0.0.1:$ingest_port" \
        API_KEYS_FILE="$WORK/keys.toml" "$REPO/target/release/ingest" >"$ingest_log" 2>&1 &
    ingest_pid=$!
    ready=0
    for _ in $(seq 1 150); do
        if curl -fs "http://127.0.0.1:$ingest_port/readyz" >/dev/null 2>&1; then
            ready=1
            break
        fi
        kill -0 "$ingest_pid" 2>/dev/null || break
        sleep 0.2
    done
    if [[ "$ready" != 1 ]]; then
        tail -n 20 "$ingest_log" >&2 || true
        die "ingest did not become ready; see $ingest_log"
    fi

    export INGEST_URL="http://127.0.0.1:$ingest_port/receiver/prometheus/api/v1/write"
    export API_KEY="$main_key"
    export API_KEYS="k6-main=$main_key,k6-limited=$limited_key"
    export LIMITED_TENANTS="k6-limited"
fi

# ---------------------------------------------------------------- run

# The settings the scripts read, passed explicitly as -e (k6 also sees the
# environment, unless --include-system-env-vars=false); the caller's own -e
# arguments come later and win.
env_args=()
for name in INGEST_URL API_KEY API_KEYS LIMITED_TENANTS AUTH; do
    if [[ -n "${!name:-}" ]]; then env_args+=(-e "$name=${!name}"); fi
done

# p(99) in the summary too, the percentile the thresholds use (unless the
# caller chose the columns).
case " ${args[*]-} " in
*" --summary-trend-stats"*) ;;
*) env_args+=(--summary-trend-stats 'avg,min,med,max,p(90),p(95),p(99)') ;;
esac

say "running $(basename "$script") against ${INGEST_URL:-http://127.0.0.1:8080/receiver/prometheus/api/v1/write} with $K6"
set +e
"$K6" run "${env_args[@]}" "${args[@]}" "$script"
rc=$?
set -e

if [[ "$LOCAL" == 1 ]]; then
    # What ingest itself counted, next to k6's samples_written.
    accepted="$(curl -fs "http://127.0.0.1:$ingest_port/metrics" 2>/dev/null |
        grep -E '^ingest_samples_accepted(_total)?[{ ]' || true)"
    [[ -n "$accepted" ]] && say "ingest's own count: ${accepted//$'\n'/; }"
fi
exit "$rc"
