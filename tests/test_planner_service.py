"""The planner service's batching and weight swaps, driven on an asyncio loop (no Ray needed)."""
import asyncio

import numpy as np
import pytest

from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.planner_service import BatchingPlanner, PlannerService

OBS = np.zeros((2, 1, 9, 9), np.uint8)


def _service(**planner) -> BatchingPlanner:
    return BatchingPlanner(RunConfig(agent="stub", planner=PlannerConfig(**planner)))


def test_max_batch_size_respected_and_requests_merged():
    service = _service(max_batch=8, max_wait_ms=50)

    async def main():
        return await asyncio.gather(*[service.plan(OBS, OBS, np.array([3, 1])) for _ in range(10)])

    results = asyncio.run(main())
    sizes = service.stats()["planner/batch_sizes"]
    assert sum(sizes) == 20 and max(sizes) <= 8 and len(sizes) <= 4  # 20 rows in batches of <= 8
    for r in results:
        assert r.actions.shape[0] == 2 and (r.lengths <= np.array([3, 1])).all()


def test_without_waiting_requests_queued_behind_a_batch_are_merged():
    """max_wait_ms=0 (the default): nobody waits for company, yet what queued while a batch ran is merged."""
    service = _service(max_batch=8, max_wait_ms=0)

    async def main():
        return await asyncio.gather(*[service.plan(OBS, OBS, np.array([3, 1])) for _ in range(10)])

    asyncio.run(main())
    sizes = service.stats()["planner/batch_sizes"]
    assert sum(sizes) == 20 and max(sizes) == 8


def test_weights_swap_between_batches_never_within():
    service = _service(max_batch=4, max_wait_ms=20)

    async def main():
        first = [asyncio.ensure_future(service.plan(OBS, OBS, np.array([2, 2]))) for _ in range(2)]
        await asyncio.sleep(0)  # queued; the batch has not run yet
        service.set_weights(7, {"version": 7, "weights": np.ones(4)})
        batch1 = await asyncio.gather(*first)
        service.set_weights(9, {"version": 9, "weights": np.ones(4)})
        batch2 = await asyncio.gather(*[service.plan(OBS, OBS, np.array([2, 2])) for _ in range(2)])
        return batch1, batch2

    batch1, batch2 = asyncio.run(main())
    assert {r.version for r in batch1} == {7} and {r.version for r in batch2} == {9}


def test_bad_requests_fail_only_their_batch():
    service = _service(max_batch=64, max_wait_ms=1)

    async def main():
        with pytest.raises(ValueError, match="observation"):
            await service.plan(OBS[:, :, :4], OBS, np.array([2, 2]))
        return await service.plan(OBS, OBS, np.array([2, 2]))

    assert asyncio.run(main()).lengths.shape == (2,)


def test_each_agent_kind_gets_only_its_request():
    with pytest.raises(ValueError, match="does not plan"):
        PlannerService(RunConfig(agent="stub-policy")).plan(OBS, OBS, np.array([2, 2]))
    with pytest.raises(ValueError, match="does not act"):
        PlannerService(RunConfig(agent="stub")).act(OBS, None, np.zeros(2, bool), True, 0)


def test_act_requests_are_batched_and_each_caller_gets_its_own_rows_and_carry():
    run = RunConfig(agent="dreamer", env="grid", env_options={"cell_px": 4}, agent_overrides={"preset": "tiny_discrete"},
                    acting="service", planner=PlannerConfig(max_batch=64, max_wait_ms=50))
    service = BatchingPlanner(run)
    agent = service.agent
    rng = np.random.default_rng(0)
    requests = [(rng.integers(0, 256, (n, *agent.spec.obs_shape), dtype=np.uint8),
                 {k: rng.normal(size=v.shape).astype(np.float32) for k, v in agent.initial_carry(n).items()},
                 np.array([True] + [False] * (n - 1))) for n in (1, 3, 2)]

    async def main():
        return await asyncio.gather(*[service.act(obs, carry, first, False, 0) for obs, carry, first in requests])

    answers = asyncio.run(main())
    assert service.stats()["planner/batch_sizes"] == [6]  # three callers, one pass
    for (obs, carry, first), (actions, new_carry) in zip(requests, answers):
        alone_actions, alone_carry = agent.act(obs, carry, first, False, 0)
        assert actions.shape == alone_actions.shape == (len(obs),)
        assert {k: v.shape for k, v in new_carry.items()} == {k: v.shape for k, v in alone_carry.items()}
        np.testing.assert_allclose(new_carry["deter"], alone_carry["deter"], atol=1e-5)  # stoch is a fresh sample
    with pytest.raises(ValueError, match="carry of batch"):
        asyncio.run(service.act(requests[1][0], requests[0][1], requests[1][2], False, 0))


def test_a_bad_request_does_not_fail_its_batch_mates():
    service = _service(max_batch=64, max_wait_ms=30)

    async def main():
        good = asyncio.ensure_future(service.plan(OBS, OBS, np.array([2, 2])))
        bad = asyncio.ensure_future(service.plan(OBS, OBS[:1], np.array([2, 2])))
        return await asyncio.gather(good, bad, return_exceptions=True)

    good, bad = asyncio.run(main())
    assert good.lengths.shape == (2,) and isinstance(bad, ValueError)
