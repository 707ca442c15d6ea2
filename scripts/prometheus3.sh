#!/usr/bin/env bash
# Installs the Prometheus 3 that `ingest/tests/prometheus3.rs` runs, and builds
# the scrape target it scrapes; prints two lines on stdout: the path of the
# prometheus binary, then that of the target (everything else goes to stderr).
#
#   prometheus   go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_VERSION
#                (Go module proxy) -> $CACHE/prometheus-$PROMETHEUS3_VERSION/bin/prometheus,
#                built once per pinned version (several minutes on 2 cores, under nice);
#                its Go caches are removed once it is built.
#   target       ingest/tests/prometheus3-target (client_golang, pinned by its
#                go.mod and go.sum) -> target/prometheus3/prometheus3-target, rebuilt
#                only when its sources, go.mod, go.sum or the Go version change.
# $CACHE is ${PROMETHEUS3_CACHE:-~/.cache/metrics-pipeline-prometheus3}.
set -euo pipefail

# Prometheus 3.16.0: the Go module versions of Prometheus 3.x are v0.3XX.Y.
PROMETHEUS3_VERSION=${PROMETHEUS3_VERSION:-v0.316.0}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${PROMETHEUS3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metrics-pipeline-prometheus3}
TARGET_SRC="$REPO/ingest/tests/prometheus3-target"
TARGET_BIN="$REPO/target/prometheus3/prometheus3-target"

say() { printf 'scripts/prometheus3.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
command -v go >/dev/null || die "Go 1.26.7+ is needed (go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_VERSION)"
mkdir -p "$CACHE" "$(dirname "$TARGET_BIN")"

# One installer at a time per cache (parallel runs of make test).
exec 9>"$CACHE/.lock"
flock 9

PROMETHEUS="$CACHE/prometheus-$PROMETHEUS3_VERSION/bin/prometheus"
if [[ ! -x "$PROMETHEUS" ]]; then
    say "installing Prometheus $PROMETHEUS3_VERSION with go install (first run only, several minutes)"
    log="$CACHE/install.log"
    # 3.16.0 from v0.316.0: the version Prometheus reports in prometheus_build_info.
    minor=${PROMETHEUS3_VERSION#v0.}
    minor=${minor%%.*}
    release="${minor:0:1}.$((10#${minor:1})).${PROMETHEUS3_VERSION##*.}"
    start=$SECONDS
    # -modcacherw: the cache stays deletable by rm -rf for any user.
    if ! GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0 \
        GOBIN="$CACHE/prometheus-$PROMETHEUS3_VERSION/bin" \
        nice -n 10 go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
        "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS3_VERSION" >"$log" 2>&1; then
        cat "$log" >&2
        die "go install of prometheus $PROMETHEUS3_VERSION failed"
    fi
    rm -rf "$CACHE/go"
    say "installed $PROMETHEUS in $((SECONDS - start)) s"
fi
"$PROMETHEUS" --version >/dev/null 2>&1 || die "$PROMETHEUS does not run"

stamp_of() {
    {
        go version
        cd "$TARGET_SRC" && sha256sum ./*.go go.mod go.sum
    } | sha256sum | cut -d' ' -f1
}
stamp=$(stamp_of)
if [[ ! -x "$TARGET_BIN" || "$(cat "$TARGET_BIN.stamp" 2>/dev/null)" != "$stamp" ]]; then
    say "building the scrape target $TARGET_SRC"
    # -mod=readonly: go.sum must already hold every module (it is committed).
    (cd "$TARGET_SRC" && CGO_ENABLED=0 nice -n 10 go build -mod=readonly -trimpath -o "$TARGET_BIN.tmp" .)
    mv -f "$TARGET_BIN.tmp" "$TARGET_BIN"
    echo "$stamp" >"$TARGET_BIN.stamp"
fi

flock -u 9
echo "$PROMETHEUS"
echo "$TARGET_BIN"
