"""A fleet's robots on workers (protege.rollout.fleet_shards): the local fleet's steps,
episodes, labels, allocation and numbers, with 1 or 2 workers, with people at the desk, and
when a worker dies mid-run. The workers run in this process here (fast; each holds its own
copy of what it is sent, as a Ray worker does); test_fleet_ray.py runs them on Ray."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fakes import FirstStepNovelty, round_numbers
from protege.configs.fleet import FleetConfig
from protege.configs.policy import PolicyConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.adapters import CallableExpert
from protege.policies import Policy
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.success_q import SuccessQ
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.fleet import Fleet, LocalRobots
from protege.rollout.fleet_shards import RobotShard, ShardedRobots
from protege.rollout.gates_interactive import ThriftyGate
from protege.rollout.remote import join_shared, split_shared
from protege.tasks.base import Task
from protege.teleop.desk import Desk, ScriptedStation
from test_fleet import SHORT_POLE, _small_run
from test_fleet_people import PUSH, Steps, person
from test_remote_rollouts import InProcessWorkers


class InProcessHolders(InProcessWorkers):
    """Workers in this process that hold objects (and run units, as InProcessWorkers).
    ``kill``: (call number, worker) pairs: that worker dies at that call (before answering
    it; its state is lost and it comes back holding a fresh copy of what it was sent)."""

    def __init__(self, n: int, kill: Sequence[tuple[int, int]] = ()):
        super().__init__()
        self.n, self.kill, self.calls, self.lost = n, set(kill), 0, 0
        self.held: list[Any] = []

    def hold(self, objects: Sequence[Any]) -> None:
        assert len(objects) <= self.n
        self.sent = split_shared(objects)
        self.held = [self._fresh(w) for w in range(len(objects))]

    def _fresh(self, w: int) -> Any:
        stripped, common = self.sent
        return join_shared(copy.deepcopy(stripped[w]), copy.deepcopy(common))

    def call(self, calls: Any) -> tuple[dict[int, Any], list[int]]:
        self.calls += 1
        answers, lost = {}, []
        for w, (method, args) in calls.items():
            if (self.calls, w) in self.kill:
                self.held[w] = self._fresh(w)
                self.lost += 1
                lost.append(w)
                continue
            answer = getattr(self.held[w], method)(*copy.deepcopy(args))
            answers[w] = copy.deepcopy(answer)
        return answers, lost


def _gate() -> ThriftyGate:
    """An untrained 3-member ensemble and critic on CartPole: it drops the pole (failures
    wait for resets), and asks for help where its novelty is in the top third."""
    torch.manual_seed(0)
    config = PolicyConfig.for_spaces(*SHORT_POLE.spaces, hidden_sizes=(16,))
    ens = PolicyEnsemble([Policy(config) for _ in range(3)])
    critic = SuccessQ(config.obs_size, config.act_dim, config.n_actions, (16,))
    obs = np.random.default_rng(0).normal(0, 0.1, (64, 4)).astype(np.float32)
    learner = ThriftyLearner(ens, critic, 0.2)
    novelty = float(np.quantile(learner.novelty(obs), 0.67))
    return ThriftyGate(learner, critic, novelty_threshold=novelty, risk_threshold=0.45)


CONFIG = FleetConfig(
    robots=5, supervisors=2, switch_steps=1, min_takeover=3, max_takeover=10, reset_steps=2
)


def _simulate(
    workers: Any = None, task: Task = SHORT_POLE, **settings: Any
) -> tuple[dict[str, float], Steps]:
    """120 fleet steps of 5 robots and 2 simulated supervisors; what it did, every step."""
    cfg = FleetConfig(**{**vars(CONFIG), **settings})
    gate, expert, seen = _gate(), task.make_expert(), Steps()
    robots = (
        LocalRobots(task.make_env, cfg.robots)
        if workers is None
        else ShardedRobots(workers, task, cfg.robots, expert)
    )
    fleet = Fleet(robots, gate, expert, cfg, task.success, task.spaces[1])
    result = fleet.run(
        range(10_000), lambda e: 1000 + e, np.random.default_rng(0), observers=[seen], max_steps=120
    )
    return result.to_dict(), seen


def _same_steps(a: Steps, b: Steps) -> None:
    assert len(a.steps) == len(b.steps)
    for x, y in zip(a.steps, b.steps, strict=True):
        for name in ("obs", "active", "learner_action", "expert_action", "asked", "executed"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
        for name in ("reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
        np.testing.assert_array_equal(x.decision.label, y.decision.label)


@functools.cache
def _local() -> tuple[dict[str, float], Steps]:
    return _simulate()


@pytest.mark.parametrize("n_workers", [1, 2])
def test_robots_on_workers_run_the_local_fleet(n_workers: int) -> None:
    local, seen = _local()
    assert local["visits"] > 3 and local["resets"] > 3 and local["labels"] > 20  # it works
    remote, seen_remote = _simulate(InProcessHolders(n_workers))
    assert remote == local
    _same_steps(seen, seen_remote)


def test_a_dead_worker_s_robots_rerun_their_episodes_and_the_numbers_stay() -> None:
    local, seen = _local()
    workers = InProcessHolders(2, kill=[(40, 0), (41, 0), (90, 1)])  # twice in a row, once
    remote, seen_remote = _simulate(workers)
    assert workers.lost == 3
    assert remote == local
    _same_steps(seen, seen_remote)
    with pytest.raises(RuntimeError, match=r"3 workers died in a row running robots \[0, 1, 2\]"):
        _simulate(InProcessHolders(2, kill=[(30, 0), (31, 0), (32, 0)]))


class _Drifting(RobotShard):
    """A shard whose envs come back elsewhere when re-run (not reproducible)."""

    def replay(self, orders: list[tuple[int, int, list[Any]]]) -> list[Any]:
        return [obs + 1 for obs in super().replay(orders)]


def test_an_env_that_does_not_rerun_the_same_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("protege.rollout.fleet_shards.RobotShard", _Drifting)
    with pytest.raises(ConfigError, match=r"robot 0.s episode .* not reproducible"):
        _simulate(InProcessHolders(2, kill=[(30, 0)]))


def test_people_drive_robots_on_workers_from_the_driver() -> None:
    """People's robots act on the people's keys, sent from here; the windows show frames
    fetched from the worker holding the robot."""
    runs = []
    for workers in (None, InProcessHolders(2)):
        robots = (
            LocalRobots(lambda: SHORT_POLE.make_env(render_mode="rgb_array"), 3)
            if workers is None
            else ShardedRobots(workers, SHORT_POLE, 3, None, rgb=True)
        )
        gate = ThriftyGate(FirstStepNovelty(discrepancy=0.0), None, novelty_threshold=0.05)
        cfg = FleetConfig(robots=3, supervisors=1, wait="pause")
        space = SHORT_POLE.spaces[1]
        desk = Desk([ScriptedStation(person(drive=3, wait=1))], PUSH, space, fps=1000)
        never = CallableExpert(lambda obs: pytest.fail("a fleet with people asked the expert"))
        f = Fleet(robots, gate, never, cfg, SHORT_POLE.success, space, people=desk)
        seen = Steps()
        res = f.run(range(6), lambda e: e, np.random.default_rng(0), observers=[seen], max_steps=30)
        (station,) = desk.stations
        frames = [v.frame for v in station.views if v.frame is not None]
        runs.append((res.to_dict(), seen, frames))
    (local, seen, frames), (remote, seen_remote, frames_remote) = runs
    assert local["labels"] > 0 and remote == local
    _same_steps(seen, seen_remote)
    assert len(frames) > 5 and len(frames_remote) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, frames_remote, strict=True))


@pytest.mark.slow
def test_fleet_dagger_rounds_on_workers_store_the_local_episodes(tmp_path: Path) -> None:
    local = _small_run(tmp_path / "local", rounds=1)
    workers = InProcessHolders(2, kill=[(25, 1)])
    remote = _small_run(tmp_path / "remote", rounds=1, workers=workers)
    assert workers.lost == 1
    assert round_numbers(remote) == round_numbers(local)
    assert remote.rows[-1].extras == local.rows[-1].extras
    a, b = (Store.open(tmp_path / d / "store") for d in ("local", "remote"))
    ta, tb = a.transitions(), b.transitions()
    np.testing.assert_array_equal(ta.obs, tb.obs)
    np.testing.assert_array_equal(ta.actions, tb.actions)
    assert [(e.round, e.episode, e.seed, e.extras) for e in a.index] == [
        (e.round, e.episode, e.seed, e.extras) for e in b.index
    ]


def test_bad_input_for_robots_on_workers_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from protege.algos.fleet import sharded_robots
    from protege.algos.rounds import Sources
    from protege.cli import main

    argv = "dagger --method fleet --task cartpole --out x --workers 0"
    assert main(argv.split()) == 2
    assert "--workers: must be an integer in [1, 4096], got '0'" in capsys.readouterr().err
    own_envs = Sources(SHORT_POLE, SHORT_POLE.make_expert(), make_env=SHORT_POLE.make_env)
    with pytest.raises(ConfigError, match="the workers make the task's own envs"):
        sharded_robots(InProcessHolders(2))(own_envs, 4)
    with pytest.raises(ConfigError, match="at least one robot"):
        ShardedRobots(InProcessHolders(2), SHORT_POLE, 0, None)
