"""Checkpoints round-trip under torch.load(weights_only=True): weights, optimiser and RNG states."""
import numpy as np
import pytest
import torch

from pixelplan.agents.registry import make_agent
from pixelplan.distributed.checkpoint import checkpoints, load_checkpoint, save_checkpoint
from pixelplan.envs import make_env


@pytest.mark.parametrize("agent, overrides", [("stub", {}), ("glamor", {"preset": "tiny"})])
def test_agent_state_survives_a_weights_only_round_trip(tmp_path, agent, overrides):
    spec = make_env("grid").spec
    original = make_agent(agent, spec, overrides, device="cpu")
    original.rng.random(5)  # move the numpy RNG off its seed
    if hasattr(original, "optim"):  # one optimiser step, so there are Adam moments to save
        for param in original.net.parameters():
            param.grad = torch.ones_like(param)
        original.optim.step()
    save_checkpoint(tmp_path, {"config": {}, "learner": {"agent": original.state_dict()}}, 7)
    state = load_checkpoint(tmp_path)  # weights_only=True inside
    restored = make_agent(agent, spec, overrides, device="cpu")
    restored.load_state_dict(state["learner"]["agent"])
    assert restored.rng.random(3).tolist() == original.rng.random(3).tolist()
    mine, theirs = list(_tensors(original.state_dict())), list(_tensors(restored.state_dict()))
    assert len(mine) == len(theirs) and all(torch.equal(a, b) for a, b in zip(mine, theirs))
    if agent == "glamor":
        assert original.optim.state_dict()["state"]  # the moments were there to compare
    else:
        assert np.array_equal(np.asarray(restored.weights), original.weights)


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _tensors(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _tensors(value)


def test_only_the_newest_three_are_kept_and_no_temporary_file_remains(tmp_path):
    for step in range(5):
        save_checkpoint(tmp_path, {"config": {}, "learner": {"step": step}}, step)
    assert [p.name for p in checkpoints(tmp_path)] == [f"ckpt-{s:09d}.pt" for s in (4, 3, 2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in checkpoints(tmp_path))
