"""Prometheus export: the one place that names every metric pixelplan serves.

Components expose ``stats() -> dict``; the coordinator merges them into one snapshot and
``MetricsExporter.update`` maps it onto the metrics below. The Grafana dashboard may only query
names listed in ``METRICS`` (a test checks it).
"""
from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


@dataclass(frozen=True)
class MetricDef:
    kind: str  # counter | gauge | histogram
    help: str
    snapshot_key: str  # key in the coordinator's snapshot
    labels: tuple[str, ...] = ()


METRICS: dict[str, MetricDef] = {
    "pixelplan_env_steps_total": MetricDef("counter", "Env steps taken by all workers", "env_steps"),
    "pixelplan_env_steps_per_second": MetricDef("gauge", "Env steps per second (recent)", "env_steps_per_s"),
    "pixelplan_episodes_total": MetricDef("counter", "Finished training episodes", "episodes"),
    "pixelplan_achievement_rate": MetricDef("gauge", "Latest evaluation goal-achievement rate", "eval/achievement"),
    "pixelplan_episode_return": MetricDef("gauge", "Latest evaluation episode return", "eval/return"),
    "pixelplan_replay_transitions": MetricDef("gauge", "Transitions stored in replay", "replay/transitions"),
    "pixelplan_replay_inserts_total": MetricDef("counter", "Trajectories inserted into replay", "replay/inserts"),
    "pixelplan_replay_samples_total": MetricDef("counter", "Items sampled from replay", "replay/samples"),
    "pixelplan_learner_updates_total": MetricDef("counter", "Learner updates", "updates"),
    "pixelplan_learner_updates_per_second": MetricDef("gauge", "Learner updates per second", "updates_per_s"),
    "pixelplan_learner_loss": MetricDef("gauge", "Latest learner losses", "loss/", ("name",)),
    "pixelplan_weights_version": MetricDef("gauge", "Policy weights version held", "version/", ("role",)),
    "pixelplan_weights_lag": MetricDef("gauge", "Learner version minus the oldest actor version", "version_lag"),
    "pixelplan_planner_batch_size": MetricDef("histogram", "Requests per planner batch", "planner/batch_sizes"),
    "pixelplan_planner_latency_seconds": MetricDef("histogram", "Plan or act request latency", "planner/latencies"),
    "pixelplan_worker_alive": MetricDef("gauge", "1 while an env worker answers", "worker_alive/", ("worker",)),
    "pixelplan_worker_restarts_total": MetricDef("counter", "Env worker restarts", "worker_restarts"),
}
_BUCKETS = {
    "pixelplan_planner_batch_size": (1, 2, 4, 8, 16, 32, 64, 128, 256),
    "pixelplan_planner_latency_seconds": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
}


class MetricsExporter:
    """Serves METRICS on ``host:port`` (0 = pick a free port; see ``.port``). Loopback unless a host is
    given: the Kubernetes manifests pass 0.0.0.0 so Prometheus can scrape the head pod."""

    def __init__(self, port: int | None = None, registry: CollectorRegistry | None = None,
                 host: str = "127.0.0.1") -> None:
        self.registry = registry or CollectorRegistry()
        self.metrics = {}
        for name, d in METRICS.items():
            # prometheus_client appends _total to counters itself.
            if d.kind == "counter":
                self.metrics[name] = Counter(name.removesuffix("_total"), d.help, d.labels, registry=self.registry)
            elif d.kind == "gauge":
                self.metrics[name] = Gauge(name, d.help, d.labels, registry=self.registry)
            else:
                self.metrics[name] = Histogram(name, d.help, d.labels, buckets=_BUCKETS[name], registry=self.registry)
        self._last_counts: dict[str, float] = {}
        self.port = None
        if port is not None:
            server, _ = start_http_server(port, addr=host, registry=self.registry)
            self.port = server.server_port

    def update(self, snapshot: dict) -> None:
        for name, d in METRICS.items():
            metric = self.metrics[name]
            if d.labels:
                for key, value in snapshot.items():
                    if key.startswith(d.snapshot_key) and isinstance(value, (int, float)):
                        metric.labels(key[len(d.snapshot_key):]).set(value)
            elif d.snapshot_key not in snapshot:
                continue
            elif d.kind == "counter":
                value = float(snapshot[d.snapshot_key])
                delta = value - self._last_counts.get(name, 0.0)
                if delta > 0:
                    metric.inc(delta)
                self._last_counts[name] = max(value, self._last_counts.get(name, 0.0))
            elif d.kind == "gauge":
                metric.set(float(snapshot[d.snapshot_key]))
            else:
                for value in snapshot[d.snapshot_key]:
                    metric.observe(float(value))
