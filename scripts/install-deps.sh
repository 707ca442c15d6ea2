#!/usr/bin/env bash
# Installs what building and testing need beyond the Rust, Java and Maven the
# machine has: cmake and libcurl/openssl headers for librdkafka's build, and
# Debian's prometheus for the end-to-end test, iproute2 and nftables for the
# cluster chaos tests, Chromium and Node.js for the binding view's browser test
# (correlator/tests/web.rs). Installs only what is missing.
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
[ -e /usr/include/curl/curl.h ] || [ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# The cluster chaos tests put each Kafka node in a network namespace (ip) and
# make its link slow (tc) or cut and lossy (nft).
{ command -v ip && command -v tc; } >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# The binding view's test drives Debian's Chromium with playwright-core from npm.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the prometheus service on install; the tests run their own.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
pkill -x prometheus >/dev/null 2>&1 || true
