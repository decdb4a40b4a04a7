"""The rollout loop's observers: what they are told, when, and about which sub-env."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from fakes import TAGGED, TAGGED_SEED
from protege.data.episode import Episode
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.adapters import CallableExpert, ExpertActor
from protege.rollout.gates import Decision, Gate, LearnerGate, StepView
from protege.rollout.loop import rollout
from protege.rollout.observers import (
    EpisodeEnd,
    KeepEpisodes,
    Observer,
    RecordEpisodes,
    RolloutResult,
    Step,
    StoreEpisodes,
    Success,
)
from protege.tasks.base import EpisodeOutcome


class Log(Observer):
    """Writes every call into a shared log."""

    def __init__(self, calls: list[tuple]):
        self.calls = calls

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self.calls.append(("rollout", env.num_envs, n_episodes, seed))

    def on_episode_start(self, env_index: int) -> None:
        self.calls.append(("begin", env_index))

    def on_step(self, step: Step) -> None:
        self.calls.append(("step", np.flatnonzero(step.active).tolist(), step.t.tolist()))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.calls.append(("end", env_index, end.outcome.length, end.final_obs.tolist()))

    def on_rollout_end(self, result: RolloutResult) -> None:
        self.calls.append(("done", result.n_episodes))


class LogGate(Gate):
    def __init__(self, calls: list[tuple]):
        self.calls = calls

    def begin_episode(self, env_index: int) -> None:
        self.calls.append(("gate", env_index))

    def decide(self, step: StepView) -> Decision:
        n = len(step.obs)
        return Decision(expert_acts=np.ones(n, bool), label=np.ones(n, bool))


def run(observers: list[Observer], gate: Gate, episodes: int = 7, n_envs: int = 3, **kw: Any):
    env = TAGGED.make_vec_env(n_envs)
    try:
        return rollout(env, episodes, gate=gate, seed=TAGGED_SEED, observers=observers, **kw)
    finally:
        env.close()


def test_observers_hear_each_counted_episode_from_start_to_end_with_its_sub_env() -> None:
    calls: list[tuple] = []
    result = run([Log(calls)], LogGate(calls), expert=TAGGED.make_expert())
    assert calls[0] == ("rollout", 3, 7, TAGGED_SEED) and calls[-1] == ("done", 7)
    assert result.lengths == [c[2] for c in calls if c[0] == "end"]  # order of completion
    # Sub-env i runs (7 + i) // 3 episodes of i + 1 steps, told begin ... end each time.
    ends = Counter(c[1] for c in calls if c[0] == "end")
    assert ends == {0: 2, 1: 2, 2: 3}
    open_: dict[int, int] = {}  # sub-env -> steps told so far in its open episode
    for k, c in enumerate(calls):
        if c[0] == "begin":
            assert c[1] not in open_
            open_[c[1]] = 0
        elif c[0] == "step":
            assert sorted(open_) == c[1]  # exactly the sub-envs with an open episode
            for i in c[1]:
                assert c[2][i] == open_[i]  # the step's index within the episode
                open_[i] += 1
        elif c[0] == "end":
            i = c[1]
            assert open_.pop(i) == c[2] == i + 1
            assert c[3] == [i, i + 1]  # its own final observation
            assert calls[k + 1] == ("gate", i)  # told before the gate begins the next one
    assert not open_
    # The gate begins each episode once: between two begin_episode(i) calls a step was taken.
    last: dict[int, str] = {}
    for c in calls:
        if c[0] == "gate":
            assert last.get(c[1]) != "gate"
            last[c[1]] = "gate"
        elif c[0] == "step":
            last = dict.fromkeys(last, "step")


def test_an_observer_asking_for_the_expert_gets_it_counted() -> None:
    class Asks(Observer):
        def __init__(self) -> None:
            self.asked_rows = 0

        def ask_expert(self, step: StepView, decision: Decision) -> np.ndarray:
            return np.ones(len(step.obs), bool)

        def on_step(self, step: Step) -> None:
            assert (step.asked == step.active).all()
            assert (step.expert_action[step.active] == 1).all()  # the expert's actions
            self.asked_rows += int(step.asked.sum())

    learner = ExpertActor(CallableExpert(lambda obs: np.zeros(len(obs), np.int64)))
    asks = Asks()
    r = run([asks], LearnerGate(), learner=learner, expert=TAGGED.make_expert())
    assert r.expert_queries == asks.asked_rows == sum(r.lengths) == r.learner_steps
    quiet = run([], LearnerGate(), learner=learner, expert=TAGGED.make_expert())
    assert quiet.expert_queries == 0 and quiet.returns == r.returns


def test_recorded_episodes_go_to_the_store_the_list_and_a_sink_alike(tmp_path) -> None:
    store = Store.create(tmp_path / "s", *TAGGED.spaces, task="tagged")
    sunk: list[tuple[int, Episode]] = []
    kept = KeepEpisodes(round=2)
    r = run(
        [StoreEpisodes(store, round=2), kept, RecordEpisodes(lambda i, e: sunk.append((i, e)))],
        LearnerGate(),
        learner=ExpertActor(TAGGED.make_expert()),
    )
    stored = list(Store.open(tmp_path / "s").episodes())
    assert len(r.episodes) == len(stored) == len(sunk) == len(kept.episodes) == 7
    for ep, back, (i, other) in zip(r.episodes, stored, sunk, strict=True):
        assert len(ep) == i + 1 and ep.round == back.round == 2 and other.round == 0
        assert ep.seed == back.seed == other.seed == TAGGED_SEED
        np.testing.assert_array_equal(ep.obs, back.obs)
        np.testing.assert_array_equal(ep.obs, other.obs)
        np.testing.assert_array_equal(ep.obs[:, 0], i)  # every observation from sub-env i
        np.testing.assert_array_equal(ep.obs[:, 1], np.arange(i + 2))
        np.testing.assert_array_equal(ep.actions, 1)  # the learner's (executed) actions
    assert r.successes == []  # no Success observer, no verdicts


def test_success_judges_each_episode_by_its_outcome() -> None:
    seen: list[EpisodeOutcome] = []

    def long_enough(outcome: EpisodeOutcome) -> bool:
        seen.append(outcome)
        return outcome.length >= 2

    r = run([Success(long_enough)], LearnerGate(), learner=ExpertActor(TAGGED.make_expert()))
    assert r.successes == [n >= 2 for n in r.lengths] and len(seen) == 7
    assert [o.final_info["tag"] for o in seen] == [n - 1 for n in r.lengths]


def test_recording_needs_the_final_observation() -> None:
    record = RecordEpisodes()
    record.on_episode_start(0)
    with pytest.raises(ConfigError, match="final_obs"):
        record.on_episode_end(0, EpisodeEnd(EpisodeOutcome(0.0, 0, True, False), 0, None))


def test_a_rounds_recorder_judges_stored_success_with_the_final_info(tmp_path) -> None:
    """The success a round stores with each episode is the task's test on the episode's real
    final info (Meta-World and the lane task judge success there), not on an empty one."""
    import dataclasses

    from protege.algos import rounds
    from protege.rollout.gates import ExpertGate

    def tagged_odd(outcome: EpisodeOutcome) -> bool:
        return outcome.final_info.get("tag", -1) % 2 == 1

    task = dataclasses.replace(TAGGED, success=tagged_odd)
    store = Store.create(tmp_path / "s", *task.spaces, task="tagged")
    sources = rounds.Sources(task, task.make_expert(), make_env=task.make_env)
    rounds.collect(sources, store, ExpertGate(), None, round=0, indices=range(4), seed=5)
    tags = [e.seed - TAGGED_SEED for e in store.index]
    stored = [bool(e.extras["success"]) for e in store.index]
    assert stored == [t % 2 == 1 for t in tags]
    assert any(stored) and not all(stored)
