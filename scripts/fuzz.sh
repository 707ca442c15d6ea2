#!/usr/bin/env bash
# Fuzzes the decoders, the join of a samples record, the snapshot state machine and the bindings parser
# (the cargo-fuzz crate in fuzz/, a workspace of its own).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# Installs cargo-fuzz if missing, builds every target, writes the seed corpora
# (fuzz/corpus/<target>/seed-*: the captured Prometheus bodies, encoded v2
# requests, the sample topology, fuzz/seeds/), runs each target for the given
# time and prints its executions and exec/s. Exits non-zero if any target
# crashed; the reproducer's path (fuzz/artifacts/<target>/...) is printed.
#
# Environment: FUZZ_TARGETS (space-separated subset, default all),
# FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_TOOLCHAIN (default nightly);
# CARGO_BUILD_JOBS limits the build as usual.
# A crash replays with: cargo +nightly fuzz run <target> <artifact>
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${1:-60}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-2048}
ALL_TARGETS="remote_write_v1 remote_write_v2 snappy_body topology_intake snapshot_state_machine bindings_file join_record"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
LOGS="$ROOT/fuzz/logs"

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
for target in $TARGETS; do
    case " $ALL_TARGETS " in
    *" $target "*) ;;
    *)
        echo "fuzz: unknown target $target (targets: $ALL_TARGETS)" >&2
        exit 2
        ;;
    esac
done

if ! rustup toolchain list | grep -q "^$TOOLCHAIN"; then
    echo "fuzz: the $TOOLCHAIN toolchain is missing (cargo-fuzz needs nightly): rustup toolchain install $TOOLCHAIN" >&2
    exit 1
fi
if ! command -v cmake >/dev/null 2>&1; then
    echo "fuzz: cmake is missing (librdkafka's build needs it): run make deps" >&2
    exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "fuzz: building the targets"
cargo "+$TOOLCHAIN" fuzz build

echo "fuzz: writing the seed corpora"
CORPUS="$ROOT/fuzz/corpus"
cargo "+$TOOLCHAIN" run -q --manifest-path fuzz/Cargo.toml -p fuzz-seedgen -- "$CORPUS"
mkdir -p "$CORPUS"/{topology_intake,bindings_file,snapshot_state_machine,join_record}
# The join reads what ingest writes: remote-write bodies of either version.
for target in remote_write_v1 remote_write_v2; do
    for seed in "$CORPUS/$target"/*; do
        [ -f "$seed" ] && cp "$seed" "$CORPUS/join_record/$target-$(basename "$seed")"
    done
done
cp deploy/local/sample-topology.json "$CORPUS/topology_intake/seed-sample-topology.json"
for target in topology_intake bindings_file; do
    for seed in fuzz/seeds/"$target"/*; do
        cp "$seed" "$CORPUS/$target/seed-$(basename "$seed")"
    done
done

mkdir -p "$LOGS"
summary=()
failed=()
for target in $TARGETS; do
    log="$LOGS/$target.log"
    extra=()
    if [ -f "fuzz/dicts/$target.dict" ]; then
        extra+=("-dict=$ROOT/fuzz/dicts/$target.dict")
    fi
    echo "fuzz: $target for ${SECONDS_PER_TARGET}s (log: ${log#"$ROOT"/})"
    status=0
    cargo "+$TOOLCHAIN" fuzz run "$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" \
        -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?

    # libFuzzer ends with "Done N runs in S second(s)" and, with
    # -print_final_stats, "stat::number_of_executed_units: N" and
    # "stat::average_exec_per_sec: N" (printed after a crash too).
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    if [ -z "$runs" ] && [ -n "$done_line" ]; then
        runs=$(echo "$done_line" | awk '{print $2}')
    fi
    if [ -z "$rate" ] && [ -n "$done_line" ]; then
        rate=$(echo "$done_line" | awk '{s=$5; print (s > 0 ? int($2 / s) : $2)}')
    fi
    cov=$(grep -oE '#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+)/cov \1 ft \2/' || true)
    corpus_files=$(find "$CORPUS/$target" -type f | wc -l)

    if [ "$status" -eq 0 ] && [ -n "$done_line" ]; then
        line=$(printf '%-24s ok     %12s runs %8s exec/s  %s, corpus %s files' "$target" "${runs:-?}" "${rate:-?}" "${cov:-}" "$corpus_files")
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        line=$(printf '%-24s FAILED %12s runs %8s exec/s  exit %s, artifact: %s' "$target" "${runs:-?}" "${rate:-?}" "$status" "${artifact:-none (see $log)}")
        failed+=("$target")
        # The panic or sanitizer report, and the last lines of the run.
        grep -E -m1 -A12 "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY:" "$log" || tail -25 "$log"
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${SECONDS_PER_TARGET}s per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]} (reproduce: cargo +$TOOLCHAIN fuzz run <target> <artifact>)" >&2
    exit 1
fi
