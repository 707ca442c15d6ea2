# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
KAFKA := deploy/local/kafka.sh

.PHONY: all deps build test chaos chaos-cluster helm-test fuzz k6 bench-vs-prometheus bench-correlator bench-sustained bench-pipeline lint fmt run kafka-start kafka-stop clean

all: build

## Install missing system packages (cmake, libcurl/openssl headers, prometheus, kcat).
deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

## Every test of the workspace, unit and integration, against a real local Kafka
## (started here if it is not running, and stopped again afterwards). Prometheus 3
## for ingest/tests/prometheus3.rs is installed first (built from the Go module
## proxy into a cache on first use: several minutes, once per pinned version).
## correlator/tests/web.rs drives the binding view in Debian's Chromium with
## playwright-core (npm ci into correlator/tests/web/node_modules on first use).
test: build
	scripts/prometheus3.sh >/dev/null
	deploy/local/with-kafka.sh $(CARGO) test --workspace --no-fail-fast
	cd loadtest/k6/xk6-remotewrite && go test -mod=readonly ./wire/
	bash deploy/helm/test.sh

## The fault scenarios under load (chaos/): broker restart, broker frozen until
## fenced, SIGKILLed ingest and correlators, a rebalance, the materializer
## killed mid-snapshot; each ends with
## loadtest --verify --verify-outputs. Runs its own broker on CHAOS_KAFKA_PORT
## (39592). CHAOS_SECONDS of load at CHAOS_RATE samples/s per scenario.
CHAOS_SECONDS ?= 60
CHAOS_RATE ?= 20000
chaos: deps
	$(CARGO) build --release --bin ingest --bin correlator --bin loadtest --bin chaos
	mkdir -p target/chaos
	target/release/chaos --seconds $(CHAOS_SECONDS) --rate $(CHAOS_RATE) \
		--json target/chaos/outcomes.json | tee target/chaos/report.md

## The fault scenarios of a replicated cluster (chaos/src/cluster_scenarios.rs):
## three KRaft nodes (replication factor 3, min.insync.replicas=2), each in a
## network namespace of its own (rwk-<pid>-*, 10.219.0.0/16; needs root), with
## a partition leader or the controller killed, a node cut off, a rolling
## restart, two nodes down, a slow lossy link; each ends with
## loadtest --verify --verify-outputs. CHAOS_CLUSTER_SECONDS of load at
## CHAOS_CLUSTER_RATE samples/s per scenario; a node stays cut off, slowed or
## down for CHAOS_OUTAGE_SECONDS.
CHAOS_CLUSTER_SECONDS ?= 60
CHAOS_CLUSTER_RATE ?= 10000
CHAOS_OUTAGE_SECONDS ?= 30
chaos-cluster: deps
	$(CARGO) build --release --bin ingest --bin correlator --bin loadtest --bin chaos
	mkdir -p target/chaos-cluster
	target/release/chaos --cluster --seconds $(CHAOS_CLUSTER_SECONDS) --rate $(CHAOS_CLUSTER_RATE) \
		--outage-seconds $(CHAOS_OUTAGE_SECONDS) --work-dir target/chaos-cluster \
		--json target/chaos-cluster/outcomes.json | tee target/chaos-cluster/report.md

## The Helm chart: lint, render, validate against the Kubernetes and Strimzi schemas.
helm-test:
	bash deploy/helm/test.sh

## Fuzz every decoder and parser for FUZZ_SECONDS each (cargo-fuzz, nightly).
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

## A k6 scenario (loadtest/k6) against a private Kafka and ingest, on k6 built from the
## Go module proxy with the project's k6/x/remotewrite extension (target/k6/bin/k6, rebuilt
## only when loadtest/k6/xk6-remotewrite changes); K6=/path/to/k6 runs another k6 instead.
## K6_SCENARIO=constant-rate|ramp|spike|many-tenants, K6_ARGS="-e RATE=100 -e DURATION=1m".
K6_SCENARIO ?= constant-rate
k6: deps
	$(CARGO) build --release --bin ingest --bin bench
	target/release/bench k6 $(K6_SCENARIO) --local $(K6_ARGS)

## ingest against Prometheus' own remote-write receiver, same load in the same run
## (private Kafka on 39792/39793); Markdown table with the ratios, also written to
## target/bench-vs-prometheus/report.md. BENCH_DURATION=20, BENCH_SERIES=200000, ...
bench-vs-prometheus: deps
	$(CARGO) build --release --bin ingest --bin loadtest --bin bench
	target/release/bench vs-prometheus

## The correlator's Kafka-to-Kafka throughput on a backlog (private Kafka on 39892/39893):
## samples/s, bound records/s, CPU and peak RSS, with 3 bindings per sample and with 1;
## Markdown table, also in target/bench-correlator/report.md. BENCH_SERIES=100000, BENCH_SECONDS=10, ...
## (`target/release/bench correlator --help` lists them all).
bench-correlator: deps
	$(CARGO) build --release --bin ingest --bin correlator --bin loadtest --bin bench --example produce_ceiling
	target/release/bench correlator

## ingest held at BENCH_RATE samples/s (1000000) for BENCH_DURATION s (60), then every
## acknowledged sample checked in Kafka (private Kafka on 39692/39693): throughput,
## latency, missing/duplicated, CPU of ingest, broker and generator, peak RSS;
## Markdown in target/bench-sustained/report.md.
bench-sustained: deps
	$(CARGO) build --release --bin ingest --bin loadtest --bin bench
	target/release/bench sustained

## The whole pipeline held at a rate: loadtest -> ingest -> Kafka -> correlator (built-in
## rules) -> Kafka for BENCH_DURATION s (60) at each of BENCH_RATES (highest first) until
## one is sustained, every acknowledged sample verified out of the join (private Kafka on
## 39992/39993): rate, latency, end-to-end lag p50/p99, CPU per process; Markdown in
## target/bench-pipeline/report.md.
bench-pipeline: deps
	$(CARGO) build --release --bin ingest --bin correlator --bin loadtest --bin bench
	target/release/bench pipeline

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The pipeline locally: Kafka, ingest with a development key, and a real
## Prometheus remote-writing into it. Ctrl-C stops everything.
run: deps
	$(CARGO) build --release --bin ingest --bin correlator
	scripts/run-local.sh

kafka-start:
	$(KAFKA) start

kafka-stop:
	$(KAFKA) stop

clean:
	$(KAFKA) stop
	$(CARGO) clean
