"""Shared fixtures: the manifests rendered by deploy/helm/test.sh, and helm itself
for renderings with other values (including those that must fail)."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

RELEASE = "metrics-pipeline"
NAMESPACE = "observability"


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the tests through deploy/helm/test.sh", returncode=2)
    return value


HELM = _env("HELM")
CHART = Path(_env("CHART"))
RENDERED = Path(_env("RENDERED"))

# The values sets test.sh rendered: "default" and every ci/<name>-values.yaml.
VALUES_SETS = ["default"] + sorted(
    p.name[: -len("-values.yaml")] for p in (CHART / "ci").glob("*-values.yaml")
)


def load(text):
    return [d for d in yaml.safe_load_all(text) if d]


def rendered(values_set):
    return load((RENDERED / f"{values_set}.yaml").read_text())


class Rendering:
    def __init__(self, returncode, docs, stderr):
        self.returncode = returncode
        self.docs = docs
        self.stderr = stderr

    def one(self, kind, name_suffix=""):
        found = [
            d for d in self.docs
            if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)
        ]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
        return found[0]

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]


def helm_template(*args, values_set="default"):
    """Renders the chart with extra helm arguments (--set ..., -f ...)."""
    cmd = [HELM, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values_set != "default":
        cmd.append(f"--values={CHART / 'ci' / (values_set + '-values.yaml')}")
    cmd.extend(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    docs = load(proc.stdout) if proc.returncode == 0 else []
    return Rendering(proc.returncode, docs, proc.stderr)


@pytest.fixture(scope="session", params=VALUES_SETS)
def values_set(request):
    return request.param


@pytest.fixture(scope="session")
def docs(values_set):
    return Rendering(0, rendered(values_set), "")
