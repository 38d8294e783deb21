"""The per-component CPU profile on a real process: py-spy's samples split the CPU /proc counted."""
import subprocess
import sys
import time

import pytest

from pixelplan.bench._cpu_profile import UNSEEN, ProfileWindow, component, py_spy

STEPPER = """
import sys
from pixelplan.envs import make_env
env, n = make_env("grid"), 0
env.reset(seed=0)
print("ready", flush=True)
while True:
    step = env.step(n % 4)
    n += 1
    if step.terminated or step.truncated:
        env.reset(seed=n)
"""


def test_components_are_named_by_the_innermost_frame_a_rule_knows():
    insert = ["<module> (default_worker.py:1)", "Worker.main_loop (ray/_private/worker.py:1)", "EnvWorker.run (w.py:1)",
              "EnvWorker._finish (w.py:2)", "ShardedReplay.insert_async (s.py:3)", "ActorHandle._actor_method_call (a:1)"]
    assert component(insert) == "insert call (submit)"  # Ray's serialisation inside it counts as the insert call
    assert component(insert[:4] + ["Trajectory.to_bytes (t.py:1)"]) == "compression (to_bytes)"
    assert component(insert[:2]) == "Ray task loop (receive call, send result)"
    assert component(["<module> (x.py:1)"]) == "other Python"


def test_a_stepping_process_profiles_as_env_steps_and_resets():
    try:
        py_spy()
    except RuntimeError:
        pytest.skip("py-spy is not installed (dev extra)")
    child = subprocess.Popen([sys.executable, "-c", STEPPER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        window = ProfileWindow({"stepper": child.pid})
        window.open()
        time.sleep(1.5)
        profile = window.close()
    finally:
        child.kill()
        child.wait()
    row = profile["processes"]["stepper"]
    assert 0.3 < row["cpu_s"] <= 1.1 * profile["wall_s"]  # one busy thread: at most one core
    assert abs(row["cpu_s"] - row["process_cpu_s"]) <= 0.03  # the threads' split adds up to what /proc counted
    shares = {k: v / row["cpu_s"] for k, v in row["components"].items()}
    assert shares["env step"] > 0.5 and shares.get(UNSEEN, 0.0) < 0.2, shares
    assert profile["py_spy_cpu_s"] > 0 and "(py-spy)" not in profile["processes"]  # its own CPU is counted apart
