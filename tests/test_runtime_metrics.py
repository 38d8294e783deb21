"""Scrape the Prometheus endpoint during a short run: the values must move."""
import re
import threading
import time
import urllib.request

from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import Coordinator
from pixelplan.distributed.metrics import METRICS
from pixelplan.distributed.runtime import free_port


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(pixelplan_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+|NaN)$", line)
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def test_metrics_endpoint_values_move(tmp_path):
    port = free_port()
    config = RunConfig(agent="stub", env="grid", steps=30_000, seed=0, out=str(tmp_path / "run"), progress=False,
                       eval_every=0, eval_episodes=5, metrics_port=port, log_every_s=0.1, worker_chunk=20,
                       agent_overrides={"min_steps_learn": 100, "batch_size": 4})
    coordinator = Coordinator(config)
    thread = threading.Thread(target=coordinator.train, daemon=True)
    thread.start()
    try:
        samples = []
        deadline = time.time() + 60
        while len(samples) < 2 and time.time() < deadline:
            time.sleep(0.5)
            snap = _scrape(port)
            if snap.get("pixelplan_learner_updates_total", 0) > 0:
                if not samples or snap["pixelplan_env_steps_total"] > samples[-1]["pixelplan_env_steps_total"]:
                    samples.append(snap)
        assert len(samples) == 2, "metrics did not move"
        first, second = samples
        for name in ("pixelplan_env_steps_total", "pixelplan_episodes_total", "pixelplan_learner_updates_total",
                     "pixelplan_replay_inserts_total", "pixelplan_planner_latency_seconds_count",
                     "pixelplan_planner_batch_size_count"):
            assert second[name] > first[name], name
        assert second["pixelplan_replay_transitions"] > 0 and second["pixelplan_env_steps_per_second"] > 0
        assert second['pixelplan_worker_alive{worker="0"}'] == 1.0
        assert 'pixelplan_learner_loss{name="stub"}' in second
        assert 'pixelplan_weights_version{role="learner"}' in second and "pixelplan_weights_lag" in second
        served = {re.sub(r"\{.*", "", k).removesuffix("_count") for k in second}
        for name in METRICS:  # every declared metric is served
            assert name in served or name.removesuffix("_total") + "_total" in served, name
    finally:
        coordinator.stop()
        thread.join(timeout=120)
        coordinator.close()
