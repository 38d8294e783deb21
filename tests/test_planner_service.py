"""The planner service's batching and weight swaps, driven on an asyncio loop (no Ray needed)."""
import asyncio
import threading

import numpy as np
import pytest

from pixelplan.distributed import planner_service
from pixelplan.distributed.config import PlannerConfig, RunConfig
from pixelplan.distributed.handles import LocalHandle
from pixelplan.distributed.planner_service import BatchingPlanner, PlannerBusy, PlannerMemory, PlannerService
from pixelplan.distributed.resolve import ResolvedRun

OBS = np.zeros((2, 1, 9, 9), np.uint8)


def _service(**planner) -> BatchingPlanner:
    return BatchingPlanner(ResolvedRun.of(RunConfig(agent="stub", planner=PlannerConfig(**planner))))


def test_max_batch_size_respected_and_requests_merged():
    service = _service(max_batch=8, max_wait_ms=50)

    async def main():
        return await asyncio.gather(*[service.plan(OBS, OBS, np.array([3, 1])) for _ in range(10)])

    results = asyncio.run(main())
    sizes = service.stats()["planner/batch_sizes"]
    assert sum(sizes) == 20 and max(sizes) <= 8 and len(sizes) <= 4  # 20 rows in batches of <= 8
    for r in results:
        assert r.actions.shape[0] == 2 and (r.lengths <= np.array([3, 1])).all()


def test_banned_first_actions_ride_with_unbanned_requests_in_one_batch():
    service = _service(max_batch=8, max_wait_ms=50)
    banned = np.array([[True, True, False, True], [False, True, True, True]])  # the stub's 4 actions

    async def main():
        return await asyncio.gather(service.plan(OBS, OBS, np.array([3, 3])),
                                    *[service.plan(OBS, OBS, np.array([3, 3]), banned=banned) for _ in range(3)])

    free, *held = asyncio.run(main())
    assert service.stats()["planner/batch_sizes"] == [8]
    assert all(r.actions[:, 0].tolist() == [2, 0] for r in held)
    with pytest.raises(ValueError, match="leaving each request an action"):
        asyncio.run(service.plan(OBS, OBS, np.array([3, 3]), banned=np.ones((2, 4), bool)))


def test_without_waiting_requests_queued_behind_a_batch_are_merged():
    """max_wait_ms=0 (the default): nobody waits for company, yet what queued while a batch ran is merged."""
    service = _service(max_batch=8, max_wait_ms=0)

    async def main():
        return await asyncio.gather(*[service.plan(OBS, OBS, np.array([3, 1])) for _ in range(10)])

    asyncio.run(main())
    sizes = service.stats()["planner/batch_sizes"]
    assert sum(sizes) == 20 and max(sizes) == 8


@pytest.mark.parametrize("inline_max_ms, batch_ms, inline", [(25.0, 1.0, True), (25.0, 100.0, False), (0.0, 0.01, False)])
def test_cheap_batches_run_on_the_loop_and_still_merge(monkeypatch, inline_max_ms, batch_ms, inline):
    """A batch runs on the loop when the last one's cost per row, times its rows, fits ``inline_max_ms``."""
    service, ran_on = _service(max_batch=8, inline_max_ms=inline_max_ms), []
    plan_batch = service._plan_batch

    def recording(*args):
        ran_on.append(threading.current_thread())
        return plan_batch(*args)

    service._plan_batch = recording
    # Each batch reports the same cost, so a loaded machine's preemptions cannot move the choice under test.
    monkeypatch.setattr(planner_service, "_timed", lambda fn, *args: (fn(*args), batch_ms / 1000))

    async def main():
        await service.plan(OBS, OBS, np.array([3, 1]))  # the first batch's cost is unknown: the planning thread
        await asyncio.gather(*[service.plan(OBS, OBS, np.array([3, 1])) for _ in range(10)])

    asyncio.run(main())  # the loop runs in this thread
    here = threading.current_thread()
    assert ran_on[0] is not here and all((t is here) == inline for t in ran_on[1:])
    sizes = service.stats()["planner/batch_sizes"]
    assert sizes[0] == 2 and sum(sizes) == 22 and max(sizes) == 8  # merged either way


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
        PlannerService(ResolvedRun.of(RunConfig(agent="stub-policy"))).plan(OBS, OBS, np.array([2, 2]))
    with pytest.raises(ValueError, match="does not act"):
        PlannerService(ResolvedRun.of(RunConfig(agent="stub"))).act(OBS, None, np.zeros(2, bool), True, 0)


def test_act_requests_are_batched_and_each_caller_gets_its_own_rows_and_carry():
    run = RunConfig(agent="dreamer", env="grid", env_options={"cell_px": 4}, agent_overrides={"preset": "tiny_discrete"},
                    acting="service", planner=PlannerConfig(max_batch=64, max_wait_ms=50))
    service = BatchingPlanner(ResolvedRun.of(run))
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


def test_a_planner_with_memory_answers_only_with_broadcast_weights():
    """A restarted planner starts from the last broadcast; a fresh one waits for the first."""
    memory = PlannerMemory()
    memory.remember_weights(5, [{"version": 5, "weights": np.ones(4)}])
    restarted = BatchingPlanner(ResolvedRun.of(RunConfig(agent="stub")), LocalHandle(memory))
    assert asyncio.run(restarted.plan(OBS, OBS, np.array([2, 2]))).version == 5

    fresh = BatchingPlanner(ResolvedRun.of(RunConfig(agent="stub", planner=PlannerConfig(max_wait_ms=1))),
                            LocalHandle(PlannerMemory()))

    async def main():
        waiting = asyncio.ensure_future(fresh.plan(OBS, OBS, np.array([2, 2])))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # nothing broadcast yet: no answer from untrained weights
        fresh.set_weights(3, {"version": 3, "weights": np.ones(4)})
        first = await asyncio.wait_for(waiting, 10)
        fresh.set_weights(2, {"version": 2, "weights": np.zeros(4)})  # a late retry of an older broadcast
        return first, await asyncio.wait_for(fresh.plan(OBS, OBS, np.array([2, 2])), 10)

    first, later = asyncio.run(main())
    assert first.version == 3 and later.version == 3 and fresh.counters["plans"] == 4


def test_a_full_queue_refuses_outside_callers_but_not_the_runs_own_workers():
    service = _service(max_request_rows=4, max_queued_rows=4, max_wait_ms=300)
    three = np.zeros((3, 1, 9, 9), np.uint8)

    async def main():
        waiting = asyncio.ensure_future(service.plan(three, three, np.array([2, 2, 2]), outside=True))
        await asyncio.sleep(0.05)
        with pytest.raises(PlannerBusy, match="max_queued_rows"):
            await service.plan(OBS, OBS, np.array([2, 2]), outside=True)
        worker = await service.plan(OBS, OBS, np.array([2, 2]))  # a worker's request always queues
        return await waiting, worker

    outside, worker = asyncio.run(main())
    assert outside.lengths.shape == (3,) and worker.lengths.shape == (2,) and service.counters["plans"] == 5
