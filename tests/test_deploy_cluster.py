"""deploy/: the `ray up` config passes Ray's own schema, and the pieces agree with each other
(ports, versions, labels) so a run launched one way is watched by the config written for another."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

from pixelplan.distributed.offline.sweep import RAYJOB_TEMPLATE, SweepConfig

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((DEPLOY / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def ray_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(RAY_SCHEMA.read_text()))


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return yaml.safe_load((DEPLOY / "prometheus.yml").read_text())


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load(RAYJOB_TEMPLATE.read_text())


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert match, f"deploy/Dockerfile has no default for ARG {name}"
    return match[1]


def test_cluster_yaml_passes_rays_schema(cluster, ray_validator):
    ray_validator.validate(cluster)


@pytest.mark.parametrize("path, typo", [
    (("setup_commands",), "setup_command"),
    (("docker", "run_options"), "run_option"),
    (("available_node_types", "gpu", "min_workers"), "min_worker"),
    (("available_node_types", "gpu", "docker", "worker_run_options"), "worker_run_option"),
])
def test_misspelt_cluster_field_fails(cluster, ray_validator, path, typo):
    broken = copy.deepcopy(cluster)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    parent[typo] = parent.pop(path[-1])
    with pytest.raises(jsonschema.ValidationError):
        ray_validator.validate(broken)


def test_gpu_nodes_for_learners_cpu_for_workers(cluster):
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] >= 1
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types and any(t.get("min_workers", 0) >= 1 for t in gpu_types)
    assert all("--gpus=all" in t["docker"]["worker_run_options"] for t in gpu_types)


def test_every_node_runs_without_ray_token_auth_and_exports_metrics(cluster, rayjob):
    assert "--env=RAY_AUTH_MODE=disabled" in cluster["docker"]["run_options"]  # docker options apply to all nodes
    port = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["metrics-export-port"]
    for commands in (cluster["head_start_ray_commands"], cluster["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert f"--metrics-export-port={port}" in start
    assert any("pip install" in c and "-e ." in c for c in cluster["setup_commands"])


def test_versions_agree(rayjob):
    assert dockerfile_arg("RAY_VERSION") == rayjob["spec"]["rayClusterSpec"]["rayVersion"]
    makefile_torch = re.search(r"torch==(\S+)", (ROOT / "Makefile").read_text())[1]
    assert dockerfile_arg("TORCH_VERSION") == makefile_torch
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^\s+cpu\)", dockerfile, re.MULTILINE) and re.search(r"^\s+cuda\)", dockerfile, re.MULTILINE)


def test_prometheus_scrapes_runs_and_ray(prometheus, rayjob):
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    static = jobs["pixelplan"]["static_configs"][0]["targets"]
    default_port = SweepConfig.__dataclass_fields__["metrics_port"].default
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    assert f"localhost:{default_port}" in static
    assert head["metadata"]["annotations"]["prometheus.io/port"] == str(default_port)
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [f"/tmp/ray/{PROMETHEUS_SERVICE_DISCOVERY_FILE}"]


def _sanitise(label: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def test_pod_discovery_keeps_annotated_pods_and_maps_sweep_labels(prometheus, rayjob):
    """Replays the relabel rules on the metadata Kubernetes discovery would report for a head pod."""
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "pixelplan-pods")
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]
    labels = {**head["labels"], "pixelplan.io/sweep": "table1", "pixelplan.io/seed": "3"}
    meta = {f"__meta_kubernetes_pod_label_{_sanitise(k)}": v for k, v in labels.items()}
    meta.update({f"__meta_kubernetes_pod_annotation_{_sanitise(k)}": v for k, v in head["annotations"].items()})
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    assert re.fullmatch(keep["regex"], ";".join(meta.get(s, "") for s in keep["source_labels"]))
    labelmap = next(r for r in job["relabel_configs"] if r.get("action") == "labelmap")
    mapped = {re.fullmatch(labelmap["regex"], k)[1]: v for k, v in meta.items() if re.fullmatch(labelmap["regex"], k)}
    assert mapped == {"sweep": "table1", "seed": "3"}  # the dashboard's $sweep variable reads `sweep`


def test_grafana_provisioning_loads():
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/pixelplan.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/pixelplan/dashboards"
