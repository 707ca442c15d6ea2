#!/usr/bin/env bash
# Builds k6 with this project's k6/x/remotewrite extension and prints the
# binary's path on stdout (everything else goes to stderr).
#
#   loadtest/k6/build-k6.sh            # -> target/k6/bin/k6
#
# What `xk6 build --with <extension>` does, without xk6: the Go module
# loadtest/k6/xk6-remotewrite pins go.k6.io/k6 in its go.mod/go.sum, and its
# cmd/k6/main.go is k6's own main plus a blank import of the extension; `go
# build` fetches the modules from the Go module proxy (GOPROXY, into the
# default module cache) on first use. The binary is rebuilt only when the
# module's Go sources, go.mod, go.sum or the Go version change (a stamp next
# to it records their hash). K6_BIN=PATH builds elsewhere.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MOD="$HERE/xk6-remotewrite"
OUT="${K6_BIN:-$REPO/target/k6/bin/k6}"

say() { echo "k6/build-k6.sh: $*" >&2; }

command -v go >/dev/null 2>&1 || {
    say "error: go not found; install Go 1.25+ (https://go.dev/dl/, or apt-get install golang-1.25 from Debian backports)"
    exit 1
}

stamp_of() {
    {
        go version
        cd "$MOD" && find . -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum
        sha256sum go.mod go.sum
    } | sha256sum | cut -d' ' -f1
}

stamp="$(stamp_of)"
if [[ -x "$OUT" && -f "$OUT.stamp" && "$(cat "$OUT.stamp")" == "$stamp" ]]; then
    say "k6 is up to date: $OUT"
    echo "$OUT"
    exit 0
fi

mkdir -p "$(dirname "$OUT")"
k6_version="$(cd "$MOD" && go list -m -f '{{.Version}}' go.k6.io/k6)"
say "building k6 $k6_version with k6/x/remotewrite ($(go version | cut -d' ' -f3); first build: a few minutes) ..."
start=$SECONDS
# -mod=readonly: go.sum must already hold every module (it is committed).
(cd "$MOD" && go build -mod=readonly -trimpath -o "$OUT.tmp" ./cmd/k6)
mv -f "$OUT.tmp" "$OUT"
echo "$stamp" >"$OUT.stamp"
say "built $OUT in $((SECONDS - start)) s"
echo "$OUT"
