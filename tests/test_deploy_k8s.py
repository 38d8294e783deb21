"""Sweep manifests validate offline, so a misspelt field fails here and not on the cluster.

Built-in kinds go through Kubernetes' own strict schemas (kubernetes-validate); RayJobs through
KubeRay's CRD schema, closed the way `kubectl apply`'s strict field validation closes it, plus
Kubernetes' schemas for the object metadata and pod templates they embed.
"""
from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pixelplan.distributed.cli import main
from pixelplan.distributed.offline.sweep import RAYJOB_TEMPLATE, RESULTS_TEMPLATE

ROOT = Path(__file__).resolve().parents[1]
RAYJOB_SCHEMA = ROOT / "k8s" / "schemas" / "rayjob.ray.io_v1.schema.json.gz"
KUBERNETES_VERSION = "1.32"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def closed(schema: dict) -> dict:
    """The schema with every object that lists its properties refusing any other field."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {name: closed(sub) for name, sub in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = closed(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [closed(sub) for sub in schema[key]]
    return schema


@pytest.fixture(scope="module")
def kuberay_schema() -> dict:
    stored = json.loads(gzip.decompress(RAYJOB_SCHEMA.read_bytes()))
    assert (stored["apiVersion"], stored["kind"]) == ("ray.io/v1", "RayJob")
    return stored["openAPIV3Schema"]


@pytest.fixture(scope="module")
def rayjob_validator(kuberay_schema) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(closed(kuberay_schema))


def assert_labels_valid(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        assert re.fullmatch(_LABEL_NAME, name), key
        assert not prefix or re.fullmatch(_LABEL_PREFIX, prefix) and len(prefix) <= 253, key
        assert value == "" or re.fullmatch(_LABEL_NAME, value), (key, value)


def validate(manifest: dict, rayjob_validator: jsonschema.Draft7Validator) -> None:
    """Raises (jsonschema or kubernetes-validate ValidationError) on anything the cluster would refuse."""
    assert_labels_valid(manifest["metadata"].get("labels", {}))
    if manifest["kind"] != "RayJob":
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        return
    rayjob_validator.validate(manifest)
    cluster = manifest["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster.get("workerGroupSpecs", [])]
    for template in templates:
        assert_labels_valid(template.get("metadata", {}).get("labels", {}))
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": manifest["metadata"], "template": template}
        kubernetes_validate.validate(wrapped, KUBERNETES_VERSION, strict=True)


def render(tmp_path: Path, *extra: str) -> list[dict]:
    out = tmp_path / "sweeps" / "table1"
    assert main(["sweep", "--agents", "glamor,stub", "--envs", "grid,dmc:cartpole-balance", "--seeds", "0-2",
                 "--steps", "1000", "--out", str(out), *extra]) == 0
    return [doc for path in sorted(out.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def test_templates_validate(rayjob_validator):
    validate(yaml.safe_load(RAYJOB_TEMPLATE.read_text()), rayjob_validator)
    for manifest in yaml.safe_load_all(RESULTS_TEMPLATE.read_text()):
        validate(manifest, rayjob_validator)


@pytest.mark.parametrize("extra", [(), ("--gpus", "0"), ("--gpus", "2", "--learners", "3", "--pvc", "shared",
                                                          "--namespace", "rl", "--storage-class", "nfs")])
def test_every_rendered_manifest_validates(tmp_path, rayjob_validator, extra):
    manifests = render(tmp_path, *extra)
    kinds = [m["kind"] for m in manifests]
    assert kinds.count("RayJob") == 2 * 2 * 3
    assert kinds.count("PersistentVolumeClaim") == (0 if "--pvc" in extra else 1)
    for manifest in manifests:
        validate(manifest, rayjob_validator)


def test_kuberay_schema_alone_would_accept_a_typo(tmp_path, kuberay_schema, rayjob_validator):
    """Why the tests close the schema: KubeRay's CRD lists fields without forbidding others."""
    job = next(m for m in render(tmp_path) if m["kind"] == "RayJob")
    job["spec"]["shutdownAfterJobFinish"] = job["spec"].pop("shutdownAfterJobFinishes")
    jsonschema.Draft7Validator(kuberay_schema).validate(job)
    with pytest.raises(jsonschema.ValidationError, match="shutdownAfterJobFinish"):
        validate(job, rayjob_validator)


@pytest.mark.parametrize("path, typo", [
    (("spec", "entrypoint"), "entryPoint"),
    (("spec", "rayClusterSpec", "rayVersion"), "rayversion"),
    (("spec", "rayClusterSpec", "headGroupSpec", "rayStartParams"), "rayStartParam"),
    (("spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0, "resources"), "resource"),
    (("spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0, "volumeMounts", 0,
      "mountPath"), "mountpath"),
    (("spec", "rayClusterSpec", "workerGroupSpecs", 0, "template", "spec", "tolerations"), "toleration"),
])
def test_misspelt_rayjob_field_fails(tmp_path, rayjob_validator, path, typo):
    job = next(m for m in render(tmp_path) if m["kind"] == "RayJob")
    validate(copy.deepcopy(job), rayjob_validator)
    parent = job
    for key in path[:-1]:
        parent = parent[key]
    parent[typo] = parent.pop(path[-1])
    with pytest.raises(jsonschema.ValidationError):
        validate(job, rayjob_validator)


def test_wrong_types_and_quantities_fail(tmp_path, rayjob_validator):
    job = next(m for m in render(tmp_path) if m["kind"] == "RayJob")
    bad_replicas = copy.deepcopy(job)
    bad_replicas["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "one"
    bad_memory = copy.deepcopy(job)
    bad_memory["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"]["memory"] = "32 GB"
    for manifest in (bad_replicas, bad_memory):
        with pytest.raises(jsonschema.ValidationError):
            validate(manifest, rayjob_validator)


def test_misspelt_builtin_fields_fail(tmp_path, rayjob_validator):
    claim, reader = (m for m in render(tmp_path) if m["kind"] in ("PersistentVolumeClaim", "Pod"))
    claim["spec"]["accessMode"] = claim["spec"].pop("accessModes")
    reader["spec"]["containers"][0]["volumeMount"] = reader["spec"]["containers"][0].pop("volumeMounts")
    for manifest in (claim, reader):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(manifest, rayjob_validator)
