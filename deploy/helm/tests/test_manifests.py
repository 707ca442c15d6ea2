"""What the rendered manifests must do, beyond being schema-valid."""

import base64
import json
import math
import re
import tomllib

import pytest

from conftest import CHART, NAMESPACE, RELEASE, helm_template

INGEST = f"{RELEASE}-ingest"
CORRELATOR = f"{RELEASE}-correlator"


# --- helpers -------------------------------------------------------------------

def container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(deployment):
    c = container(deployment)
    names = [e["name"] for e in c["env"]]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"environment variables set twice: {duplicates}"
    return {e["name"]: e.get("value") for e in c["env"]}


def port_number(c, port):
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    assert numbers, f"no container port named {port!r}"
    return numbers[0]


def listen_port(value):
    host, _, port = value.rpartition(":")
    assert host == "0.0.0.0"
    return int(port)


def mounted_file(deployment, path):
    """The volume and key that a file path inside the container comes from."""
    c = container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in c["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            assert "subPath" not in mount, "subPath mounts never see updates of their Secret or ConfigMap"
            return volumes[mount["name"]], path[len(prefix):]
    pytest.fail(f"{path} is not on any volume mount")


def secret_data(docs, name):
    secret = docs.one("Secret", name)
    assert secret["metadata"]["name"] == name
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


# --- probes and ports ------------------------------------------------------------

@pytest.mark.parametrize("name,listen_var,port_name", [
    (INGEST, "INGEST_LISTEN", "http"),
    (CORRELATOR, "CORRELATOR_LISTEN", "http-metrics"),
])
def test_probes_on_the_right_paths_and_ports(docs, name, listen_var, port_name):
    deployment = docs.one("Deployment", name)
    c = container(deployment)
    listen = listen_port(env(deployment)[listen_var])
    readiness, liveness = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert readiness["port"] == liveness["port"] == port_name
    assert port_number(c, readiness["port"]) == listen == port_number(c, port_name)


@pytest.mark.parametrize("name,port_name", [(INGEST, "http"), (CORRELATOR, "http-metrics")])
def test_services_select_the_pods_and_target_a_container_port(docs, name, port_name):
    deployment, service = docs.one("Deployment", name), docs.one("Service", name)
    assert selects(service["spec"]["selector"], pod_labels(deployment))
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment))
    (port,) = service["spec"]["ports"]
    assert port["name"] == port_name and port["targetPort"] == port_name
    port_number(container(deployment), port["targetPort"])
    # The other component's pods are not selected.
    other = docs.one("Deployment", CORRELATOR if name == INGEST else INGEST)
    assert not selects(service["spec"]["selector"], pod_labels(other))


def test_ingest_service_is_where_the_readme_says(docs):
    service = docs.one("Service", INGEST)
    assert service["metadata"]["name"] == INGEST
    assert service["spec"]["ports"][0]["port"] == 8080


def test_commands_pick_the_binary(docs):
    assert container(docs.one("Deployment", INGEST))["command"] == ["/usr/local/bin/ingest"]
    assert container(docs.one("Deployment", CORRELATOR))["command"] == ["/usr/local/bin/correlator"]
    images = {container(d)["image"] for d in docs.all("Deployment")}
    assert len(images) == 1, "both services run the same image"


# --- replicas, HPA, KEDA ------------------------------------------------------------

def test_no_replicas_in_ingest_deployment_when_the_hpa_is_on(docs):
    hpa = docs.one("HorizontalPodAutoscaler", INGEST)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": INGEST}
    assert "replicas" not in docs.one("Deployment", INGEST)["spec"]
    metrics = hpa["spec"]["metrics"]
    assert {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}} in metrics
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_replicas_and_no_hpa_when_autoscaling_is_off():
    r = helm_template("--set", "ingest.autoscaling.enabled=false", "--set", "ingest.replicas=3")
    assert r.returncode == 0, r.stderr
    assert r.one("Deployment", INGEST)["spec"]["replicas"] == 3
    assert not r.all("HorizontalPodAutoscaler")


def test_hpa_requests_per_second_pods_metric():
    r = helm_template(values_set="all-on")
    hpa = r.one("HorizontalPodAutoscaler", INGEST)
    pods = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == [{"type": "Pods", "pods": {"metric": {"name": "ingest_http_requests_per_second"},
                                               "target": {"type": "AverageValue", "averageValue": "200"}}}]


def test_requests_per_second_needs_a_target():
    r = helm_template("--set", "ingest.autoscaling.requestsPerSecond.enabled=true")
    assert r.returncode != 0
    assert "averageValue" in r.stderr


def test_ingest_rolls_without_losing_capacity(docs):
    strategy = docs.one("Deployment", INGEST)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_correlator_replicas_default_within_partitions(docs):
    deployment = docs.one("Deployment", CORRELATOR)
    partitions = docs_samples_partitions(docs)
    replicas = deployment["spec"].get("replicas")
    if replicas is None:
        scaled = docs.one("ScaledObject", CORRELATOR)
        assert scaled["spec"]["maxReplicaCount"] <= partitions
    else:
        assert replicas <= partitions


def docs_samples_partitions(docs):
    topics = [t for t in docs.all("KafkaTopic") if t["spec"]["topicName"] == "metrics.samples"]
    if topics:
        return topics[0]["spec"]["partitions"]
    return int(env(docs.one("Deployment", CORRELATOR))["TOPIC_PARTITIONS"])


def test_correlator_replicas_above_partitions_fail_rendering():
    r = helm_template("--set", "topics.partitions=4", "--set", "correlator.replicas=5")
    assert r.returncode != 0
    assert "correlator.replicas (5) exceeds the 4 partitions of metrics.samples" in r.stderr


def test_correlator_replicas_equal_to_partitions_render():
    r = helm_template("--set", "topics.partitions=4", "--set", "correlator.replicas=4")
    assert r.returncode == 0, r.stderr
    assert r.one("Deployment", CORRELATOR)["spec"]["replicas"] == 4


def test_correlator_bound_uses_the_strimzi_partitions_of_samples():
    base = ["--set", "topics.strimzi.enabled=true", "--set", "topics.partitions=4"]
    ok = helm_template(*base, "--set", "topics.strimzi.partitions.samples=6", "--set", "correlator.replicas=6")
    assert ok.returncode == 0, ok.stderr
    too_many = helm_template(*base, "--set", "topics.strimzi.partitions.samples=6", "--set", "correlator.replicas=7")
    assert too_many.returncode != 0
    assert "exceeds the 6 partitions" in too_many.stderr


def test_keda_replaces_replicas_and_is_bounded_by_partitions():
    r = helm_template("--set", "correlator.keda.enabled=true", "--set", "topics.partitions=6")
    assert r.returncode == 0, r.stderr
    scaled = r.one("ScaledObject", CORRELATOR)
    assert "replicas" not in r.one("Deployment", CORRELATOR)["spec"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == CORRELATOR
    assert scaled["spec"]["maxReplicaCount"] == 6
    assert scaled["spec"]["minReplicaCount"] >= 1
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == "metrics.samples"
    assert meta["consumerGroup"] == env(r.one("Deployment", CORRELATOR))["KAFKA_GROUP_ID"]
    assert meta["bootstrapServers"] == env(r.one("Deployment", CORRELATOR))["KAFKA_BROKERS"]
    assert all(isinstance(v, str) for v in meta.values())

    over = helm_template("--set", "correlator.keda.enabled=true", "--set", "topics.partitions=6",
                         "--set", "correlator.keda.maxReplicaCount=7")
    assert over.returncode != 0 and "maxReplicaCount (7) exceeds the 6 partitions" in over.stderr
    to_zero = helm_template("--set", "correlator.keda.enabled=true", "--set", "correlator.keda.minReplicaCount=0")
    assert to_zero.returncode != 0 and "minReplicaCount must be at least 1" in to_zero.stderr


# --- API keys -------------------------------------------------------------------------

def test_api_keys_secret_mounted_and_api_keys_file_points_at_it(docs):
    deployment = docs.one("Deployment", INGEST)
    path = env(deployment)["API_KEYS_FILE"]
    volume, key = mounted_file(deployment, path)
    secret_name = volume["secret"]["secretName"]
    data = secret_data(docs, secret_name)
    assert key in data
    keys = tomllib.loads(data[key])
    for entry in keys.get("keys", []):
        assert entry["tenant"] and (("key" in entry) != ("sha256" in entry))


def test_all_on_api_keys_render_as_toml():
    r = helm_template(values_set="all-on")
    keys = tomllib.loads(secret_data(r, f"{RELEASE}-api-keys")["api-keys.toml"])["keys"]
    assert keys[0] == {"tenant": "acme", "key": "test-api-key-0123456789",
                       "samples_per_second": 500000, "burst_samples": 1000000}
    assert keys[1]["sha256"] == "ab44c6ca79bf7d0f4a25acccaa4bbddff2a58d6ba12d450474b174b08591ed7e"
    assert keys[1]["max_labels_per_series"] == 60
    assert keys[1]["shard_size"] == 4


def test_existing_api_keys_secret():
    r = helm_template("--set", "ingest.apiKeys.existingSecret=tenant-keys",
                      "--set", "ingest.apiKeys.existingSecretKey=keys.toml")
    assert r.returncode == 0, r.stderr
    deployment = r.one("Deployment", INGEST)
    volume, key = mounted_file(deployment, env(deployment)["API_KEYS_FILE"])
    assert volume["secret"]["secretName"] == "tenant-keys"
    assert key == "keys.toml"
    assert not [s for s in r.all("Secret") if s["metadata"]["name"].endswith("api-keys")]


def test_api_keys_with_an_unknown_field_fail_rendering():
    r = helm_template("--set", "ingest.apiKeys.keys[0].tenant=acme", "--set", "ingest.apiKeys.keys[0].key=k",
                      "--set", "ingest.apiKeys.keys[0].rate=5")
    assert r.returncode != 0 and 'unknown field "rate"' in r.stderr
    r = helm_template("--set", "ingest.apiKeys.keys[0].tenant=acme")
    assert r.returncode != 0 and "exactly one of key or sha256" in r.stderr


# --- Kafka client configuration ----------------------------------------------------------

def test_kafka_properties_reach_both_services_as_a_toml_file():
    r = helm_template(values_set="all-on")
    for name, var in [(INGEST, "INGEST_CONFIG"), (CORRELATOR, "CORRELATOR_CONFIG")]:
        deployment = r.one("Deployment", name)
        volume, key = mounted_file(deployment, env(deployment)[var])
        config = tomllib.loads(secret_data(r, volume["secret"]["secretName"])[key])
        assert set(config) == {"kafka"} and set(config["kafka"]) == {"properties"}, \
            "the services reject unknown keys in their config file"
        props = config["kafka"]["properties"]
        assert props["security.protocol"] == "SASL_SSL"
        assert props["sasl.password"] == "not-a-real-password"
        assert props["message.max.bytes"] == "10485760"
        assert all(isinstance(v, str) for v in props.values())
        assert "checksum/kafka-config" in deployment["spec"]["template"]["metadata"]["annotations"]
        mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert "/etc/metrics-pipeline/secrets/my-cluster-cluster-ca-cert" in mounts
        assert props["ssl.ca.location"].startswith("/etc/metrics-pipeline/secrets/my-cluster-cluster-ca-cert/")


def test_existing_kafka_config_secret():
    r = helm_template("--set", "kafka.existingConfigSecret=pipeline-kafka", "--set", "kafka.properties.x=y")
    assert r.returncode == 0, r.stderr
    for name, var in [(INGEST, "INGEST_CONFIG"), (CORRELATOR, "CORRELATOR_CONFIG")]:
        deployment = r.one("Deployment", name)
        volume, key = mounted_file(deployment, env(deployment)[var])
        assert volume["secret"]["secretName"] == "pipeline-kafka" and key == "config.toml"
    assert not [s for s in r.all("Secret") if s["metadata"]["name"].endswith("kafka-config")]


def test_no_config_file_without_properties():
    r = helm_template()
    assert "INGEST_CONFIG" not in env(r.one("Deployment", INGEST))
    assert "CORRELATOR_CONFIG" not in env(r.one("Deployment", CORRELATOR))
    assert not [s for s in r.all("Secret") if s["metadata"]["name"].endswith("kafka-config")]


# --- security --------------------------------------------------------------------------------

def test_non_root_read_only_and_no_privileges(docs):
    for deployment in docs.all("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, "a writable /tmp on a read-only root"
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]


# --- disruption, drain, spread ----------------------------------------------------------------------

@pytest.mark.parametrize("name", [INGEST, CORRELATOR])
def test_pod_disruption_budget(docs, name):
    pdb = docs.one("PodDisruptionBudget", name)
    assert pdb["apiVersion"] == "policy/v1"
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(docs.one("Deployment", name)))
    assert not selects(pdb["spec"]["selector"]["matchLabels"],
                       pod_labels(docs.one("Deployment", CORRELATOR if name == INGEST else INGEST)))


def test_ingest_prestop_and_grace_period_cover_the_drain(docs):
    deployment = docs.one("Deployment", INGEST)
    c, e = container(deployment), env(deployment)
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop > 0
    drain = (int(e["SHUTDOWN_DELAY_MS"]) + int(e["SHUTDOWN_TIMEOUT_MS"])) / 1000
    assert int(e["SHUTDOWN_DELAY_MS"]) > 0, "/readyz must fail for a while before the listener closes"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain > drain


def test_correlator_grace_period_covers_its_shutdown(docs):
    deployment = docs.one("Deployment", CORRELATOR)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(env(deployment)["SHUTDOWN_TIMEOUT_MS"]) / 1000


def test_too_short_grace_period_fails_rendering():
    r = helm_template("--set", "ingest.terminationGracePeriodSeconds=45")  # 10 + 5 + 30 = 45
    assert r.returncode != 0 and "must exceed" in r.stderr
    r = helm_template("--set", "ingest.terminationGracePeriodSeconds=46")
    assert r.returncode == 0, r.stderr
    r = helm_template("--set", "correlator.terminationGracePeriodSeconds=30")
    assert r.returncode != 0 and "must exceed" in r.stderr


@pytest.mark.parametrize("name", [INGEST, CORRELATOR])
def test_topology_spread_selects_own_pods(docs, name):
    deployment = docs.one("Deployment", name)
    constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "kubernetes.io/hostname" for c in constraints)
    for c in constraints:
        assert selects(c["labelSelector"]["matchLabels"], pod_labels(deployment))
        assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == name.rsplit("-", 1)[1]


# --- topics ----------------------------------------------------------------------------------------

CLEANUP = {
    "metrics.samples": "delete",
    "topology.raw": "delete",
    "topology.components": "compact",
    "metrics.bound": "delete",
    "metrics.unbound": "delete",
}


def test_strimzi_topics_and_cleanup_policies():
    r = helm_template(values_set="all-on")
    topics = {t["spec"]["topicName"]: t for t in r.all("KafkaTopic")}
    assert set(topics) == set(CLEANUP)
    for name, topic in topics.items():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"
        assert topic["spec"]["config"]["cleanup.policy"] == CLEANUP[name], name
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The values try to make metrics.samples compacted: the chart keeps `delete`.
    assert topics["metrics.samples"]["spec"]["partitions"] == 16
    assert topics["metrics.samples"]["spec"]["config"]["retention.ms"] == "86400000"
    assert topics["topology.raw"]["spec"]["partitions"] == 12


def test_strimzi_topics_follow_renamed_topics():
    r = helm_template("--set", "topics.strimzi.enabled=true", "--set", "topics.names.topology=tenant_a.topology")
    assert r.returncode == 0, r.stderr
    topic = [t for t in r.all("KafkaTopic") if t["spec"]["topicName"] == "tenant_a.topology"]
    assert topic and topic[0]["spec"]["config"]["cleanup.policy"] == "compact"
    assert topic[0]["metadata"]["name"] == "tenant-a.topology"
    assert env(r.one("Deployment", CORRELATOR))["TOPIC_TOPOLOGY"] == "tenant_a.topology"


def test_create_topics_false_when_strimzi_topics_are_on(docs):
    strimzi = bool(docs.all("KafkaTopic"))
    for deployment in docs.all("Deployment"):
        assert env(deployment)["CREATE_TOPICS"] == ("false" if strimzi else "true")


def test_create_topics_false_even_if_asked_with_strimzi():
    r = helm_template("--set", "topics.strimzi.enabled=true", "--set", "topics.create=true")
    for deployment in r.all("Deployment"):
        assert env(deployment)["CREATE_TOPICS"] == "false"


def test_no_kafka_topics_by_default():
    assert not helm_template().all("KafkaTopic")


def test_topic_names_reach_the_services(docs):
    ingest, correlator = env(docs.one("Deployment", INGEST)), env(docs.one("Deployment", CORRELATOR))
    assert ingest["TOPIC_SAMPLES"] == correlator["TOPIC_SAMPLES"] == "metrics.samples"
    assert ingest["TOPIC_TOPOLOGY_RAW"] == correlator["TOPIC_TOPOLOGY_RAW"] == "topology.raw"
    assert correlator["TOPIC_TOPOLOGY"] == "topology.components"
    assert correlator["TOPIC_BOUND"] == "metrics.bound"
    assert correlator["TOPIC_UNBOUND"] == "metrics.unbound"
    assert ingest["KAFKA_BROKERS"] == correlator["KAFKA_BROKERS"]


# --- correlator options ----------------------------------------------------------------------------------

def test_bindings_configmap_mounted_for_bindings_file():
    r = helm_template(values_set="all-on")
    deployment = r.one("Deployment", CORRELATOR)
    volume, key = mounted_file(deployment, env(deployment)["BINDINGS_FILE"])
    configmap = [c for c in r.all("ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"]]
    rules = tomllib.loads(configmap[0]["data"][key])["rules"]
    assert rules[0]["name"] == "checkout-service"
    assert "checksum/bindings" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_no_bindings_file_by_default():
    assert "BINDINGS_FILE" not in env(helm_template().one("Deployment", CORRELATOR))


def test_correlator_can_be_turned_off():
    r = helm_template("--set", "correlator.enabled=false", "--set", "serviceMonitor.enabled=true")
    assert r.returncode == 0, r.stderr
    assert [d["metadata"]["name"] for d in r.all("Deployment")] == [INGEST]
    assert [d["metadata"]["name"] for d in r.all("ServiceMonitor")] == [INGEST]


# --- ingress, monitoring ------------------------------------------------------------------------------------

def test_ingress_routes_the_receiver_paths_to_the_ingest_service():
    r = helm_template(values_set="all-on")
    ingress = r.one("Ingress", INGEST)
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert {p["path"] for p in paths} >= {"/receiver"}
    for p in paths:
        assert p["backend"]["service"] == {"name": INGEST, "port": {"name": "http"}}
        assert not p["path"].startswith("/metrics")


def test_service_monitors_scrape_named_service_ports():
    r = helm_template(values_set="all-on")
    for monitor in r.all("ServiceMonitor"):
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        services = [s for s in r.all("Service") if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert len(services) == 1
        assert endpoint["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


# --- dashboard ----------------------------------------------------------------------------------------------

INGEST_METRICS = {
    "ingest_http_requests_total", "ingest_http_request_duration_seconds_bucket", "ingest_samples_accepted_total",
    "ingest_samples_rejected_total", "ingest_series_rejected_total", "ingest_received_bytes_total",
    "ingest_decode_duration_seconds_bucket", "ingest_kafka_publish_duration_seconds_bucket",
    "ingest_kafka_records_total", "ingest_kafka_producer_queue_messages", "ingest_rate_limited_requests_total",
    "ingest_api_keys", "ingest_inflight_bytes", "ingest_topology_parts_total",
}
CORRELATOR_METRICS = {
    "correlator_bound_points_total", "correlator_released_points_total", "correlator_unbound_points_total",
    "correlator_records_consumed_total", "correlator_records_skipped_total", "correlator_records_produced_total",
    "correlator_topology_changes_total", "correlator_snapshots_abandoned_total", "correlator_topology_components",
    "correlator_topology_identifiers", "correlator_pending_samples", "correlator_series_cache",
    "correlator_open_snapshots", "correlator_transactions_aborted_total",
}
EXPORTER_METRICS = {"kafka_consumergroup_lag"}


def dashboard():
    return json.loads((CHART / "dashboards" / "pipeline.json").read_text())


def panels():
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def exprs(panel):
    return [t["expr"] for t in panel["targets"]]


def metric_names(expr):
    names = set(re.findall(r"\b((?:ingest|correlator|kafka)_[a-z_]+)\b", expr))
    return names


def test_dashboard_configmap():
    r = helm_template(values_set="all-on")
    (configmap,) = [c for c in r.all("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = configmap["data"].values()
    assert json.loads(text) == dashboard()
    assert not [c for c in helm_template().all("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]


def test_dashboard_uses_only_real_metric_names():
    used = set()
    for panel in panels():
        for expr in exprs(panel):
            used |= metric_names(expr)
    unknown = used - INGEST_METRICS - CORRELATOR_METRICS - EXPORTER_METRICS
    assert not unknown, f"not metrics of the services: {unknown}"
    assert used >= INGEST_METRICS | CORRELATOR_METRICS | EXPORTER_METRICS, \
        f"metrics without a panel: {(INGEST_METRICS | CORRELATOR_METRICS) - used}"


@pytest.mark.parametrize("metrics", [
    {"ingest_samples_accepted_total"},
    {"ingest_samples_rejected_total"},
    {"ingest_http_request_duration_seconds_bucket"},
    {"ingest_kafka_publish_duration_seconds_bucket"},
    {"ingest_kafka_producer_queue_messages"},
    {"ingest_rate_limited_requests_total"},
    {"correlator_bound_points_total"},
    {"correlator_unbound_points_total"},
    {"kafka_consumergroup_lag"},
    {"correlator_topology_components", "correlator_topology_identifiers"},
], ids=lambda m: "+".join(sorted(m)))
def test_dashboard_has_a_panel_for(metrics):
    assert any(metrics <= set().union(*(metric_names(e) for e in exprs(p))) for p in panels())


def test_dashboard_details():
    ps = panels()
    latency = [p for p in ps if "ingest_http_request_duration_seconds_bucket" in " ".join(exprs(p))]
    assert any("histogram_quantile(0.5," in e for e in exprs(latency[0]))
    assert any("histogram_quantile(0.99," in e for e in exprs(latency[0]))
    rejected = [p for p in ps if "ingest_samples_rejected_total" in " ".join(exprs(p))][0]
    assert any("by (reason)" in e for e in exprs(rejected))
    unbound = [p for p in ps if "correlator_unbound_points_total" in " ".join(exprs(p))][0]
    assert any("by (reason)" in e for e in exprs(unbound))
    lag = [p for p in ps if "kafka_consumergroup_lag" in " ".join(exprs(p))][0]
    assert "exporter" in lag["description"].lower()
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in ps:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and not math.isnan(grid["y"])


def test_env_cannot_override_what_the_chart_sets():
    r = helm_template("--set", "ingest.env.SHUTDOWN_DELAY_MS=1")
    assert r.returncode != 0 and "ingest.env.SHUTDOWN_DELAY_MS is set by the chart" in r.stderr
    r = helm_template("--set", "correlator.env.KAFKA_GROUP_ID=x")
    assert r.returncode != 0 and "correlator.env.KAFKA_GROUP_ID is set by the chart" in r.stderr
    r = helm_template("--set", "ingest.env.MAX_BODY_BYTES=1048576")
    assert r.returncode == 0, r.stderr
    assert env(r.one("Deployment", INGEST))["MAX_BODY_BYTES"] == "1048576"


def test_tls_mounts_the_secret_and_switches_probes_and_scrapes_to_https():
    r = helm_template(
        "--set", "ingest.tls.secretName=ingest-tls",
        "--set", "serviceMonitor.enabled=true",
    )
    assert r.returncode == 0, r.stderr
    deployment = r.one("Deployment", INGEST)
    variables = env(deployment)
    for variable, key in (("TLS_CERT_FILE", "tls.crt"), ("TLS_KEY_FILE", "tls.key")):
        volume, path = mounted_file(deployment, variables[variable])
        assert volume["secret"]["secretName"] == "ingest-tls"
        assert path == key
    c = container(deployment)
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    monitor = r.one("ServiceMonitor", INGEST)
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"


def test_without_tls_nothing_changes(docs):
    deployment = docs.one("Deployment", INGEST)
    assert "TLS_CERT_FILE" not in env(deployment)
    assert "scheme" not in container(deployment)["readinessProbe"]["httpGet"]


def test_tls_files_cannot_be_set_through_env():
    r = helm_template("--set", "ingest.env.TLS_CERT_FILE=/x")
    assert r.returncode != 0
