"""Rate limiter: nothing before min_steps, then the replay ratio, with writers at most tolerance ahead."""
import pytest

from pixelplan.distributed.replay import RateLimiter


def test_no_updates_before_min_steps_then_ratio_is_kept():
    limiter = RateLimiter(replay_ratio=4.0, min_steps=1000, batch_size=64, tolerance=2)
    assert limiter.updates_allowed(999, 0) == 0
    assert limiter.updates_allowed(1000, 0) == 0
    assert limiter.updates_allowed(1016, 0) == 1  # 4 * 16 = 64 items
    assert limiter.updates_allowed(1100, 0) == 6 and limiter.updates_allowed(1100, 6 * 64) == 0
    assert limiter.updates_allowed(1100, 10_000) == 0


def test_simulated_run_holds_the_ratio_and_throttles_writers():
    limiter = RateLimiter(replay_ratio=4.0, min_steps=500, batch_size=32, tolerance=4)
    inserted = sampled = 0
    for _ in range(5000):  # writers offer 25 steps a tick, the learner does at most 1 update a tick
        if limiter.inserts_allowed(inserted, sampled) > 0:
            inserted += 25
        if limiter.updates_allowed(inserted, sampled) > 0:
            sampled += 32
        assert sampled <= limiter.target_items(inserted)
        assert limiter.target_items(inserted) - sampled <= 4 * 32 + 4 * 25 + 32  # lag stays bounded
    assert sampled / (inserted - 500) == pytest.approx(4.0, rel=0.02)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="replay_ratio"):
        RateLimiter(0, 10, 32)
    with pytest.raises(ValueError, match="batch_size"):
        RateLimiter(4, 10, 0)
