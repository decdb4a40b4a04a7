"""Stacked ensembles: K members (and the success critic's twins) computed as one network must
give each member's own numbers, and stacked training must train each member as its own
``bc.fit`` (or the critic as autograd's TD loop) would."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protege.algos import bc, engine, rounds, stacked_bc, success_td, thrifty
from protege.algos.bc import BCConfig
from protege.algos.ensemble_dagger import EnsembleTrainer, bootstrap_episodes
from protege.algos.optim import FlatAdamW
from protege.data.store import Store, Transitions
from protege.policies import Policy, PolicyConfig
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.stacked import stackable
from protege.policies.success_q import SuccessQ
from protege.rollout.evaluate import evaluate
from protege.rollout.gates import ExpertGate
from protege.rollout.loop import rollout
from protege.rollout.observers import StoreEpisodes
from protege.tasks import make

OBS = gym.spaces.Box(-1, 1, (6,), np.float32)
HEADS = [("categorical", gym.spaces.Discrete(4)), ("mse", gym.spaces.Box(-1, 1, (2,), np.float32))]
HEADS += [("gaussian", gym.spaces.Box(-2, 2, (3,), np.float32))]


def members(head: str, act_space: gym.Space, k: int = 3, hidden=(64, 64)) -> list[Policy]:
    """``k`` policies with their own weights and their own normalization statistics."""
    rng = np.random.default_rng(0)
    out = []
    for s in range(k):
        p = Policy(PolicyConfig.for_spaces(OBS, act_space, head=head, hidden_sizes=hidden), seed=s)
        obs = rng.normal(1.0 + s, 2.0 + s, (200, 6))
        acts = np.stack([act_space.sample() for _ in range(200)])
        p.set_normalization(obs, acts)
        out.append(p.eval())
    return out


def one_by_one(policies: list[Policy], obs: np.ndarray) -> np.ndarray:
    """Each member on its own, through its public methods: actions, or probabilities."""
    outs = []
    for p in policies:
        if p.config.discrete:
            with torch.no_grad():
                feats = p.features(p.normalize_obs(torch.as_tensor(obs)))
                outs.append(F.softmax(p.head.logits(feats)[:, 0], dim=-1).numpy())  # type: ignore[operator]
        else:
            outs.append(p.predict_chunk(obs)[:, 0])
    return np.stack(outs).astype(np.float64)


@pytest.mark.parametrize(("head", "act_space"), HEADS)
@pytest.mark.parametrize("n", [1, 5, 300])
def test_stacked_ensemble_equals_each_member(head: str, act_space: gym.Space, n: int) -> None:
    policies = members(head, act_space)
    ens = PolicyEnsemble(policies)
    assert stackable(policies) and ens._plan() is not None
    obs = np.random.default_rng(1).normal(2.0, 4.0, (n, 6)).astype(np.float32)
    want = one_by_one(policies, obs)
    got = ens.member_outputs(obs)
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Changing a member's weights (as training does) rebuilds the plan.
    with torch.no_grad():
        policies[1].head.linear.bias.add_(0.5)  # type: ignore[operator]
    fresh = obs.copy()  # a new array: the cache is by identity
    np.testing.assert_allclose(
        ens.member_outputs(fresh), one_by_one(policies, fresh), rtol=1e-5, atol=1e-6
    )
    # So does replacing a member.
    ens.members[2] = policies[2] = members(head, act_space, k=4)[3]
    fresh = obs.copy()
    np.testing.assert_allclose(
        ens.member_outputs(fresh), one_by_one(policies, fresh), rtol=1e-5, atol=1e-6
    )


def test_members_that_do_not_stack_answer_one_by_one() -> None:
    box = gym.spaces.Box(-1, 1, (2,), np.float32)
    mixed = members("mse", box, k=2) + members("gaussian", box, k=1)
    assert not stackable(mixed)
    mog = members("mog", box, k=2)
    assert not stackable(mog)
    for policies in (mixed, mog):
        ens = PolicyEnsemble(policies)
        assert ens._plan() is None
        obs = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)
        np.testing.assert_allclose(ens.member_outputs(obs), one_by_one(policies, obs), atol=1e-6)


# ------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Transitions:
    """Four expert episodes of CartPole cut at 200 steps."""
    task = dataclasses.replace(make("cartpole"), horizon=200)
    store = Store.create(tmp_path_factory.mktemp("demos"), *task.spaces, task=task.name)
    env = task.make_vec_env(4)
    rollout(
        env,
        4,
        gate=ExpertGate(),
        seed=0,
        expert=task.make_expert(),
        observers=[StoreEpisodes(store)],
    )
    env.close()
    return store.transitions()


def bootstrap_members(data: Transitions, cfg: BCConfig, k: int = 3):
    """What EnsembleTrainer hands BC: member k's policy, bootstrap sample and settings."""
    make_policy = engine.policy_factory(make("cartpole"), hidden_sizes=(32, 32))
    policies, subsets, configs = [], [], []
    for i in range(k):
        s = rounds.derive_seed(0, i)
        subsets.append(bootstrap_episodes(data, np.random.default_rng(s)))
        torch.manual_seed(s)
        policies.append(make_policy())
        configs.append(dataclasses.replace(cfg, seed=s))
    return policies, subsets, configs


@pytest.mark.parametrize("steps", [200, None])
def test_stacked_bc_trains_each_member_as_its_own_bc_fit(demos: Transitions, steps: Any) -> None:
    # steps=None: each member's step count follows its data size (groups of equal counts).
    cfg = BCConfig(steps=steps, epochs=3, batch_size=32, lr=3e-3, val_fraction=0.2, progress=False)
    alone, subsets, configs = bootstrap_members(demos, cfg)
    for p, d, c in zip(alone, subsets, configs, strict=True):
        bc.fit(p, d, c)
    rng_alone = torch.random.get_rng_state()
    stacked, subsets, configs = bootstrap_members(demos, cfg)
    assert stacked_bc.applies(stacked, subsets, configs)
    stacked_bc.fit(stacked, subsets, configs)
    assert torch.equal(torch.random.get_rng_state(), rng_alone)
    for a, s in zip(alone, stacked, strict=True):
        for (name, x), y in zip(a.state_dict().items(), s.state_dict().values(), strict=True):
            torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-5, msg=name)
        assert not s.training


def test_stacked_bc_leaves_what_it_cannot_do_alike_to_bc_fit(demos: Transitions) -> None:
    cfg = BCConfig(steps=20, batch_size=32, progress=False)
    policies, subsets, configs = bootstrap_members(demos, cfg)
    assert stacked_bc.applies(policies, subsets, configs)
    assert not stacked_bc.applies(policies[:1], subsets[:1], configs[:1])
    for change in (dict(patience=3), dict(restore_best=True), dict(lr=1e-4)):
        other = [configs[0], *(dataclasses.replace(c, **change) for c in configs[1:])]
        assert not stacked_bc.applies(policies, subsets, other)


def test_ensemble_trainer_stacks_and_members_differ_and_succeed(
    demos: Transitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fit(*a: Any, **k: Any) -> None:
        raise AssertionError("members that stack are not trained one by one")

    monkeypatch.setattr(bc, "fit", no_fit)
    task = dataclasses.replace(make("cartpole"), horizon=200)
    make_policy = engine.policy_factory(task, hidden_sizes=(32, 32))
    trainer = EnsembleTrainer(make_policy, BCConfig(steps=400, batch_size=64, progress=False), 3)
    ens = trainer.fit(demos, 0, 0, None)
    weights = [torch.cat([p.flatten() for p in m.parameters()]) for m in ens.members]
    for i in range(3):
        for j in range(i):
            assert (weights[i] - weights[j]).abs().max() > 0.05  # own seeds, own bootstraps
    assert not np.array_equal(ens.members[0].obs_mean.numpy(), ens.members[1].obs_mean.numpy())
    for m in [*ens.members, ens]:
        ev = evaluate(m, task, episodes=4, n_envs=4, seed=7, measure_disagreement=False)
        assert ev.mean_return > 150  # the expert balances all 200 steps


# ------------------------------------------------------------------- success critic
def reference_td(critic: SuccessQ, batch: dict[str, torch.Tensor], cfg: Any) -> None:
    """fit_success_q's TD loop as it was, through autograd (no positives)."""
    gen = torch.Generator().manual_seed(0)
    target = SuccessQ(critic.obs_dim, critic.act_dim, critic.n_actions, critic.hidden)
    target.load_state_dict(critic.state_dict())
    target.requires_grad_(False)
    opt = FlatAdamW(list(critic.q1.parameters()) + list(critic.q2.parameters()), lr=cfg.q_lr)
    for step in range(cfg.q_steps):
        rows = torch.randint(len(batch["obs"]), (cfg.q_batch,), generator=gen)
        with torch.no_grad():
            t1, t2 = target.both(batch["next_obs"][rows], batch["next_act"][rows])
            y = batch["reward"][rows] + cfg.gamma * (1.0 - batch["done"][rows]) * torch.min(t1, t2)
        q1, q2 = critic.both(batch["obs"][rows], batch["act"][rows])
        loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 2 == 1:
            with torch.no_grad():
                for p, tp in zip(critic.parameters(), target.parameters(), strict=True):
                    tp.mul_(cfg.polyak).add_(p.detach(), alpha=1.0 - cfg.polyak)
    opt.release()


@pytest.mark.parametrize("n_actions", [3, 0])
def test_stacked_td_equals_autograd_and_success_equals_both(n_actions: int) -> None:
    rng = np.random.default_rng(0)
    n, act_dim = 400, 1 if n_actions else 2
    acts = rng.integers(0, n_actions, n) if n_actions else rng.normal(size=(n, act_dim))
    next_acts = rng.integers(0, n_actions, n) if n_actions else rng.normal(size=(n, act_dim))
    batch = {
        "obs": torch.as_tensor(rng.normal(2.0, 3.0, (n, 5)).astype(np.float32)),
        "act": torch.as_tensor(acts),
        "reward": torch.as_tensor((rng.random(n) < 0.2).astype(np.float32)),
        "next_obs": torch.as_tensor(rng.normal(2.0, 3.0, (n, 5)).astype(np.float32)),
        "next_act": torch.as_tensor(next_acts),
        "done": torch.as_tensor((rng.random(n) < 0.1).astype(np.float32)),
    }
    cfg = thrifty.ThriftyConfig(q_steps=60, q_batch=64, polyak=0.9)
    critics = []
    for _ in range(2):
        torch.manual_seed(3)
        c = SuccessQ(5, act_dim, n_actions, hidden=(32, 32))
        c.set_normalization(batch["obs"].numpy())
        critics.append(c)
    reference_td(critics[0], batch, cfg)
    no_positives = torch.zeros(0, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    loss = success_td.td_fit(critics[1], batch, no_positives, 0, cfg, gen)
    assert np.isfinite(loss)
    for (name, want), got in zip(
        critics[0].state_dict().items(), critics[1].state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=name)
    # success: both twins in one pass, the min of what each twin says
    critic = critics[1].eval()
    obs, a = batch["obs"][:50].numpy(), batch["act"][:50].numpy()
    with torch.no_grad():
        q1, q2 = critic.both(torch.as_tensor(obs), torch.as_tensor(a))
    np.testing.assert_allclose(
        critic.success(obs, a), torch.minimum(q1, q2).numpy(), rtol=1e-6, atol=1e-7
    )


def test_ensemble_trainer_trains_members_that_do_not_stack_one_by_one(
    demos: Transitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_stacking(*a: Any, **k: Any) -> None:
        raise AssertionError("these members do not stack")

    monkeypatch.setattr(stacked_bc, "fit", no_stacking)
    obs_space, _ = make("cartpole").spaces
    box = gym.spaces.Box(-1, 1, (1,), np.float32)  # a continuous stand-in for CartPole's action
    data = dataclasses.replace(demos, actions=demos.actions.astype(np.float32)[:, None] * 2 - 1)

    def make_policy() -> Policy:
        return Policy(PolicyConfig.for_spaces(obs_space, box, head="mog", hidden_sizes=(16,)))

    trainer = EnsembleTrainer(make_policy, BCConfig(steps=5, batch_size=16, progress=False), 2)
    ens = trainer.fit(data, 0, 0, None)
    assert len(ens) == 2 and ens._plan() is None
    assert ens.act(data.obs[:3]).shape == (3, 1)
