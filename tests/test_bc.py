"""Behavioral cloning, judged on rollouts."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import protege
from protege.algos import bc
from protege.data.episode import LEARNER, Episode
from protege.data.store import Store
from protege.errors import DataError
from protege.policies import Policy, PolicyConfig
from protege.rollout.collect import collect

# Every test here runs with the CPU fast paths on and off (conftest.py): the assertions
# hold for both.
pytestmark = pytest.mark.usefixtures("both_paths")


@pytest.fixture(scope="module")
def cartpole_demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "cartpole"
    collect(protege.tasks.make("cartpole"), path, episodes=10, n_envs=4, seed=0)
    return path


def small_policy(task, **kw):
    torch.manual_seed(0)
    return Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(64, 64), **kw))


def test_bc_learns_cartpole_on_rollouts(cartpole_demos):
    task = protege.tasks.make("cartpole")
    policy = small_policy(task)
    result = bc.fit(policy, Store.open(cartpole_demos), bc.BCConfig(steps=2000, progress=False))
    assert result.n_train > 0 and result.n_val > 0 and result.history
    ev = protege.evaluate(policy, task, episodes=8, n_envs=4, seed=123)
    assert ev.mean_return >= 475, ev.summary()
    assert ev.success_rate >= 0.85


def test_an_untrained_policy_fails_the_same_rollouts():
    """The counterpart of the test above: the rollout check can fail."""
    task = protege.tasks.make("cartpole")
    ev = protege.evaluate(small_policy(task), task, episodes=8, n_envs=4, seed=123)
    assert ev.mean_return < 200


def test_same_seed_same_numbers(cartpole_demos):
    task = protege.tasks.make("cartpole")
    runs = []
    for _ in range(2):
        policy = small_policy(task)
        res = bc.fit(policy, Store.open(cartpole_demos), bc.BCConfig(steps=200, progress=False))
        ev = protege.evaluate(policy, task, episodes=4, n_envs=2, seed=7)
        runs.append(([h["train_loss"] for h in res.history], ev.returns.tolist()))
    assert runs[0] == runs[1]


def test_early_stopping_restores_the_best_weights():
    """Random labels: the validation loss only rises once the net memorizes; BC must stop."""
    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    eps = [
        Episode(
            obs=rng.normal(size=(21, 4)).astype(np.float32),
            actions=rng.integers(0, 2, 20),
            rewards=np.zeros(20, np.float32),
        )
        for _ in range(20)
    ]
    store_data = _transitions(eps, obs_space, gym.spaces.Discrete(2))
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.for_spaces(obs_space, gym.spaces.Discrete(2), hidden_sizes=(128,)))
    cfg = bc.BCConfig(
        steps=3000, eval_every=50, patience=3, val_fraction=0.25, restore_best=True, progress=False
    )
    result = bc.fit(policy, store_data, cfg)
    assert result.stopped_early and result.steps < 3000
    assert result.best_step < result.steps
    val_losses = [h["val_loss"] for h in result.history]
    assert min(val_losses) == pytest.approx(result.best_val_loss)
    data = store_data.select_episodes(np.ones(20, bool))
    assert policy.training is False
    # the restored weights are the best ones: re-validating gives the best loss, not the last
    from protege.algos.bc import _Samples, _validate, split_episodes

    _, val_eps = split_episodes(20, 0.25, np.random.default_rng(0))
    again = _validate(policy, _Samples(policy, data, val_eps))
    assert again == pytest.approx(result.best_val_loss, rel=1e-5)
    assert again < val_losses[-1]


def test_unlabeled_steps_are_not_trained_on():
    """HG-DAgger stores learner steps without labels; BC must ignore their action field."""
    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    eps = []
    for _ in range(30):
        obs = rng.normal(size=(41, 2)).astype(np.float32)
        truth = (obs[:-1, 0] > 0).astype(np.int64)
        labeled = rng.random(40) < 0.5
        wrong = 1 - truth  # what an unlabeled step holds: the learner's (wrong) action
        eps.append(
            Episode(
                obs=obs,
                actions=np.where(labeled, truth, wrong),
                rewards=np.zeros(40, np.float32),
                actor=np.full(40, LEARNER, np.uint8),
                labeled=labeled,
            )
        )
    data = _transitions(eps, obs_space, gym.spaces.Discrete(2))
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.for_spaces(obs_space, gym.spaces.Discrete(2), hidden_sizes=(32,)))
    bc.fit(policy, data, bc.BCConfig(steps=600, progress=False))
    test_obs = rng.normal(size=(500, 2)).astype(np.float32)
    acc = np.mean(policy.act(test_obs) == (test_obs[:, 0] > 0))
    assert acc > 0.95


def test_no_labels_is_an_error():
    obs_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    ep = Episode(
        obs=np.zeros((4, 2), np.float32),
        actions=np.zeros(3, np.int64),
        rewards=np.zeros(3, np.float32),
        labeled=np.zeros(3, bool),
    )
    data = _transitions([ep], obs_space, gym.spaces.Discrete(2))
    policy = Policy(PolicyConfig.for_spaces(obs_space, gym.spaces.Discrete(2), hidden_sizes=(8,)))
    with pytest.raises(DataError, match="no labeled steps"):
        bc.fit(policy, data, bc.BCConfig(steps=10, progress=False))


def test_tensorboard_scalars(tmp_path, cartpole_demos):
    """The event file holds the train and validation losses of every evaluation, as in the
    result's history (read back with TensorBoard's own reader)."""
    pytest.importorskip("tensorboard", reason="tensorboard is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    task = protege.tasks.make("cartpole")
    cfg = bc.BCConfig(steps=30, eval_every=10, progress=False, tensorboard_dir=str(tmp_path / "tb"))
    result = bc.fit(small_policy(task), Store.open(cartpole_demos), cfg)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["bc/train_loss", "bc/val_loss"]
    for key in ("train_loss", "val_loss"):
        logged = [(e.step, e.value) for e in events.Scalars(f"bc/{key}")]
        want = [(h["step"], pytest.approx(h[key], rel=1e-6)) for h in result.history]
        assert logged == want, key
    assert [h["step"] for h in result.history] == [10, 20, 30]


def _transitions(eps, obs_space, act_space):
    import tempfile

    path = tempfile.mkdtemp()
    with Store.create(f"{path}/s", obs_space, act_space) as store:
        store.extend(eps)
    return Store.open(f"{path}/s").transitions()


def test_a_continuous_policy_acts_after_fit_with_autograd_on(tmp_path) -> None:
    """The fast acting path after BC on Box actions, outside ``torch.no_grad`` (as DAgger's
    rounds and evaluation call it): numpy actions, not "Can't call numpy() on Tensor that
    requires grad"."""
    task = protege.tasks.make("pendulum")
    collect(task, tmp_path / "s", episodes=1, seed=0)
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(16, 16)), 0)
    bc.fit(policy, Store.open(tmp_path / "s"), bc.BCConfig(steps=30))
    assert torch.is_grad_enabled()
    acts = policy.act(np.zeros((2, 3), np.float32))
    assert acts.shape == (2, 1) and acts.dtype == np.float32
