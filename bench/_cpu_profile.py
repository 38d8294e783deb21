"""Per-component CPU profile of running processes: /proc's exact CPU time, split by py-spy's samples.

Why both: /proc counts every thread's CPU exactly, Ray's C++ threads included, but knows nothing of
components; py-spy samples say which code a Python thread was running when it was on (or waiting
for) a core. So each thread's CPU over the window is split in proportion to its active samples, and
a thread py-spy never saw active (no Python frames: Ray's gRPC and io threads) keeps its CPU as
"Ray core threads". py-spy runs non-blocking (it never pauses its target); its own CPU is counted
apart, never as the session's.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# What a sample was doing: its frames are read from the innermost outwards, and the first frame named
# here decides (so Ray's serialisation inside our insert call counts as the insert call).
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("env step", ("PixelEnv.step",)),
    ("env reset", ("PixelEnv.reset",)),
    ("frame & features for the trajectory", ("PixelEnv.frame", ".goal_features")),
    ("compression (to_bytes)", ("Trajectory.to_bytes",)),
    ("trajectory build", ("TrajectoryBuilder.", "EnvWorker._finish")),
    ("insert call (submit)", ("ShardedReplay.insert_async", "EnvWorker._ship")),
    ("insert ack wait", ("EnvWorker._confirm_inserts",)),
    ("plan request (submit)", ("EnvWorker._start_episodes",)),
    ("plan receive / poll", ("EnvWorker._receive_plans",)),
    ("plan following (actions)", ("EnvWorker._actions",)),
    ("shard decode (zstd)", ("Trajectory.from_bytes",)),
    ("shard validate", ("ReplayShard._validate", "ReplayShard._decode")),
    ("shard store", ("ReplayShard.",)),
    ("planning (model)", ("PlannerService._plan_batch",)),
    ("planner batching (asyncio)", ("BatchingPlanner.",)),
    ("worker loop", ("EnvWorker.", "RawStepper.")),
    ("coordinator loop", ("Coordinator.",)),
    ("benchmark driver", ("steady_rate", "coordinator_rate")),
    ("Ray task loop (receive call, send result)", ("Worker.main_loop",)),
)
UNSEEN = "Ray core threads (no Python frames)"
OTHER = "other Python"


def _stat(path: str) -> list[str] | None:
    """Fields of a /proc stat file after the command name (state first), or None if it is gone."""
    try:
        with open(path) as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def session_processes(root: int | None = None) -> dict[int, tuple[int, float]]:
    """pid -> (start time, CPU seconds) of ``root`` (this process) and all its descendants."""
    stats = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(f"/proc/{entry}/stat")
        if fields is not None:
            stats[int(entry)] = (int(fields[1]), int(fields[19]), _cpu_s(fields))  # ppid, start, CPU s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [os.getpid() if root is None else root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1:]
        todo.extend(children.get(pid, []))
    return out


def session_cpu() -> dict[tuple[int, int], float]:
    """CPU seconds of this process and each of its descendants (the Ray session), by (pid, start time)."""
    return {(pid, start): cpu for pid, (start, cpu) in session_processes().items()}


def thread_cpu(pid: int) -> dict[int, float]:
    """tid -> CPU seconds of each thread of ``pid`` now."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        fields = _stat(f"/proc/{pid}/task/{tid}/stat")
        if fields is not None:
            out[int(tid)] = _cpu_s(fields)
    return out


def process_label(pid: int) -> str:
    """Ray names its workers ``ray::Class``; the system processes by their executable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return "gone"
    first = argv[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first.split()[0].split(".")[0]
    return Path(first).name or comm


def component(frames: list[str]) -> str:
    """The component a sample belongs to (frames outermost first, as py-spy writes them)."""
    for frame in reversed(frames):
        name = frame.split(" (", 1)[0]
        for label, markers in RULES:
            if any(name.startswith(m) if m.endswith(".") else (name == m or name.endswith(m)) for m in markers):
                return label
    return OTHER


def parse_raw(text: str, top: int = 15) -> tuple[dict[int, Counter], list[tuple[str, int]]]:
    """py-spy's raw output (``thread (TID): NAME;frame;...;frame COUNT``) as tid -> component -> samples,
    and the ``top`` most sampled stacks (thread name and innermost frames) to read the components by."""
    out: dict[int, Counter] = {}
    stacks: Counter = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        head, *frames = stack.split(";")
        if not head.startswith("thread (") or not count.isdigit():
            continue
        tid = int(head[len("thread ("):].split(")", 1)[0])
        label = component(frames)
        out.setdefault(tid, Counter())[label] += int(count)
        inner = " <- ".join(f.split(" (", 1)[0] for f in reversed(frames[-5:]))
        stacks[f"[{label}] {head.split(': ', 1)[-1]}: {inner}"] += int(count)
    return out, stacks.most_common(top)


def py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[dev]' (it is in the dev extra)")
    return found


class ProfileWindow:
    """Profiles ``named`` processes (name -> pid) with py-spy between ``open()`` and ``close()``, and
    counts every session process's CPU over the same window from /proc."""

    def __init__(self, named: dict[str, int], rate_hz: int = 100) -> None:
        self.named, self.rate_hz = dict(named), rate_hz
        self.dir = tempfile.mkdtemp(prefix="pixelplan-profile-")
        self.spies: dict[str, subprocess.Popen] = {}

    def open(self) -> None:
        exe = py_spy()
        for name, pid in self.named.items():
            self.spies[name] = subprocess.Popen(
                [exe, "record", "-p", str(pid), "-f", "raw", "-o", f"{self.dir}/{name}.raw", "-t", "--nonblocking",
                 "-r", str(self.rate_hz)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # py-spy attaches: the window opens once every spy samples
        self.t0 = time.perf_counter()
        self.processes0 = session_processes()
        self.threads0 = {pid: thread_cpu(pid) for pid in self.named.values()}

    def close(self) -> dict:
        """Per process: CPU seconds over the window and its split by component."""
        wall = time.perf_counter() - self.t0
        processes1 = session_processes()
        threads1 = {pid: thread_cpu(pid) for pid in self.named.values()}
        spy_cpu = sum(processes1.get(s.pid, (0, 0.0))[1] for s in self.spies.values())
        samples = {}
        for name, spy in self.spies.items():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            _, err = spy.communicate(timeout=60)
            raw = Path(f"{self.dir}/{name}.raw")
            if not raw.exists():
                raise RuntimeError(f"py-spy wrote nothing for {name}: {err.decode(errors='replace')[-400:]}")
            samples[name] = parse_raw(raw.read_text())
            raw.unlink()
        os.rmdir(self.dir)
        spies = {s.pid for s in self.spies.values()}
        profiled = {pid: name for name, pid in self.named.items()}
        rows: dict[str, dict] = {}
        for pid, (start, cpu) in processes1.items():
            if pid in spies:
                continue
            before = self.processes0.get(pid)
            used = cpu - before[1] if before and before[0] == start else cpu  # started in the window: all of it
            if pid in profiled:  # its threads' CPU, split: the process's own count may differ by a clock tick
                by_thread, top = samples[profiled[pid]]
                parts = split(self.threads0[pid], threads1[pid], by_thread)
                rows[profiled[pid]] = {"pid": pid, "cpu_s": sum(parts.values()), "process_cpu_s": used,
                                       "top_stacks": top, "components": parts}
            elif used > 0:
                label = f"({process_label(pid)})"
                row = rows.setdefault(label, {"pid": [], "cpu_s": 0.0, "components": {}})
                row["pid"].append(pid)
                row["cpu_s"] += used
                row["components"][label] = row["cpu_s"]
        return {"wall_s": wall, "processes": rows, "py_spy_cpu_s": spy_cpu, "rate_hz": self.rate_hz}


def split(before: dict[int, float], after: dict[int, float], samples: dict[int, Counter]) -> dict[str, float]:
    """One process's CPU seconds over the window by component: each thread's by its own samples."""
    out: Counter = Counter()
    for tid, cpu in after.items():
        used = cpu - before.get(tid, 0.0)
        seen = samples.get(tid, Counter())
        total = sum(seen.values())
        if total == 0:
            out[UNSEEN] += used
            continue
        for label, n in seen.items():
            out[label] += used * n / total
    return {k: v for k, v in out.items() if v > 0}


# -- the report -----------------------------------------------------------------------------------
def per_step(profile: dict, steps: int) -> dict[str, float]:
    """Milliseconds of CPU per env step by component, over every process of the session."""
    total: Counter = Counter()
    for row in profile["processes"].values():
        total.update(row["components"])
    return {k: 1000 * v / max(steps, 1) for k, v in total.most_common()}


def compare(baseline: dict, subject: dict) -> dict:
    """Where the subject's extra CPU per step goes, against the baseline fleet. Each fleet is
    ``{"steps", "steps_per_s", "profile"}``; a component's ``lost_share`` is its extra CPU per step
    over the subject's total, so the shares add up to 1 - cpu_ratio (throughput lost per CPU-second)."""
    base, subj = per_step(baseline["profile"], baseline["steps"]), per_step(subject["profile"], subject["steps"])
    base_total, subj_total = sum(base.values()), sum(subj.values())
    rows = [{"component": k, "baseline_ms": base.get(k, 0.0), "subject_ms": subj.get(k, 0.0),
             "extra_ms": subj.get(k, 0.0) - base.get(k, 0.0),
             "lost_share": (subj.get(k, 0.0) - base.get(k, 0.0)) / subj_total} for k in dict.fromkeys([*subj, *base])]
    rows.sort(key=lambda r: -r["subject_ms"])

    def cores(fleet: dict) -> float:
        return sum(r["cpu_s"] for r in fleet["profile"]["processes"].values()) / fleet["profile"]["wall_s"]

    return {"components": rows, "baseline_ms_per_step": base_total, "subject_ms_per_step": subj_total,
            "cpu_ratio": base_total / subj_total, "ratio": subject["steps_per_s"] / baseline["steps_per_s"],
            "cores_used": {"baseline": cores(baseline), "subject": cores(subject)}}


def markdown(title: str, names: tuple[str, str], fleets: tuple[dict, dict], comparison: dict, notes: str) -> str:
    """The profile as two tables: processes (with their largest components) and components per env step."""
    lines = [f"# {title}", "", notes, "",
             f"Wall ratio {comparison['ratio']:.2f}, CPU ratio {comparison['cpu_ratio']:.2f} "
             f"({comparison['baseline_ms_per_step']:.3f} vs {comparison['subject_ms_per_step']:.3f} ms CPU per env step); "
             f"cores used: {names[0]} {comparison['cores_used']['baseline']:.2f}, {names[1]} "
             f"{comparison['cores_used']['subject']:.2f}.", "",
             "## Processes", "",
             "| fleet | process | CPU s | busy (CPU / wall) | ms CPU / env step | largest components (share of its CPU) |",
             "|---|---|---:|---:|---:|---|"]
    for name, fleet in zip(names, fleets):
        profile, steps = fleet["profile"], fleet["steps"]
        lines.append(f"| {name} | *{steps} env steps in {profile['wall_s']:.1f} s "
                     f"({fleet['steps_per_s']:.0f}/s); py-spy itself {profile['py_spy_cpu_s']:.2f} CPU s, not counted* "
                     "| | | | |")
        for process, row in sorted(profile["processes"].items(), key=lambda kv: -kv[1]["cpu_s"]):
            if row["cpu_s"] < 0.005:
                continue
            parts = sorted(row["components"].items(), key=lambda kv: -kv[1])[:6]
            top = ", ".join(f"{k} {v / max(row['cpu_s'], 1e-9):.0%}" for k, v in parts)
            lines.append(f"| {name} | {process} | {row['cpu_s']:.2f} | {row['cpu_s'] / profile['wall_s']:.0%} | "
                         f"{1000 * row['cpu_s'] / max(steps, 1):.3f} | {top} |")
    lines += ["", "## Components (ms CPU per env step, every process of the session)", "",
              f"| component | {names[0]} | {names[1]} | extra | share of throughput lost per CPU-second |",
              "|---|---:|---:|---:|---:|"]
    for r in comparison["components"]:
        lines.append(f"| {r['component']} | {r['baseline_ms']:.3f} | {r['subject_ms']:.3f} | {r['extra_ms']:+.3f} | "
                     f"{r['lost_share']:+.1%} |")
    lines.append(f"| **total** | {comparison['baseline_ms_per_step']:.3f} | {comparison['subject_ms_per_step']:.3f} | "
                 f"{comparison['subject_ms_per_step'] - comparison['baseline_ms_per_step']:+.3f} | "
                 f"{1 - comparison['cpu_ratio']:+.1%} |")
    return "\n".join(lines) + "\n"
