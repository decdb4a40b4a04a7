"""Rollouts cut into units (protege.rollout.remote) give the single-process run's episodes,
numbers and store, whatever order the units' messages arrive in and however often a unit is
re-run after its worker died. Units run in this process here (no Ray: fast); the Ray backend
itself is tested in test_ray_workers.py."""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import TINY_ROUND, round_numbers
from protege.algos import dagger, dart, engine
from protege.algos.remote_rounds import BatchUnit
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.policies import Policy
from protege.rollout.collect import collect
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.rollout.gates import LearnerGate
from protege.rollout.remote import (
    SHARED,
    Deduplicate,
    UnitDone,
    join_shared,
    slot_targets,
    split_shared,
)
from protege.tasks import make

LUNAR = make("lunarlander")


class InProcessWorkers:
    """Runs every unit here (each with its own copy of the objects the units share, as
    Ray workers get them), then feeds the messages interleaved in a seeded random order
    (each unit's own order kept); unit ``die`` is first run as if its worker died after
    ``die_after`` messages, then run again from its start (as RayWorkers does). ``flush``
    is called after groups of 1 to ``group`` messages (seeded sizes), as RayWorkers calls
    it after the messages that arrived together."""

    def __init__(self, seed: int = 0, die: int | None = None, die_after: int = 1, group: int = 1):
        self.rng = random.Random(seed)
        self.die, self.die_after = die, die_after
        self.group = group
        self.fed = 0
        self.flushes = 0

    def run(self, units: list[Any], feed: Any, flush: Any = None) -> None:
        streams: list[list[tuple[int, int, Any]]] = []
        stripped, common = split_shared(units)  # as RayWorkers sends them: each unit gets
        units = [join_shared(u, copy.deepcopy(common)) for u in stripped]  # a fresh copy
        for u, unit in enumerate(units):
            out: list[Any] = []
            unit.run(out.append)
            runs = [out]
            if u == self.die:
                again: list[Any] = []
                unit.run(again.append)
                runs = [out[: self.die_after], again]
            streams.append([(u, seq, m) for run in runs for seq, m in enumerate(run)])
        dedupe = Deduplicate()
        size = self.rng.randint(1, self.group)
        while any(streams):
            stream = self.rng.choice([s for s in streams if s])
            u, seq, msg = stream.pop(0)
            if dedupe.fresh(u, seq):
                self.fed += 1
                feed(u, msg)
            size -= 1
            if flush is not None and (size == 0 or not any(streams)):
                flush()
                self.flushes += 1
                size = self.rng.randint(1, self.group)


def _store_arrays(path: Path) -> tuple[Any, ...]:
    store = Store.open(path)
    t = store.transitions()
    index = [(e.seed, e.round, e.length, sorted(e.extras.items())) for e in store.index]
    return t.obs, t.actions, t.rewards, t.labeled, index


def test_slot_targets_are_the_loops_split() -> None:
    assert slot_targets(7, 3) == [2, 2, 3]
    assert sum(slot_targets(50, 8)) == 50


def test_a_rerun_units_messages_pass_once() -> None:
    d = Deduplicate()
    assert [d.fresh(0, s) for s in (0, 1, 0, 1, 2)] == [True, True, False, False, True]
    assert d.fresh(1, 0)


def test_collect_on_units_matches_one_process_episode_for_episode(tmp_path: Path) -> None:
    """LunarLander episodes differ in length, so the order of completion matters."""
    local = collect(LUNAR, tmp_path / "a", 7, n_envs=3, seed=1)
    workers = InProcessWorkers(1, die=1, die_after=1, group=4)  # group commits
    remote = collect(LUNAR, tmp_path / "b", 7, n_envs=3, seed=1, workers=workers)
    assert remote.returns == local.returns and remote.lengths == local.lengths
    assert remote.successes == local.successes
    assert (remote.labels, remote.expert_queries) == (local.labels, local.expert_queries)
    assert remote.expert_steps == local.expert_steps
    for x, y in zip(_store_arrays(tmp_path / "a"), _store_arrays(tmp_path / "b"), strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
    assert workers.fed == 7 + 3  # every episode and every unit's end, once
    assert 1 < workers.flushes < workers.fed


def test_evaluate_on_units_matches_one_process() -> None:
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.for_spaces(*LUNAR.spaces, hidden_sizes=(16,)))
    local = evaluate(policy, LUNAR, episodes=5, n_envs=2, seed=3)
    remote = evaluate(policy, LUNAR, episodes=5, n_envs=2, seed=3, workers=InProcessWorkers(1))
    assert np.array_equal(remote.returns, local.returns)
    assert np.array_equal(remote.disagreement_by_step, local.disagreement_by_step, equal_nan=True)
    assert remote.expert_queries == local.expert_queries
    expert = evaluate_expert(LUNAR, 3, n_envs=3, seed=9, workers=InProcessWorkers(2))
    assert np.array_equal(expert.returns, evaluate_expert(LUNAR, 3, n_envs=3, seed=9).returns)


@pytest.mark.parametrize("method", [dagger, dart])
def test_interactive_rounds_on_units_match_one_process(tmp_path: Path, method: Any) -> None:
    make_policy = engine.policy_factory(LUNAR, hidden_sizes=(16,))
    runs = []
    for name, workers in (("a", None), ("b", InProcessWorkers(3, die=2, die_after=1))):
        kw = {} if workers is None else {"workers": workers}
        res = method.run(LUNAR, tmp_path / name, TINY_ROUND, make_policy=make_policy, **kw)
        runs.append(res)
    assert round_numbers(runs[0]) == round_numbers(runs[1])
    for x, y in zip(_store_arrays(tmp_path / "a"), _store_arrays(tmp_path / "b"), strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


def test_the_units_of_a_round_send_the_learner_once() -> None:
    """A round's batches hold one learner (and gate, expert, task): it is split off to be
    sent once, and each unit keeps only its own episodes (the weights in no unit)."""
    policy = Policy(PolicyConfig.for_spaces(*LUNAR.spaces, hidden_sizes=(16,)))
    gate, expert = LearnerGate(), LUNAR.make_expert()
    units = [BatchUnit(LUNAR, expert, gate, policy, 1, [2 * b, 2 * b + 1], 7) for b in range(3)]
    stripped, shared = split_shared(units)
    assert shared == {"task": LUNAR, "expert": expert, "gate": gate, "learner": policy}
    for b, unit in enumerate(stripped):
        assert (unit.learner, unit.gate, unit.expert, unit.task) == (SHARED,) * 4
        assert (unit.round, unit.indices, unit.seed) == (1, [2 * b, 2 * b + 1], 7)
        assert join_shared(unit, shared) == units[b]
    # Units holding different objects keep them.
    other = dataclasses.replace(units[1], learner=Policy(policy.config))
    assert "learner" not in split_shared([units[0], other])[1]


def test_unit_done_sums_a_rollouts_counts() -> None:
    done = UnitDone(labels=3, expert_queries=4)
    assert (done.labels, done.expert_queries, done.learner_steps) == (3, 4, 0)


class DriverDied(Exception):
    """Stands for the driver killed between two appends."""


def test_a_driver_killed_mid_round_resumes_on_units_to_the_same_numbers(tmp_path: Path) -> None:
    make_policy = engine.policy_factory(LUNAR, hidden_sizes=(16,))
    local = dagger.run(LUNAR, tmp_path / "a", TINY_ROUND, make_policy=make_policy)
    appended: list[int] = []

    def die_after_three(episode: Any, index: int) -> None:
        appended.append(index)
        if len(appended) == 3:  # round 0's demonstration, then two of round 1's episodes
            raise DriverDied

    with pytest.raises(DriverDied):
        dagger.run(
            LUNAR,
            tmp_path / "b",
            TINY_ROUND,
            make_policy=make_policy,
            workers=InProcessWorkers(4),
            after_episode=die_after_three,
        )
    assert len(Store.open(tmp_path / "b")) == 3
    resumed = dagger.run(
        LUNAR,
        tmp_path / "b",
        TINY_ROUND,
        make_policy=make_policy,
        workers=InProcessWorkers(5),
        resume=True,
    )
    assert round_numbers(resumed) == round_numbers(local)
    assert len(Store.open(tmp_path / "b")) == len(Store.open(tmp_path / "a"))


@pytest.mark.slow  # 3 runs; fast: test_store_group.py, the collect test's group commits
def test_a_driver_killed_mid_group_loses_that_group_and_resumes_to_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 1's first group commit (2 episodes) dies after writing its rows, before its
    index lines: the store keeps round 0 only, and the resumed run re-runs the lost
    episodes with their seeds."""
    from protege.data import store as store_module

    make_policy = engine.policy_factory(LUNAR, hidden_sizes=(16,))
    local = dagger.run(LUNAR, tmp_path / "a", TINY_ROUND, make_policy=make_policy)
    real, commits = store_module._append_durably, []

    def dies_on_second_commit(path: Path, data: bytes) -> None:
        if path.name == "episodes.jsonl":
            commits.append(data.count(b"\n"))
            if len(commits) == 2:
                raise DriverDied
        real(path, data)

    monkeypatch.setattr(store_module, "_append_durably", dies_on_second_commit)
    with pytest.raises(DriverDied):
        workers = InProcessWorkers(0, group=3)
        dagger.run(LUNAR, tmp_path / "b", TINY_ROUND, make_policy=make_policy, workers=workers)
    monkeypatch.undo()
    assert commits == [1, 2]  # round 0's demonstration, then a group of two
    assert len(Store.open(tmp_path / "b")) == 1
    resumed = dagger.run(
        LUNAR,
        tmp_path / "b",
        TINY_ROUND,
        make_policy=make_policy,
        workers=InProcessWorkers(5, group=3),
        resume=True,
    )
    assert round_numbers(resumed) == round_numbers(local)
    for x, y in zip(_store_arrays(tmp_path / "a"), _store_arrays(tmp_path / "b"), strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hg-dagger", "ensemble", "thrifty"])
def test_the_gated_methods_on_units_match_one_process(tmp_path: Path, method: str) -> None:
    """ThriftyDAgger re-calibrates between batches: its batches run one after another."""
    from protege.algos import registry

    runs = []
    for name, workers in (("a", None), ("b", InProcessWorkers(6, die=1))):
        kw = {} if workers is None else {"workers": workers}
        res = registry.run_method(
            method,
            LUNAR,
            tmp_path / name,
            dataclasses.replace(TINY_ROUND, episodes_per_round=4),
            None,
            make_policy=engine.policy_factory(LUNAR, hidden_sizes=(16,)),
            **kw,
        )
        runs.append(res)
    assert round_numbers(runs[0]) == round_numbers(runs[1])
    for x, y in zip(_store_arrays(tmp_path / "a"), _store_arrays(tmp_path / "b"), strict=True):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
