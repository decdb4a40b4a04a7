"""Stacked fits with groups of members in forked processes (:mod:`protege.policies.member_procs`)
give the bits of one process, and a child that fails, dies or hangs costs time, not results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from fakes import fit_critic, fit_ensemble
from protege.policies import member_procs, member_threads
from protege.policies.stacked import StackedBackprop

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="forked member processes are Linux only"
)


@pytest.fixture()
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every fit forks, however small (two groups where there are two members)."""
    monkeypatch.setattr(member_procs, "MIN_FIT_WORK", 0)
    member_threads.set_threads(2)
    yield
    member_threads.set_threads(None)


def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(member_procs, "_forks", True)  # restored after the test
    member_procs.set_forks(False)
    member_threads.set_threads(1)


def test_groups_follow_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(member_threads, "cpus", lambda: 2)
    big = member_procs.MIN_FIT_WORK
    assert member_procs.groups(5, 1000, big // 1000) == [slice(0, 3), slice(3, 5)]
    assert member_procs.groups(5, 1000, big // 1000 - 1) == [slice(0, 5)]  # too little work
    assert member_procs.groups(3, 1000, big, min_members=2) == [slice(0, 3)]  # a lone member
    assert member_procs.groups(4, 1000, big, min_members=2) == [slice(0, 2), slice(2, 4)]
    member_threads.set_threads(1)
    try:
        assert member_procs.groups(5, 1000, big) == [slice(0, 5)]
    finally:
        member_threads.set_threads(None)
    assert len(member_procs.groups(5, 1000, big)) == 2
    monkeypatch.setattr(member_procs, "_forks", True)  # restored after the test
    member_procs.set_forks(False)
    assert member_procs.groups(5, 1000, big) == [slice(0, 5)]
    member_procs.set_forks(True)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # an OpenMP team: no fork
    assert member_procs.groups(5, 1000, big) == [slice(0, 5)]


@pytest.mark.parametrize("n_actions", [3, 0])
def test_td_fit_in_two_processes_gives_the_bits_of_one(
    n_actions: int, monkeypatch: pytest.MonkeyPatch, forks: None
) -> None:
    forked = fit_critic(n_actions)
    one_process(monkeypatch)
    alone = fit_critic(n_actions)
    assert forked[0] == alone[0]
    assert torch.equal(forked[1], alone[1])
    assert torch.equal(forked[2], alone[2])  # the generator drew as in one process


def test_td_fit_whose_child_dies_starts_over_alone_with_the_same_bits(
    monkeypatch: pytest.MonkeyPatch, forks: None
) -> None:
    parent = os.getpid()
    backward = StackedBackprop.backward
    calls = []

    def dying(self: StackedBackprop, members: slice = slice(None)) -> None:
        if os.getpid() != parent:
            os._exit(3)  # the child dies in its first backward pass
        calls.append(members)
        backward(self, members)

    monkeypatch.setattr(StackedBackprop, "backward", dying)
    forked = fit_critic(3)
    assert calls[0] == slice(0, 1) and calls[-1] != slice(0, 1)  # started over alone
    one_process(monkeypatch)
    alone = fit_critic(3)
    assert forked[0] == alone[0] and torch.equal(forked[1], alone[1])


@pytest.fixture()
def no_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.fork`` fails as it does without memory for another process."""

    def no_memory() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_memory)


def test_td_fit_that_cannot_fork_runs_alone_with_the_same_bits(
    monkeypatch: pytest.MonkeyPatch, forks: None, no_fork: None
) -> None:
    forked = fit_critic(3)
    one_process(monkeypatch)
    alone = fit_critic(3)
    assert forked[0] == alone[0] and torch.equal(forked[1], alone[1])


@pytest.mark.parametrize(
    ("head", "act_space", "members"),
    [
        ("categorical", gym.spaces.Discrete(3), 3),  # groups of 2 and 1
        ("mse", gym.spaces.Box(-1, 1, (1,), np.float32), 4),  # one output: groups of 2
        ("mse", gym.spaces.Box(-1, 1, (1,), np.float32), 3),  # would leave one alone: no fork
    ],
)
def test_stacked_bc_in_processes_gives_the_bits_of_one(
    head: str, act_space: gym.Space, members: int, monkeypatch: pytest.MonkeyPatch, forks: None
) -> None:
    forked = fit_ensemble(head, act_space, members)
    one_process(monkeypatch)
    assert torch.equal(forked, fit_ensemble(head, act_space, members))


def test_a_failed_child_group_is_trained_by_the_parent(forks: None) -> None:
    parent = os.getpid()

    def rows(part: slice) -> torch.Tensor:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return torch.arange(part.start, part.stop, dtype=torch.float32)[:, None].repeat(1, 3)

    out = member_procs.run(rows, [slice(0, 2), slice(2, 3)], 3)
    assert torch.equal(out, torch.arange(3.0)[:, None].repeat(1, 3))


def test_groups_that_cannot_fork_are_trained_here(forks: None, no_fork: None) -> None:
    out = member_procs.run(
        lambda part: torch.full((1, 2), float(part.start)),
        [slice(0, 1), slice(1, 2), slice(2, 3)],
        2,
    )
    assert torch.equal(out, torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))


def test_a_hung_child_is_killed_and_its_group_trained_here(
    monkeypatch: pytest.MonkeyPatch, forks: None
) -> None:
    monkeypatch.setattr(member_procs, "GRACE_SECONDS", 0.5)
    parent = os.getpid()

    def rows(part: slice) -> torch.Tensor:
        if os.getpid() != parent:
            time.sleep(600)  # a fork that deadlocked
        return torch.full((part.stop - part.start, 2), float(part.start))

    start = time.monotonic()
    out = member_procs.run(rows, [slice(0, 1), slice(1, 2)], 2)
    assert time.monotonic() - start < 30
    assert torch.equal(out, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))


def test_an_error_in_the_parent_group_is_raised_and_the_child_reaped(forks: None) -> None:
    parent = os.getpid()
    pids: list[int] = []
    fork = os.fork

    def counted_fork() -> int:
        pid = fork()
        if pid:
            pids.append(pid)
        return pid

    def rows(part: slice) -> torch.Tensor:
        if os.getpid() == parent:
            raise ValueError("the parent's group fails")
        time.sleep(600)
        return torch.zeros(1, 1)

    os.fork = counted_fork  # type: ignore[assignment]
    try:
        with pytest.raises(ValueError, match="parent's group"):
            member_procs.run(rows, [slice(0, 1), slice(1, 2)], 1)
    finally:
        os.fork = fork  # type: ignore[assignment]
    assert len(pids) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)  # already reaped: no zombie, no orphan


def test_a_child_dies_with_its_killed_parent(tmp_path: Path) -> None:
    """``kill -9`` of a run mid-fit leaves no forked half computing on."""
    script = tmp_path / "fit.py"
    pid_file = tmp_path / "child.pid"
    script.write_text(
        f"""
import os, time, torch
from protege.policies import member_procs, member_threads
member_threads.set_threads(2)
parent = os.getpid()
def rows(part):
    if os.getpid() != parent:
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
    time.sleep(600)
    return torch.zeros(1, 1)
member_procs.run(rows, [slice(0, 1), slice(1, 2)], 1)
"""
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists()
