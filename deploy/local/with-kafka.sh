#!/usr/bin/env bash
# Runs a command with the local broker up: starts it if it is not running and
# stops it afterwards, whatever the command's outcome.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=0
if ! "$HERE/kafka.sh" status >/dev/null 2>&1; then
    "$HERE/kafka.sh" start
    started=1
fi
cleanup() {
    if [ "$started" = 1 ]; then
        "$HERE/kafka.sh" stop
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$@"
