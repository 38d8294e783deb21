"""Evaluation videos: annotated frames, MP4 (or GIF without ffmpeg) that open with every frame, and
the TensorBoard video every ``eval_video_every`` evaluations of a training run."""
import csv

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pixelplan.distributed import videos
from pixelplan.distributed.config import RunConfig
from pixelplan.distributed.coordinator import train
from pixelplan.envs import Film


def _film(steps: int, reached: bool) -> Film:
    rng = np.random.default_rng(steps)
    frames = [np.repeat(rng.integers(0, 255, (9, 9, 1), np.uint8), 3, axis=-1) for _ in range(steps + 1)]
    return Film(frames, rewards=[1.0] * steps, at_goal=[False] * steps + [reached])


def _red_and_green(frame: np.ndarray) -> tuple[int, int]:
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    return int(((r > 180) & (g < 120)).sum()), int(((g > 180) & (r < 120)).sum())


def test_goal_video_shows_goal_beside_view_and_the_verdict_on_the_last_frame():
    goal = np.full((1, 9, 9), 200, np.uint8)
    missed = videos.goal_video(_film(6, reached=False), goal, time_limit=20)
    reached = videos.goal_video(_film(6, reached=True), goal, time_limit=20)
    assert missed.shape[0] == 7 and missed.dtype == np.uint8 and missed.shape[-1] == 3
    assert missed.shape[1] % 16 == 0 and missed.shape[2] % 16 == 0 and missed.shape[1] >= videos.MIN_HEIGHT
    assert missed.shape[2] > 2 * videos.MIN_HEIGHT  # two enlarged panels side by side
    assert _red_and_green(missed[-1])[0] > 20 and _red_and_green(missed[-1])[1] == 0  # "goal not reached"
    assert _red_and_green(reached[-1])[1] > 20 and _red_and_green(reached[-1])[0] == 0  # "goal reached"
    assert _red_and_green(reached[0]) == (0, 0)  # no verdict before the end
    # the goal panel (left, below the text) is the goal frame, enlarged
    assert (missed[:, videos.HEADER + 5, 5] == 200).all()


def test_return_video_counts_the_return_up():
    film = _film(4, reached=False)
    frames = videos.return_video(film)
    assert frames.shape[0] == 5 and frames.shape[1] % 16 == 0
    header = frames[:, : videos.HEADER]
    assert all(not np.array_equal(header[t], header[t + 1]) for t in range(4))  # step and return change


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_written_video_opens_with_every_frame(tmp_path, monkeypatch, ffmpeg):
    frames = videos.goal_video(_film(11, reached=True), np.zeros((1, 9, 9), np.uint8), time_limit=20)
    monkeypatch.setattr(videos, "ffmpeg_available", lambda: ffmpeg)
    path = videos.write_video(tmp_path / "episode", frames, fps=10)
    assert path.suffix == (".mp4" if ffmpeg else ".gif")
    back = iio.imread(path, index=None, plugin="FFMPEG" if ffmpeg else None)
    assert back.shape[:3] == frames.shape[:3]
    error = np.abs(back[..., :3].astype(int) - frames).mean(axis=(1, 2, 3))  # both formats are lossy here
    assert (error < 8).all(), error


def _evaluations(run_dir) -> int:
    with open(run_dir / "metrics.csv") as fh:
        return sum(r["key"] == "eval/achievement" for r in csv.DictReader(fh))


def _tb_videos(run_dir) -> list:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0}).Reload()
    return events.Images("eval/video") if "eval/video" in events.Tags()["images"] else []


def test_training_logs_a_video_every_k_evaluations_and_none_by_default(tmp_path):
    base = dict(agent="stub", env="grid", steps=1200, seed=3, progress=False, eval_every=200, eval_episodes=3,
                worker_chunk=50, envs_per_worker=2, agent_overrides={"min_steps_learn": 200, "batch_size": 8})
    train(RunConfig(out=str(tmp_path / "video"), eval_video_every=2, **base))
    train(RunConfig(out=str(tmp_path / "plain"), **base))
    evaluations = _evaluations(tmp_path / "video")
    logged = _tb_videos(tmp_path / "video")
    assert evaluations >= 4 and len(logged) == evaluations // 2
    for event in logged:
        frames = iio.imread(event.encoded_image_string, index=None, extension=".gif")
        assert 2 <= frames.shape[0] <= 21 and frames.shape[1:3] == (event.height, event.width)
    assert _tb_videos(tmp_path / "plain") == [] and _evaluations(tmp_path / "plain") == evaluations
