"""Stacked fits with their members spread over threads (:mod:`protege.policies.member_threads`)
give the bits of one thread: the success critic's TD fit and the stacked BC of an ensemble."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch

from fakes import OBS5 as OBS
from fakes import td_batch
from protege.algos import stacked_bc, success_td
from protege.algos.bc import BCConfig
from protege.configs.methods import ThriftyConfig
from protege.data.transitions import Transitions
from protege.policies import Policy, PolicyConfig, member_threads
from protege.policies.success_q import SuccessQ


@pytest.fixture(autouse=True)
def automatic_threads() -> Iterator[None]:
    yield
    member_threads.set_threads(None)


def test_groups_split_members_evenly_and_threads_follow_the_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert member_threads.groups(5, 2) == [slice(0, 3), slice(3, 5)]
    assert member_threads.groups(2, 4) == [slice(0, 1), slice(1, 2)]
    assert member_threads.groups(3, 1) == [slice(0, 3)]
    monkeypatch.setattr(member_threads, "cpus", lambda: 2)
    assert member_threads.threads(5) == (2 if torch.get_num_threads() == 1 else 1)
    # Small products stay in one thread (the hand-offs would cost more than the second CPU).
    small, large = member_threads.MIN_WORK - 1, member_threads.MIN_WORK
    assert member_threads.threads(5, small) == 1
    assert member_threads.threads(5, large) == member_threads.threads(5)
    assert member_threads.groups(5, work=small) == [slice(0, 5)]
    assert member_threads.product_work(64, [(256, 8), (256, 256), (4, 256)]) == 64 * 256 * 256
    member_threads.set_threads(1)
    assert member_threads.threads(5) == 1
    with pytest.raises(ValueError, match="at least 1"):
        member_threads.set_threads(0)


def test_a_worker_error_reaches_the_caller_after_every_group_ends() -> None:
    done = []

    def work(m: slice) -> None:
        if m.start == 1:
            raise RuntimeError("member 1 failed")
        done.append(m.start)

    with pytest.raises(RuntimeError, match="member 1 failed"):
        member_threads.run(work, member_threads.groups(3, 3))
    assert sorted(done) == [0, 2]


@pytest.mark.parametrize("n_actions", [3, 0])
def test_td_fit_on_two_threads_gives_the_bits_of_one(n_actions: int) -> None:
    batch = td_batch(n_actions)
    positives = torch.nonzero(batch["reward"] > 0)[:, 0]
    cfg = ThriftyConfig(q_steps=40, q_batch=64, polyak=0.9, q_hidden=(48, 48))
    weights, losses = [], []
    for n in (1, 2):
        member_threads.set_threads(n)
        torch.manual_seed(3)
        critic = SuccessQ(5, 1, n_actions, cfg.q_hidden)
        gen = torch.Generator().manual_seed(1)
        losses.append(success_td.td_fit(critic, batch, positives, 6, cfg, gen))
        weights.append(torch.cat([p.detach().flatten() for p in critic.parameters()]))
    assert losses[0] == losses[1]
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize(
    ("head", "act_space"),
    [("categorical", gym.spaces.Discrete(3)), ("mse", gym.spaces.Box(-1, 1, (1,), np.float32))],
)
def test_stacked_bc_on_two_threads_gives_the_bits_of_one(head: str, act_space: gym.Space) -> None:
    rng = np.random.default_rng(0)
    act_space.seed(0)
    acts = np.stack([act_space.sample() for _ in range(120)])
    obs = rng.normal(size=(120, 5)).astype(np.float32)
    data = Transitions.labeled_steps(obs, acts, [40, 40, 40])
    cfg = BCConfig(steps=30, batch_size=16, lr=3e-3, grad_clip=0.5, progress=False)
    configs = [dataclasses.replace(cfg, seed=s) for s in range(3)]
    weights = []
    for n in (1, 2):
        member_threads.set_threads(n)
        policies = [
            Policy(PolicyConfig.for_spaces(OBS, act_space, head=head, hidden_sizes=(48,)), seed=s)
            for s in range(3)
        ]
        assert stacked_bc.applies(policies, [data] * 3, configs)
        stacked_bc.fit(policies, [data] * 3, configs)
        weights.append(torch.cat([p.flatten() for m in policies for p in m.parameters()]))
    assert torch.equal(weights[0], weights[1])
