"""Render a multi-seed sweep as Kubernetes manifests: one KubeRay RayJob per (agent, env, seed).

The manifests start from the YAML templates in ``k8s/`` (edit those for node selectors and the
like); this module only fills in what varies per run, so what is applied is exactly what the
tests validated against the Kubernetes and KubeRay schemas.
"""
from __future__ import annotations

import copy
import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pixelplan.agents.registry import AGENTS
from pixelplan.envs.registry import parse_env_id

from ..replay.credentials import redact_url

K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
RAYJOB_TEMPLATE = K8S_DIR / "rayjob.template.yaml"
RESULTS_TEMPLATE = K8S_DIR / "results.template.yaml"
RESULTS_MOUNT = "/results"
LABEL_PREFIX = "pixelplan.io/"
# KubeRay appends "-xxxxx" to a RayJob's name for its RayCluster and then suffixes service names
# (up to "-serve-svc") within the 63 characters of a DNS label: it rejects longer RayJob names.
MAX_RAYJOB_NAME = 47
MAX_SWEEP_NAME = 30
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")  # what `kubectl apply -f DIR` would pick up
SWEEP_HEADER = "# pixelplan sweep "  # first bytes of every file write_sweep writes: --force removes only those


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: the grid of runs plus the resources each run's Ray cluster gets."""

    name: str
    agents: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int | None  # None: each run takes its recipe's budget for its env
    image: str = "pixelplan:cuda"
    gpus: int = 1  # GPUs of the pod running learners + planner; 0 = CPU-only runs on the head
    learners: int = 1
    workers: int = 8
    envs_per_worker: int = 4
    shards: int = 2
    learner_gpus: float | None = None  # per learner; None = share the pod's GPUs evenly
    planner_gpus: float | None = None
    cpus: int | None = None  # head pod; None = one per env worker and replay shard, +1 for the driver
    memory: str = "32Gi"
    gpu_cpus: int = 4
    gpu_memory: str = "32Gi"
    namespace: str | None = None
    pvc: str | None = None  # an existing ReadWriteMany claim; None = render "<name>-results"
    storage: str = "50Gi"
    storage_class: str | None = None
    metrics_port: int = 8090
    overrides: tuple[str, ...] = field(default=())  # `--set key=value` passed to `pixelplan train`
    recipe: str | None = None  # `pixelplan train --recipe NAME` for every run

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.name) or len(self.name) > MAX_SWEEP_NAME:
            raise ValueError(f"sweep name {self.name!r} must be lowercase letters, digits and '-', start and end "
                             f"with a letter or digit, at most {MAX_SWEEP_NAME} characters (it names Kubernetes objects)")
        _check_unique("agent", self.agents)
        for agent in self.agents:
            if agent not in AGENTS:
                raise ValueError(f"unknown agent {agent!r}: expected one of {', '.join(sorted(AGENTS))}")
        _check_unique("env", self.envs)
        for env in self.envs:
            parse_env_id(env)
        _check_unique("seed", self.seeds)
        if self.steps is None and self.recipe is None:
            raise ValueError("--steps is required unless a --recipe gives the budget")
        for what in ("steps", "learners", "workers", "envs_per_worker", "shards", "gpu_cpus"):
            if getattr(self, what) is not None and getattr(self, what) < 1:
                raise ValueError(f"{what} must be at least 1, got {getattr(self, what)}")
        if self.gpus < 0 or self.cpus is not None and self.cpus < 1:
            raise ValueError(f"gpus must be >= 0 and cpus >= 1, got gpus={self.gpus} cpus={self.cpus}")
        for what in ("memory", "gpu_memory", "storage"):
            if not _QUANTITY.match(getattr(self, what)):
                raise ValueError(f"{what} {getattr(self, what)!r} is not a Kubernetes quantity such as 32Gi")
        if not self.image:
            raise ValueError("image must not be empty")
        if not 0 < self.metrics_port < 65536:
            raise ValueError(f"metrics_port must be a TCP port, got {self.metrics_port}")
        for item in self.overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value")
        gpu_split(self.gpus, self.learners, self.learner_gpus, self.planner_gpus)
        if self.recipe is not None:
            check_recipe(self.recipe, self.agents, self.envs)

    @property
    def head_cpus(self) -> int:
        return self.cpus if self.cpus is not None else self.workers + self.shards + 1

    @property
    def claim(self) -> str:
        return self.pvc or f"{self.name}-results"

    @property
    def runs(self) -> list[tuple[str, str, int]]:
        return [(a, e, s) for a in self.agents for e in self.envs for s in self.seeds]


def check_recipe(name: str, agents: tuple[str, ...], envs: tuple[str, ...]) -> None:
    """Refuse a sweep before anything is written or started if its recipe does not fit every run."""
    from ..recipes import get_recipe

    recipe = get_recipe(name)
    for agent in agents:
        for env in envs:
            recipe.check(agent, env)


def _check_unique(what: str, items: tuple) -> None:
    if not items:
        raise ValueError(f"no {what}s given")
    seen = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{what} {item!r} is listed twice")
        seen.add(item)


def parse_list(text: str, what: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"--{what} {text!r}: expected a comma-separated list without empty items")
    return items


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '0,3,7' and '0-2,9' work too (ranges are inclusive)."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"bad seed list {text!r}: expected non-negative integers or ranges like 0-4, "
                             f"separated by commas")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if last < first:
            raise ValueError(f"bad seed range {part.strip()!r}: the end is below the start")
        seeds.extend(range(first, last + 1))
    _check_unique("seed", tuple(seeds))
    return tuple(seeds)


def gpu_split(gpus: int, learners: int, learner_gpus: float | None, planner_gpus: float | None) -> tuple[float, float]:
    """GPUs per learner and for the planner; they must fit the pod, or the run never schedules."""
    share = gpus / (learners + 1)
    # Ray accepts fractions of one GPU or whole GPUs, nothing in between.
    share = math.floor(share) if share >= 1 else math.floor(share * 100) / 100
    learner = share if learner_gpus is None else learner_gpus
    planner = share if planner_gpus is None else planner_gpus
    for what, value in (("learner_gpus", learner), ("planner_gpus", planner)):
        if value < 0 or value > 1 and value != int(value):
            raise ValueError(f"{what}={value}: Ray needs a fraction of one GPU or a whole number of GPUs")
    needed = learners * learner + planner
    if needed > gpus + 1e-9:
        raise ValueError(f"{learners} learner(s) x {learner} GPU + planner {planner} GPU = {needed:g} GPUs, "
                         f"but each run's pod gets --gpus {gpus}")
    return learner, planner


def label_value(text: str) -> str:
    """Kubernetes label values: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9_.-]+", ".", text)[:63].strip("_.-")


def dns_part(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run_id(agent: str, env: str, seed: int) -> str:
    """The run's folder under /results/<sweep>/ and the tail of its RayJob name."""
    return f"{agent}-{dns_part(env)}-s{seed}"


def job_name(sweep: str, agent: str, env: str, seed: int) -> str:
    name = f"{sweep}-{run_id(agent, env, seed)}"
    if len(name) <= MAX_RAYJOB_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]  # keeps long names unique after cutting
    return f"{name[:MAX_RAYJOB_NAME - 7].rstrip('-')}-{digest}"


def run_labels(cfg: SweepConfig, agent: str, env: str, seed: int) -> dict[str, str]:
    return {"app.kubernetes.io/name": "pixelplan", f"{LABEL_PREFIX}sweep": cfg.name,
            f"{LABEL_PREFIX}agent": agent, f"{LABEL_PREFIX}env": label_value(env), f"{LABEL_PREFIX}seed": str(seed)}


def train_command(cfg: SweepConfig, agent: str, env: str, seed: int) -> list[str]:
    learner_gpus, planner_gpus = gpu_split(cfg.gpus, cfg.learners, cfg.learner_gpus, cfg.planner_gpus)
    command = ["pixelplan", "train", "--mode", "ray", "--address", "auto", "--agent", agent, "--env", env,
               "--seed", str(seed), *(["--steps", str(cfg.steps)] if cfg.steps else []), "--workers", str(cfg.workers),
               "--envs-per-worker", str(cfg.envs_per_worker), "--shards", str(cfg.shards),
               "--learners", str(cfg.learners), "--learner-gpus", f"{learner_gpus:g}",
               "--planner-gpus", f"{planner_gpus:g}", "--device", "cuda" if cfg.gpus else "cpu",
               "--metrics-port", str(cfg.metrics_port), "--metrics-host", "0.0.0.0", "--no-progress",
               "--out", f"{RESULTS_MOUNT}/{cfg.name}/{run_id(agent, env, seed)}"]
    command += ["--recipe", cfg.recipe] if cfg.recipe else []
    return command + ["--set", *map(_masked, cfg.overrides)] if cfg.overrides else command


def _masked(override: str) -> str:
    """A RayJob is stored and shown by Kubernetes: a Redis password never goes into it (the pods read
    PIXELPLAN_REDIS_PASSWORD from a secret instead)."""
    key, sep, value = override.partition("=")
    return f"{key}={redact_url(value)}" if sep and key == "replay.redis_url" else override


def _resources(cpus: int, memory: str, gpus: int = 0) -> dict:
    amounts = {"cpu": str(cpus), "memory": memory}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _fill_pod(pod: dict, cfg: SweepConfig, labels: dict[str, str], resources: dict) -> None:
    pod.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    spec = pod["spec"]
    container = spec["containers"][0]
    container["image"] = cfg.image
    container["resources"] = resources
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = cfg.claim


def _with_metadata(manifest: dict, cfg: SweepConfig, name: str, labels: dict[str, str]) -> dict:
    meta = manifest.setdefault("metadata", {})
    meta["name"] = name
    meta.setdefault("labels", {}).update(labels)
    if cfg.namespace:
        meta["namespace"] = cfg.namespace
    return manifest


def render_rayjob(cfg: SweepConfig, agent: str, env: str, seed: int, template: dict) -> dict:
    labels = run_labels(cfg, agent, env, seed)
    job = _with_metadata(copy.deepcopy(template), cfg, job_name(cfg.name, agent, env, seed), labels)
    job["metadata"].setdefault("annotations", {})[f"{LABEL_PREFIX}env-id"] = env  # labels cannot hold ':'
    job["spec"]["entrypoint"] = shlex.join(train_command(cfg, agent, env, seed))
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]
    _fill_pod(head, cfg, labels, _resources(cfg.head_cpus, cfg.memory))
    head["metadata"].setdefault("annotations", {})["prometheus.io/port"] = str(cfg.metrics_port)
    for port in head["spec"]["containers"][0].get("ports", []):
        if port.get("name") == "pp-metrics":
            port["containerPort"] = cfg.metrics_port
    groups = cluster.get("workerGroupSpecs", [])
    gpu_groups = [g for g in groups if g["groupName"] == "gpu"]
    if cfg.gpus and not gpu_groups:
        raise ValueError("the RayJob template has no worker group named 'gpu' to run learners and planner on")
    for group in gpu_groups:
        _fill_pod(group["template"], cfg, labels, _resources(cfg.gpu_cpus, cfg.gpu_memory, cfg.gpus))
    cluster["workerGroupSpecs"] = [g for g in groups if g["groupName"] != "gpu" or cfg.gpus]
    if not cluster["workerGroupSpecs"]:
        del cluster["workerGroupSpecs"]
    return job


def render_results(cfg: SweepConfig, templates: list[dict]) -> list[dict]:
    """The sweep's claim (unless it reuses an existing one) and the reader pod that mounts it."""
    labels = {"app.kubernetes.io/name": "pixelplan", f"{LABEL_PREFIX}sweep": cfg.name}
    by_kind = {t["kind"]: copy.deepcopy(t) for t in templates}
    out = []
    if cfg.pvc is None:
        claim = _with_metadata(by_kind["PersistentVolumeClaim"], cfg, cfg.claim, labels)
        claim["spec"]["resources"]["requests"]["storage"] = cfg.storage
        if cfg.storage_class:
            claim["spec"]["storageClassName"] = cfg.storage_class
        out.append(claim)
    reader = _with_metadata(by_kind["Pod"], cfg, f"{cfg.name}-reader", labels)
    _fill_pod(reader, cfg, labels, reader["spec"]["containers"][0]["resources"])
    out.append(reader)
    return out


def render_sweep(cfg: SweepConfig, template: Path = RAYJOB_TEMPLATE) -> dict[str, list[dict]]:
    """File name -> the manifests it holds."""
    rayjob = yaml.safe_load(Path(template).read_text())
    if rayjob.get("kind") != "RayJob":
        raise ValueError(f"{template} is not a RayJob manifest (kind {rayjob.get('kind')!r})")
    files = {"results.yaml": render_results(cfg, list(yaml.safe_load_all(RESULTS_TEMPLATE.read_text())))}
    for agent, env, seed in cfg.runs:
        name = f"rayjob-{run_id(agent, env, seed)}.yaml"
        if name in files:
            raise ValueError(f"env ids in {', '.join(cfg.envs)} collide once spelt for Kubernetes ({name})")
        files[name] = [render_rayjob(cfg, agent, env, seed, rayjob)]
    return files


def written_by_sweep(path: Path) -> bool:
    """True for a file ``write_sweep`` wrote (it starts with the sweep header)."""
    with open(path, "rb") as f:
        return f.read(len(SWEEP_HEADER)) == SWEEP_HEADER.encode()


def write_sweep(cfg: SweepConfig, files: dict[str, list[dict]], out: Path, force: bool = False) -> list[Path]:
    out = Path(out)
    stale = sorted(p for p in out.glob("*") if p.suffix in _MANIFEST_SUFFIXES) if out.is_dir() else []
    if stale and not force:
        raise ValueError(f"{out} already holds manifests ({stale[0].name}, ...): `kubectl apply -f` would pick up "
                         f"old ones too. Pass --force to replace them, or choose another folder")
    for path in stale:
        if written_by_sweep(path):  # --force replaces our own manifests; anything else there is the user's
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    header = (f"{SWEEP_HEADER}{cfg.name}: agents {','.join(cfg.agents)}, envs {','.join(cfg.envs)}, "
              f"seeds {','.join(map(str, cfg.seeds))}, {f'{cfg.steps} steps' if cfg.steps else 'the recipe budget'}.\n"
              f"# Apply with `kubectl apply -f {out}/`; select with -l {LABEL_PREFIX}sweep={cfg.name}\n")
    written = []
    for name, manifests in files.items():
        path = out / name
        path.write_text(header + yaml.safe_dump_all(manifests, sort_keys=False, width=10_000))
        written.append(path)
    return written
