"""Stacked fits with their members spread over threads (:mod:`protege.policies.member_threads`)
give the bits of one thread: the success critic's TD fit and the stacked BC of an ensemble."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch

from fakes import fit_critic, fit_ensemble
from protege.policies import member_threads


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
    fits = []
    for n in (1, 2):
        member_threads.set_threads(n)
        fits.append(fit_critic(n_actions))
    assert fits[0][0] == fits[1][0]
    assert torch.equal(fits[0][1], fits[1][1])


@pytest.mark.parametrize(
    ("head", "act_space"),
    [("categorical", gym.spaces.Discrete(3)), ("mse", gym.spaces.Box(-1, 1, (1,), np.float32))],
)
def test_stacked_bc_on_two_threads_gives_the_bits_of_one(head: str, act_space: gym.Space) -> None:
    weights = []
    for n in (1, 2):
        member_threads.set_threads(n)
        weights.append(fit_ensemble(head, act_space, 3))
    assert torch.equal(weights[0], weights[1])
