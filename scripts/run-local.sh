#!/usr/bin/env bash
# `make run`: Kafka, ingest with a development key, and a real Prometheus
# scraping itself and ingest and remote-writing into ingest with basic auth.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="$REPO/target/dev"
mkdir -p "$DEV"

DEV_KEY="dev-api-key-0123456789"
INGEST_PORT="${INGEST_PORT:-8080}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
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
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
  - job_name: ingest
    static_configs:
      - targets: ["127.0.0.1:$INGEST_PORT"]
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

API_KEYS_FILE="$DEV/keys.toml" INGEST_LISTEN="127.0.0.1:$INGEST_PORT" \
    "$REPO/target/release/ingest" >"$DEV/ingest.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$INGEST_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$INGEST_PORT/readyz" >/dev/null || { echo "run-local: ingest did not become ready; see $DEV/ingest.log"; exit 1; }

prometheus --config.file="$DEV/prometheus.yml" --storage.tsdb.path="$DEV/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$DEV/prometheus.log" 2>&1 &
pids+=($!)

cat <<INFO

  Kafka       $KAFKA_BROKERS
  ingest      http://127.0.0.1:$INGEST_PORT   (tenant "dev", key $DEV_KEY; log: $DEV/ingest.log)
  Prometheus  http://127.0.0.1:$PROMETHEUS_PORT  remote-writing into ingest (log: $DEV/prometheus.log)

  Watch the samples arrive (one record per request and partition, keyed by tenant):
    kcat -b $KAFKA_BROKERS -C -t metrics.samples -f 'partition %p offset %o key %k %S bytes\n'
  Ingest's own metrics:
    curl -s http://127.0.0.1:$INGEST_PORT/metrics | grep ingest_samples_accepted

  Ctrl-C stops everything.
INFO
wait "${pids[@]}"
