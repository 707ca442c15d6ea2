"""deploy/Dockerfile cannot be built here (no container engine): check that it
agrees with the workspace and with the chart."""

import re
import tomllib

import yaml

from conftest import CHART

REPO = CHART.parents[2]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def instructions():
    """(instruction, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield word.upper(), " ".join(rest.split())


def stages():
    current, result = None, {}
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip()
            result[current] = [(word, rest)]
        elif current:
            result[current].append((word, rest))
    return result


def test_multi_stage_builder_and_slim_runtime():
    s = stages()
    assert list(s) == ["builder", "runtime"]
    assert s["builder"][0][1].startswith("rust:")
    assert s["runtime"][0][1].startswith("debian:12-slim")


def test_builder_installs_what_librdkafka_needs_and_builds_both_binaries():
    builder = " ".join(rest for _, rest in stages()["builder"])
    for package in ["cmake", "libcurl4-openssl-dev", "libssl-dev", "pkg-config"]:
        assert f" {package} " in f" {builder} ", package
    assert "cargo build --release --locked --bin ingest --bin correlator" in builder


def test_every_workspace_member_is_copied():
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    copied = {rest.split()[0] for word, rest in stages()["builder"] if word == "COPY"}
    # A member inside a copied directory (loadtest/shard-sim) comes with it.
    missing = {m for m in members if not any(m == c or m.startswith(c + "/") for c in copied)}
    assert not missing, f"not copied into the builder: {missing}"
    assert {"Cargo.toml", "Cargo.lock"} <= {p for word, rest in stages()["builder"] if word == "COPY" for p in rest.split()}


def test_runtime_has_the_shared_libraries_and_a_numeric_non_root_user():
    runtime = stages()["runtime"]
    text = " ".join(rest for _, rest in runtime)
    for package in ["ca-certificates", "libssl3"]:
        assert f" {package} " in f" {text} ", package
    (user,) = [rest for word, rest in runtime if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())
    assert int(uid) == VALUES["podSecurityContext"]["runAsUser"]
    assert not [rest for word, rest in runtime if word == "ENTRYPOINT"], "each Deployment picks its binary"


def test_binaries_are_where_the_chart_runs_them():
    runtime = stages()["runtime"]
    (copy,) = [rest for word, rest in runtime if word == "COPY"]
    destination = copy.split()[-1].rstrip("/")
    assert VALUES["ingest"]["command"] == [f"{destination}/ingest"]
    assert VALUES["correlator"]["command"] == [f"{destination}/correlator"]
