"""Evaluation on rollouts: even spreading over sub-envs, disagreement along the learner's states."""

from collections import Counter

import numpy as np
import pytest

import protege
from fakes import TAGGED, TAGGED_SEED
from protege.data.store import Store
from protege.experts import CallableExpert, ExpertActor
from protege.policies import Policy, PolicyConfig
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


@pytest.mark.parametrize(("episodes", "n_envs"), [(7, 3), (10, 4), (3, 4), (4, 4)])
def test_sub_env_i_runs_its_share_of_the_episodes(tmp_path, episodes, n_envs):
    """Sub-env i runs (episodes + i) // n_envs episodes: evaluation, the expert's reference
    and collection alike."""
    used = min(n_envs, episodes)  # no more sub-envs than episodes
    want = {i + 1: (episodes + i) // used for i in range(used)}
    learner = ExpertActor(TAGGED.make_expert())
    ev = evaluate(learner, TAGGED, episodes=episodes, n_envs=n_envs, seed=TAGGED_SEED)
    ref = evaluate_expert(TAGGED, episodes=episodes, n_envs=n_envs, seed=TAGGED_SEED)
    protege.collect(TAGGED, tmp_path / "s", episodes=episodes, n_envs=n_envs, seed=TAGGED_SEED)
    stored = [e.length for e in Store.open(tmp_path / "s").index]
    for lengths in (ev.lengths.tolist(), ref.lengths.tolist(), stored):
        assert dict(Counter(lengths)) == want


def test_evaluation_with_the_same_seed_gives_the_same_numbers():
    """The seed fixes the env's episodes and the policy's sampling; another seed changes both."""
    task = protege.tasks.make("cartpole")
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(16,)), seed=0)

    def numbers(seed: int, deterministic: bool) -> tuple:
        ev = evaluate(policy, task, episodes=6, n_envs=3, seed=seed, deterministic=deterministic)
        by_step = np.nan_to_num(ev.disagreement_by_step, nan=-1.0)
        return ev.returns.tolist(), ev.lengths.tolist(), by_step.tolist(), ev.disagreement

    for deterministic in (True, False):
        assert numbers(5, deterministic) == numbers(5, deterministic)
        assert numbers(5, deterministic) != numbers(6, deterministic)
    assert numbers(5, True) != numbers(5, False)  # the sampled runs did sample
