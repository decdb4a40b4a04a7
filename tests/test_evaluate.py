"""Evaluation on rollouts: even spreading over sub-envs, disagreement along the learner's states."""

import numpy as np
import pytest

import protege
from protege.experts import CallableExpert, ExpertActor
from protege.rollout import evaluate, evaluate_expert


def test_the_expert_never_disagrees_with_itself():
    task = protege.tasks.make("cartpole")
    ev = evaluate(ExpertActor(task.make_expert()), task, episodes=6, n_envs=3, seed=0)
    assert len(ev.returns) == 6
    assert ev.disagreement == 0.0
    assert np.all(ev.disagreement_by_step[ev.episodes_by_step > 0] == 0)
    assert ev.episodes_by_step[0] == 6


def test_disagreement_by_step_of_a_bad_learner():
    task = protege.tasks.make("cartpole")
    always_left = CallableExpert(lambda obs: np.zeros(len(obs), np.int64))
    ev = evaluate(ExpertActor(always_left), task, episodes=5, n_envs=5, seed=0)
    # The expert pushes right at least sometimes along the learner's falling trajectory.
    assert 0 < ev.disagreement <= 1
    assert len(ev.disagreement_by_step) == ev.lengths.max()
    assert ev.episodes_by_step[0] == 5
    assert ev.episodes_by_step[-1] >= 1
    assert ev.mean_return < 50


def test_episodes_are_spread_evenly_and_reproducible():
    task = protege.tasks.make("cartpole")
    learner = ExpertActor(CallableExpert(lambda obs: (obs[:, 2] > 0).astype(np.int64)))
    a = evaluate(learner, task, episodes=7, n_envs=3, seed=5)
    b = evaluate(learner, task, episodes=7, n_envs=3, seed=5)
    c = evaluate(learner, task, episodes=7, n_envs=3, seed=6)
    assert len(a.returns) == 7
    assert a.returns.tolist() == b.returns.tolist()
    assert a.returns.tolist() != c.returns.tolist()


def test_expert_reference_level():
    task = protege.tasks.make("cartpole")
    ev = evaluate_expert(task, episodes=4, n_envs=2, seed=0)
    assert ev.mean_return == pytest.approx(500)
    assert ev.success_rate == 1.0
    assert ev.summary()["who"] == "expert"
