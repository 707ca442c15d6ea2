#!/usr/bin/env bash
# `make run`: the whole pipeline locally. Kafka, ingest with a development key,
# the correlator, a sample Kubernetes topology posted to the intake, a real
# Prometheus scraping the three services (labelled as the pods of that
# topology) and remote-writing into ingest with basic auth, and `correlator
# forward` writing the bound series into a second, downstream Prometheus.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="$REPO/target/dev"
mkdir -p "$DEV"

DEV_KEY="dev-api-key-0123456789"
INGEST_PORT="${INGEST_PORT:-8080}"
CORRELATOR_PORT="${CORRELATOR_PORT:-8081}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
DOWNSTREAM_PORT="${DOWNSTREAM_PORT:-19091}"
FORWARD_PORT="${FORWARD_PORT:-8082}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"

cat >"$DEV/keys.toml" <<KEYS
[[keys]]
tenant = "dev"
key = "$DEV_KEY"
KEYS

cat >"$DEV/prometheus.yml" <<PROM
global:
  scrape_interval: 5s
  external_labels:
    cluster_name: demo-cluster
# The labels a Kubernetes service discovery would add: they bind each series
# to the pod and container of deploy/local/sample-topology.json.
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
        labels: {namespace: monitoring, pod: prometheus-0, container: prometheus}
  - job_name: ingest
    static_configs:
      - targets: ["127.0.0.1:$INGEST_PORT"]
        labels: {namespace: monitoring, pod: ingest-0, container: ingest}
  - job_name: correlator
    static_configs:
      - targets: ["127.0.0.1:$CORRELATOR_PORT"]
        labels: {namespace: monitoring, pod: correlator-0, container: correlator}
remote_write:
  - url: http://127.0.0.1:$INGEST_PORT/receiver/prometheus/api/v1/write
    basic_auth:
      username: apikey
      password: $DEV_KEY
    queue_config:
      batch_send_deadline: 2s
PROM

pids=()
kafka_started=0
cleanup() {
    trap - EXIT INT TERM
    echo
    echo "run-local: stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$kafka_started" = 1 ]; then "$REPO/deploy/local/kafka.sh" stop; fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if ! "$REPO/deploy/local/kafka.sh" status >/dev/null 2>&1; then
    "$REPO/deploy/local/kafka.sh" start
    kafka_started=1
fi

# wait_ready NAME PORT TRIES: until NAME answers /readyz on PORT, TRIES times
# 0.2 s at most; else says where its log is and stops the script.
wait_ready() {
    for _ in $(seq 1 "$3"); do
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    curl -fs "http://127.0.0.1:$2/readyz" >/dev/null || { echo "run-local: $1 did not become ready; see $DEV/$1.log"; exit 1; }
}

API_KEYS_FILE="$DEV/keys.toml" INGEST_LISTEN="127.0.0.1:$INGEST_PORT" \
    "$REPO/target/release/ingest" >"$DEV/ingest.log" 2>&1 &
pids+=($!)
wait_ready ingest "$INGEST_PORT" 100

CORRELATOR_LISTEN="127.0.0.1:$CORRELATOR_PORT" "$REPO/target/release/correlator" >"$DEV/correlator.log" 2>&1 &
pids+=($!)
wait_ready correlator "$CORRELATOR_PORT" 150

# The sample topology, posted as the StackState Agent would (three parts, one snapshot).
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$INGEST_PORT/receiver/stsAgent/intake?api_key=$DEV_KEY" \
    -H 'content-type: application/json' --data-binary @"$REPO/deploy/local/sample-topology.json"

prometheus --config.file="$DEV/prometheus.yml" --storage.tsdb.path="$DEV/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$DEV/prometheus.log" 2>&1 &
pids+=($!)

# The downstream store: a Prometheus that only receives (Debian's 2.42 speaks
# remote-write 1.0), fed by the forwarder from metrics.bound.
printf 'global:\n  scrape_interval: 1m\n' >"$DEV/downstream.yml"
prometheus --config.file="$DEV/downstream.yml" --storage.tsdb.path="$DEV/downstream-data" \
    --web.listen-address="127.0.0.1:$DOWNSTREAM_PORT" --web.enable-remote-write-receiver \
    >"$DEV/downstream.log" 2>&1 &
pids+=($!)
# A short drain on Ctrl-C: the downstream Prometheus stops at the same time.
FORWARD_LISTEN="127.0.0.1:$FORWARD_PORT" SHUTDOWN_TIMEOUT_MS=3000 "$REPO/target/release/correlator" forward \
    --url "http://127.0.0.1:$DOWNSTREAM_PORT/api/v1/write" --protocol 1.0 >"$DEV/forward.log" 2>&1 &
pids+=($!)

# The memory of every series bound to the pod prometheus-0 and its container
# and namespace, one line per component label, in Prometheus's own graph page.
QUERY='process_resident_memory_bytes{pod="prometheus-0"}'
GRAPH_URL="http://127.0.0.1:$DOWNSTREAM_PORT/graph?g0.expr=$(jq -rn --arg q "$QUERY" '$q|@uri')&g0.tab=0&g0.range_input=15m"

cat <<INFO

  Kafka       $KAFKA_BROKERS
  ingest      http://127.0.0.1:$INGEST_PORT   (tenant "dev", key $DEV_KEY; log: $DEV/ingest.log)
  correlator  http://127.0.0.1:$CORRELATOR_PORT   (log: $DEV/correlator.log)
  Prometheus  http://127.0.0.1:$PROMETHEUS_PORT  remote-writing into ingest (log: $DEV/prometheus.log)
  forwarder   http://127.0.0.1:$FORWARD_PORT   metrics.bound into the downstream Prometheus (log: $DEV/forward.log)
  downstream  http://127.0.0.1:$DOWNSTREAM_PORT  a Prometheus holding the bound series (log: $DEV/downstream.log)

  Open the memory of the series bound to the pod prometheus-0, by component (within ~20 s):
    $GRAPH_URL

  Watch series arrive bound to their pods and containers (within ~10 s):
    KAFKA_BROKERS=$KAFKA_BROKERS target/release/correlator tail
  ...and those that did not bind, with the reason:
    KAFKA_BROKERS=$KAFKA_BROKERS target/release/correlator tail --unbound
  Both in a browser, by tenant, component and reason, at http://127.0.0.1:8090:
    KAFKA_BROKERS=$KAFKA_BROKERS target/release/correlator tail --web 127.0.0.1:8090 --from-beginning
  The raw remote-write records (one per request and partition, keyed by tenant):
    kcat -b $KAFKA_BROKERS -C -t metrics.samples -f 'partition %p offset %o key %k %S bytes\n'
  The services' own metrics:
    curl -s http://127.0.0.1:$INGEST_PORT/metrics | grep ingest_samples_accepted
    curl -s http://127.0.0.1:$CORRELATOR_PORT/metrics | grep -E 'correlator_(bound|unbound)_points'
    curl -s http://127.0.0.1:$FORWARD_PORT/metrics | grep -E 'correlator_forward_(sent|failed|lag)' 

  Ctrl-C stops everything.
INFO
wait "${pids[@]}"
