"""RL fine-tuning from a trained policy (issue 15): PPO through protege's rollout loop, the KL
anchor, the BC term, checkpoints, resume after kill -9, seeding and the errors."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import protege
from fakes import kill_when_stalled
from protege.algos.critic_prefit import batch_returns, demo_returns, prefit_critic
from protege.algos.finetune import BCTerm, KLAnchor, finetune, soften
from protege.algos.ppo import PPO
from protege.algos.rl_rollout import RolloutBatch, gae
from protege.algos.self_imitation import SelfImitation
from protege.configs.bc import BCConfig
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.configs.policy import PolicyConfig
from protege.configs.rl import FinetuneConfig, PPOConfig
from protege.data.episode import LEARNER
from protege.data.store import Store
from protege.errors import ConfigError, DataError
from protege.policies.policy import Policy

CARTPOLE = protege.tasks.make("cartpole")
TINY = PPOConfig(rollout_steps=200, n_envs=2, minibatch_size=64, epochs=2, seed=3)
"""A few hundred steps per update: enough to exercise every path in a second."""


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ft") / "demos"
    protege.collect(CARTPOLE, path, episodes=4, n_envs=4, seed=0)
    return path


def bc_policy(demos: Path, steps: int, seed: int = 0, head: str = "categorical") -> Policy:
    policy = Policy(
        PolicyConfig.for_spaces(*CARTPOLE.spaces, hidden_sizes=(32, 32), head=head), seed=seed
    )
    data = Store.open(demos).transitions()
    protege.bc.fit(policy, data, BCConfig(steps=steps, batch_size=64, seed=seed, progress=False))
    return policy


@pytest.fixture(scope="module")
def trained(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BC policy that balances the pole (saved; each test loads its own copy)."""
    return bc_policy(demos, 400).save(tmp_path_factory.mktemp("ft") / "bc")


@pytest.fixture(scope="module")
def weak(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A barely trained policy: short episodes, so a few hundred steps are many updates."""
    return bc_policy(demos, 20).save(tmp_path_factory.mktemp("ft") / "weak")


def numbers(result) -> list:
    """Every evaluation and update figure but the wall-clock times."""
    rows = result.evals + result.history
    return [sorted((k, v) for k, v in r.items() if k != "wall_seconds") for r in rows]


def test_fine_tuning_with_kl_keeps_a_trained_cartpole_policy_at_its_return(
    trained: Path, tmp_path: Path
) -> None:
    cfg = FinetuneConfig(steps=3000, kl=1.0, value_warmup=1, eval_every=1, eval_episodes=2)
    ppo = PPOConfig(rollout_steps=1000, n_envs=2, seed=0)
    result = finetune(Policy.load(trained), CARTPOLE, tmp_path, cfg, ppo, tensorboard=False)
    start = result.evals[0]["mean_return"]
    assert start >= 450  # a trained policy: the test is about keeping it there
    assert result.updates >= 3  # a warm-up update, then the policy moved
    assert any("kl" in h for h in result.history)
    assert min(e["mean_return"] for e in result.evals) >= 0.9 * start
    again = protege.evaluate(Policy.load(tmp_path), CARTPOLE, episodes=2, n_envs=2, seed=10_000)
    assert again.mean_return == result.evals[-1]["mean_return"]  # what `protege eval` reads


def test_rl_episodes_are_stored_as_rl_and_runs_are_seeded(weak: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(steps=500, value_warmup=1, eval_every=10**6, eval_episodes=2)
    a = finetune(Policy.load(weak), CARTPOLE, tmp_path / "a", cfg, TINY, tensorboard=False)
    b = finetune(Policy.load(weak), CARTPOLE, tmp_path / "b", cfg, TINY, tensorboard=False)
    assert numbers(a) == numbers(b)
    other = dataclasses.replace(TINY, seed=4)
    c = finetune(Policy.load(weak), CARTPOLE, tmp_path / "c", cfg, other, tensorboard=False)
    assert numbers(c) != numbers(a)
    store = Store.open(tmp_path / "a" / "store")
    assert len(store) == sum(h["episodes"] for h in a.history)
    assert {(int(r.extras["rl_update"])) for r in store.index} == set(range(a.updates))
    episodes = list(store.episodes())
    assert all((e.actors == LEARNER).all() and not e.label_mask.any() for e in episodes)
    assert sum(len(e) for e in episodes) == a.env_steps
    saved = json.loads((tmp_path / "a" / "finetune.json").read_text())
    assert saved["result"]["env_steps"] == a.env_steps


def test_checkpoint_round_trip_continues_as_if_never_stopped(weak: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(steps=600, value_warmup=1, eval_every=10**6, eval_episodes=2)
    whole = finetune(Policy.load(weak), CARTPOLE, tmp_path / "whole", cfg, TINY, tensorboard=False)
    short = dataclasses.replace(cfg, steps=200)
    finetune(Policy.load(weak), CARTPOLE, tmp_path / "part", short, TINY, tensorboard=False)
    with pytest.raises(ConfigError, match="holds a fine-tuning run"):
        finetune(Policy.load(weak), CARTPOLE, tmp_path / "part", cfg, TINY, tensorboard=False)
    with pytest.raises(ConfigError, match=r"other settings \(finetune.kl\)"):
        finetune(
            Policy.load(weak),
            CARTPOLE,
            tmp_path / "part",
            dataclasses.replace(cfg, kl=0.5),
            TINY,
            resume=True,
            tensorboard=False,
        )
    rest = finetune(
        Policy.load(weak), CARTPOLE, tmp_path / "part", cfg, TINY, resume=True, tensorboard=False
    )
    assert rest.resumed_from is not None and 0 < rest.resumed_from < whole.updates
    # the evaluations differ only where the short run evaluated at its own end
    assert [sorted(h.items()) for h in rest.history] == [sorted(h.items()) for h in whole.history]
    assert rest.evals[-1] == {**whole.evals[-1], "wall_seconds": rest.evals[-1]["wall_seconds"]}
    a = Policy.load(tmp_path / "whole").state_dict()
    b = Policy.load(tmp_path / "part").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(Store.open(tmp_path / "part" / "store")) == len(
        Store.open(tmp_path / "whole" / "store")
    )


CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    import protege
    from protege.algos.finetune import finetune
    from protege.algos.ppo import RewardSource
    from protege.configs.rl import FinetuneConfig, PPOConfig
    from protege.policies.policy import Policy

    policy, out, marker, cfg, ppo = sys.argv[1:6]

    class Stall(RewardSource):
        # Mid-update 2 (its episodes partly stored, updates 0-1 checkpointed): wait for kill -9.
        def update(self, batch, update):
            if update == 2:
                open(marker, "w").close()
                time.sleep(600)
            return {}

    finetune(Policy.load(policy), protege.tasks.make("cartpole"), out,
             FinetuneConfig(**json.loads(cfg)), PPOConfig(**json.loads(ppo)),
             reward=Stall(), tensorboard=False)
    """
)


def test_kill_9_mid_update_then_resume_reaches_the_same_numbers(weak: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(steps=900, value_warmup=1, eval_every=400, eval_episodes=2)
    ppo = dataclasses.replace(TINY, critic_hidden_sizes=(16,))
    killed, marker = tmp_path / "killed", tmp_path / "stalled"
    as_json = {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(ppo).items()
    }
    args = [str(weak), str(killed), str(marker), json.dumps(dataclasses.asdict(cfg))]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args, json.dumps(as_json)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    try:  # the uninterrupted reference run, meanwhile, in this process
        ref = finetune(Policy.load(weak), CARTPOLE, tmp_path / "ref", cfg, ppo, tensorboard=False)
    finally:
        kill_when_stalled(proc, marker)
    state = json.loads((killed / "checkpoint" / "state.json").read_text())
    assert state["numbers"]["updates"] == 2
    res = finetune(Policy.load(weak), CARTPOLE, killed, cfg, ppo, resume=True, tensorboard=False)
    assert res.resumed_from == 2
    assert numbers(res) == numbers(ref)
    ref_store, store = Store.open(tmp_path / "ref" / "store"), Store.open(killed / "store")
    assert [r.extras for r in store.index] == [r.extras for r in ref_store.index]


def test_sampled_evaluation_leaves_training_alone_and_stop_return_ends_the_run(
    tmp_path: Path,
) -> None:
    # an untrained policy: episodes of ~10-30 steps, so every evaluation is quick
    fresh = Policy(PolicyConfig.for_spaces(*CARTPOLE.spaces, hidden_sizes=(32, 32)), seed=0)
    start = fresh.save(tmp_path / "fresh")
    quiet = {"tensorboard": False, "store_episodes": False}
    cfg = FinetuneConfig(steps=200, value_warmup=0, eval_every=10**6, eval_episodes=2)
    plain = finetune(Policy.load(start), CARTPOLE, tmp_path / "a", cfg, TINY, **quiet)
    both = dataclasses.replace(cfg, eval_sampled=True)
    s = finetune(Policy.load(start), CARTPOLE, tmp_path / "b", both, TINY, **quiet)
    assert numbers(s)[len(s.evals) :] == numbers(plain)[len(plain.evals) :]  # same updates
    assert [e["mean_return"] for e in s.evals] == [e["mean_return"] for e in plain.evals]
    again = protege.evaluate(
        Policy.load(tmp_path / "b"), CARTPOLE, 2, TINY.n_envs, TINY.seed + EVAL_SEED_OFFSET,
        deterministic=False, measure_disagreement=False,
    )  # fmt: skip
    assert s.evals[-1]["sampled_return"] == again.mean_return
    assert "sampled_return" not in plain.evals[0] and plain.updates >= 1
    # every CartPole episode lasts >= 8 steps, sampled or not: the first evaluation ends it
    stop = dataclasses.replace(both, stop_return=8.0)
    ended = finetune(Policy.load(start), CARTPOLE, tmp_path / "c", stop, TINY, **quiet)
    assert ended.updates == 0 and len(ended.evals) == 1
    with pytest.raises(ConfigError, match="stop_return"):
        FinetuneConfig(stop_return=math.nan)


def test_critic_prefit_learns_the_demonstrations_returns_before_the_first_update(
    weak: Path, demos: Path, tmp_path: Path
) -> None:
    # the expert balances the pole for ever: every state is worth 1 / (1 − γ) = 100, also
    # near the time limit that ended its episodes (where the plain return-to-go drops to 1)
    data = Store.open(demos).transitions()
    assert data.terminated is not None and not data.terminated.any()
    prefit = demo_returns(data, TINY.gamma, 300)
    assert prefit.returns.min() < 2

    def error(learner: PPO) -> float:
        with torch.no_grad():
            v = learner._value(torch.from_numpy(prefit.obs)).numpy()
        return float(np.sqrt(np.mean((v - 1 / (1 - TINY.gamma)) ** 2)))

    learner = PPO(Policy.load(weak), CARTPOLE, TINY)
    fit = prefit_critic(learner, prefit)
    assert error(learner) < 5 and fit["prefit_rmse_after"] < 0.1 * fit["prefit_rmse_before"]
    quiet = {"tensorboard": False, "store_episodes": False}
    cfg = FinetuneConfig(steps=200, value_warmup=0, eval_every=10**6, eval_episodes=2)
    plain = finetune(Policy.load(weak), CARTPOLE, tmp_path / "a", cfg, TINY, **quiet)
    pre = dataclasses.replace(cfg, critic_prefit=300)
    ft = finetune(Policy.load(weak), CARTPOLE, tmp_path / "b", pre, TINY, demos=data, **quiet)
    first = ft.history[0]
    assert first["prefit_rmse_after"] < 0.1 * first["prefit_rmse_before"]
    assert "prefit_rmse_before" not in plain.history[0]
    assert first["value_loss"] != plain.history[0]["value_loss"]  # the first update saw it
    with pytest.raises(ConfigError, match="critic_prefit"):
        FinetuneConfig(critic_prefit=-1)
    with pytest.raises(ConfigError, match="critic_prefit > 0 needs demonstrations"):
        finetune(Policy.load(weak), CARTPOLE, tmp_path / "c", pre, TINY, **quiet)
    no_rewards = dataclasses.replace(data, rewards=np.zeros_like(data.rewards))
    with pytest.raises(DataError, match="every reward of the demonstrations is 0"):
        finetune(Policy.load(weak), CARTPOLE, tmp_path / "d", pre, TINY, demos=no_rewards, **quiet)


# ----------------------------------------------------------------------------- the terms
def test_kl_anchor_is_zero_at_the_anchor_and_grows_away_from_it(demos: Path) -> None:
    for head in ("categorical", "gaussian", "mog"):
        if head != "categorical":  # continuous heads: closed form (gaussian), sampled (mog)
            pend = protege.tasks.make("pendulum")
            cfg = PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head=head)
            policy = Policy(cfg, seed=0)
            obs = torch.randn(4096, 3)
        else:
            policy = bc_policy(demos, 50, head=head)
            obs = torch.randn(4096, 4)
        anchor = KLAnchor(Policy.load(policy.save(demos.parent / f"anchor-{head}")), 1.0)
        feats = policy.features(policy.normalize_obs(obs))
        g = torch.Generator().manual_seed(0)
        raw = policy.head.sample(feats, g)
        logp = policy.head.log_prob(feats, raw)[:, 0]
        mb = {"obs": obs, "obs_n": policy.normalize_obs(obs), "feats": feats, "raw": raw}
        at = anchor.loss(policy, {**mb, "logp": logp, "logp_old": logp.detach()}, 0)
        assert abs(at.item()) < 1e-6
        with torch.no_grad():
            for p in policy.head.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        feats = policy.features(policy.normalize_obs(obs))
        logp = policy.head.log_prob(feats, raw)[:, 0]
        away = anchor.loss(policy, {**mb, "feats": feats, "logp": logp, "logp_old": logp}, 0)
        assert away.item() > 1e-3


def test_kl_anchor_is_exact_for_gaussians_and_finite_when_the_policy_leaves_a_narrow_one(
    demos: Path,
) -> None:
    """The Gaussian anchor's KL is the closed form: it matches a Monte Carlo estimate where
    both are well behaved, and stays finite (with finite gradients) where the anchor is
    narrow and π has moved off it, where a sampled estimate overflows to inf."""
    pend = protege.tasks.make("pendulum")
    cfg = PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head="gaussian")
    policy = Policy(cfg, seed=0)
    anchor = KLAnchor(Policy.load(policy.save(demos.parent / "anchor-gauss")), 1.0)
    obs = torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.head.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))

    def kl_of(pol: Policy) -> torch.Tensor:
        feats = pol.features(pol.normalize_obs(obs))
        raw = pol.head.sample(feats, g)
        logp = pol.head.log_prob(feats, raw)[:, 0]
        mb = {"obs": obs, "feats": feats, "raw": raw, "logp": logp, "logp_old": logp.detach()}
        return anchor.loss(pol, mb, 0)

    exact = kl_of(policy)
    with torch.no_grad():  # E_π[log π − log π_anchor] over many samples per state
        feats = policy.features(policy.normalize_obs(obs))
        afeats = anchor.anchor.features(anchor.anchor.normalize_obs(obs))
        draws = [policy.head.sample(feats, g) for _ in range(400)]
        mc = torch.stack(
            [
                policy.head.log_prob(feats, a)[:, 0] - anchor.anchor.head.log_prob(afeats, a)[:, 0]
                for a in draws
            ]
        ).mean()
    assert exact.item() > 1e-3
    assert exact.item() == pytest.approx(mc.item(), rel=0.05)
    # Both as narrow as the head allows (a BC policy on a few demonstrations), the actions
    # sampled by the anchor (the policy before the update), then π's mean moved by 1: the
    # sampled estimate's r = π_anchor/π is e^(~6·10⁵) there and its weight π/π_old 0 (NaN)
    with torch.no_grad():
        for pol in (policy, anchor.anchor):
            pol.head.linear.bias[1] = -50.0  # the log-std output (clamped to −7)
            pol.head.linear.weight[1] = 0.0
    afeats = anchor.anchor.features(anchor.anchor.normalize_obs(obs))
    raw = anchor.anchor.head.sample(afeats, g).detach()
    logp_old = anchor.anchor.head.log_prob(afeats, raw)[:, 0].detach()
    with torch.no_grad():
        policy.head.linear.bias[0] += 1.0
    feats = policy.features(policy.normalize_obs(obs))
    logp = policy.head.log_prob(feats, raw)[:, 0]
    mb = {"obs": obs, "feats": feats, "raw": raw, "logp": logp, "logp_old": logp_old}
    narrow = anchor.loss(policy, mb, 0)
    narrow.backward()
    assert torch.isfinite(narrow) and narrow.item() > 1e4
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters() if p.grad is not None)

    # A mixture has no closed form: the sampled estimate caps log r, so an action π now finds
    # e^-100000 as likely as the anchor does gives a finite loss and gradient, not NaN
    mog_cfg = PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head="mog")
    mog = Policy(mog_cfg, seed=0)
    mog_anchor = KLAnchor(Policy.load(mog.save(demos.parent / "anchor-mog-far")), 1.0)
    feats = mog.features(mog.normalize_obs(obs))
    raw = mog.head.sample(feats, g).detach()
    logp_old = mog.head.log_prob(feats, raw)[:, 0].detach()
    far = (logp_old - 1e5).requires_grad_(True)
    mb = {"obs": obs, "feats": feats, "raw": raw, "logp": far, "logp_old": logp_old}
    loss = mog_anchor.loss(mog, mb, 0)
    loss.backward()
    assert torch.isfinite(loss) and far.grad is not None and torch.isfinite(far.grad).all()


def test_kl_anchor_is_still_zero_after_the_learner_renormalizes_the_policy(demos: Path) -> None:
    """The learner re-expresses the policy's observation normalization at its first update;
    the frozen anchor keeps its own, so it must normalize the raw observations itself."""
    from protege.algos.ppo import renormalize_obs

    policy = bc_policy(demos, 50)
    anchor = KLAnchor(Policy.load(policy.save(demos.parent / "anchor-renorm")), 1.0)
    obs = torch.from_numpy(np.random.default_rng(1).normal(0, 0.5, (512, 4)).astype(np.float32))
    assert renormalize_obs(policy, obs.numpy())
    obs_n = policy.normalize_obs(obs)
    feats = policy.features(obs_n)
    mb = {"obs": obs, "obs_n": obs_n, "feats": feats}
    assert abs(anchor.loss(policy, mb, 0).item()) < 1e-5


def test_temperature_softens_the_start_but_keeps_its_most_likely_action(
    demos: Path, tmp_path: Path
) -> None:
    obs = torch.from_numpy(np.random.default_rng(2).normal(0, 0.5, (256, 4)).astype(np.float32))
    policy = bc_policy(demos, 100)

    def probs(p: Policy) -> torch.Tensor:
        return p.head.logits(p.features(p.normalize_obs(obs))).softmax(-1)[:, 0].detach()

    before = probs(policy)
    soften(policy, 4.0)
    after = probs(policy)
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    assert after.max(-1).values.mean() < before.max(-1).values.mean() - 0.05
    pend = protege.tasks.make("pendulum")
    cfg = PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head="gaussian")
    g = Policy(cfg, seed=0)
    x = torch.randn(64, 3)
    mean0, log_std0 = g.head._params(g.features(x))
    soften(g, 2.0)
    mean1, log_std1 = g.head._params(g.features(x))
    assert torch.allclose(mean0, mean1)
    assert torch.allclose(log_std1 - log_std0, torch.full_like(log_std0, math.log(2.0)))
    mog = Policy(PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head="mog"), seed=0)
    with pytest.raises(ConfigError, match="categorical and gaussian"):
        soften(mog, 2.0)
    # finetune anchors to the softened start: its saved start policy is the softened one
    fresh = bc_policy(demos, 100)
    settings = FinetuneConfig(steps=200, kl=0.1, temperature=4.0, eval_every=10**6, eval_episodes=1)
    finetune(fresh, CARTPOLE, tmp_path / "ft", settings, TINY, tensorboard=False)
    assert torch.allclose(probs(Policy.load(tmp_path / "ft" / "start")), after, atol=1e-5)


def test_bc_term_and_decays(demos: Path) -> None:
    data = Store.open(demos).transitions()
    term = BCTerm(data, weight=2.0, decay=0.5, batch_size=32, seed=0, start=1)
    assert [term.weight(u) for u in (0, 1, 2, 3)] == [2.0, 2.0, 1.0, 0.5]
    good, bad = bc_policy(demos, 300), bc_policy(demos, 1)
    mb = {"obs_n": torch.zeros(1, 4)}
    with torch.no_grad():
        assert term.loss(good, mb, 5).item() < 0.5 < term.loss(bad, mb, 5).item()
    kl = KLAnchor(good, 0.1, 0.9, start=2)
    assert kl.weight(1) == 0.1 and math.isclose(kl.weight(4), 0.1 * 0.81)


def test_gae_bootstraps_truncated_episodes_only() -> None:
    r = np.array([1.0, 1.0, 1.0, 1.0])
    v = np.zeros(4)
    nxt = np.full(4, 10.0)
    last = np.array([False, True, False, True])
    terminal = np.array([False, True, False, False])  # ep 1 terminated, ep 2 truncated
    adv, target = gae(r, v, nxt, terminal, last, gamma=0.5, lam=1.0)
    assert np.allclose(adv, [1.5, 1.0, 1 + 0.5 * (1 + 5), 1 + 5])
    assert np.allclose(target, adv)


# ------------------------------------------------------------------------------- errors
def test_heads_without_log_probability_and_bad_coefficients_are_refused(tmp_path: Path) -> None:
    pend = protege.tasks.make("pendulum")
    mse = Policy(PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(8,), head="mse"))
    with pytest.raises(ConfigError, match=r"head 'mse' has no log-probability.*gaussian.*--head"):
        finetune(mse, pend, tmp_path / "mse")
    with pytest.raises(ConfigError, match=r"head 'mse'.*categorical, gaussian, mog"):
        PPO(mse, pend, PPOConfig())
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ConfigError, match=r"FinetuneConfig.kl \(--kl\) must be a finite"):
            FinetuneConfig(kl=bad)
        with pytest.raises(ConfigError, match=r"bc_weight"):
            FinetuneConfig(bc_weight=bad)
    with pytest.raises(ConfigError, match="kl_decay"):
        FinetuneConfig(kl_decay=1.5)
    with pytest.raises(ConfigError, match="needs demonstrations"):
        finetune(
            Policy(PolicyConfig.for_spaces(*CARTPOLE.spaces, hidden_sizes=(8,))),
            CARTPOLE,
            tmp_path / "bc",
            FinetuneConfig(bc_weight=1.0),
        )
    assert not (tmp_path / "mse").exists()


def test_cli_fine_tunes_a_policy_that_eval_reads(
    weak: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes import PrintedTables, result_json
    from protege.cli import main
    from protege.cli.exit_codes import BAD_INPUT

    out = tmp_path / "ft"
    flags = "--steps 300 --rollout-steps 150 --n-envs 2 --eval-episodes 2 --no-progress"
    argv = ["finetune", "--policy", str(weak), "--task", "cartpole", "--out", str(out)]
    argv += flags.split()
    js = tmp_path / "ft.json"
    tables = PrintedTables(monkeypatch)
    assert main([*argv, "--no-tensorboard", "--kl", "0.2", "--seed", "5", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    tables.assert_whole(text)
    assert "seed=5" in text and "KL" in text
    record = json.loads((out / "finetune.json").read_text())
    assert record["finetune"]["kl"] == 0.2 and record["ppo"]["seed"] == 5
    results = result_json(js, "finetune", 5)
    assert results["evals"] == record["result"]["evals"]
    assert results["env_steps"] == record["result"]["env_steps"]
    assert main(["eval", "--policy", str(out), "--episodes", "2", "--no-progress"]) == 0
    assert main([*argv, "--no-tensorboard", "--kl", "0.2", "--seed", "5"]) == BAD_INPUT  # exists
    assert "holds a fine-tuning run" in capsys.readouterr().err
    assert main([*argv, "--kl", "nan"]) == BAD_INPUT
    assert "--kl: must be a finite number" in capsys.readouterr().err


def test_renormalizing_observations_keeps_the_policy_s_function(demos: Path) -> None:
    from protege.algos.ppo import renormalize_obs

    policy = bc_policy(demos, 50)
    obs = np.random.default_rng(0).normal(0, 0.5, (256, 4)).astype(np.float32)
    t = torch.from_numpy(obs)
    before = policy.head.logits(policy.features(policy.normalize_obs(t))).detach()
    old_std = policy.obs_std.clone()
    assert renormalize_obs(policy, obs)
    after = policy.head.logits(policy.features(policy.normalize_obs(t))).detach()
    assert not torch.allclose(policy.obs_std, old_std)
    assert torch.allclose(policy.obs_std, torch.from_numpy(obs.std(0)), rtol=1e-4)
    assert torch.allclose(before, after, atol=1e-4)
    np.testing.assert_array_equal(policy.act(obs), before.argmax(-1)[:, 0].numpy())


def test_continuous_actions_fine_tune_with_kl_and_bc_term(tmp_path: Path) -> None:
    pend = protege.tasks.make("pendulum")
    protege.collect(pend, tmp_path / "demos", episodes=1, n_envs=1, seed=0)
    data = Store.open(tmp_path / "demos").transitions()
    for head in ("gaussian", "mog"):
        cfg = PolicyConfig.for_spaces(*pend.spaces, hidden_sizes=(16,), head=head)
        policy = Policy(cfg, seed=0)
        protege.bc.fit(policy, data, BCConfig(steps=20, batch_size=32, seed=0, progress=False))
        settings = FinetuneConfig(
            steps=800, kl=0.5, value_warmup=1, bc_weight=1.0, eval_every=10**6, eval_episodes=1
        )
        ppo = PPOConfig(rollout_steps=200, n_envs=2, minibatch_size=100, epochs=1, seed=0)
        out = tmp_path / head
        result = finetune(policy, pend, out, settings, ppo, demos=data, tensorboard=False)
        assert result.updates == 2 and {"kl", "bc"} <= set(result.history[-1])
        episodes = list(Store.open(out / "store").episodes())
        actions = np.concatenate([e.executed_actions for e in episodes])
        assert actions.shape == (800, 1) and np.abs(actions).max() <= 2.0
        assert len(np.unique(actions)) > 100  # sampled from the head, not its mode
        assert Policy.load(out).config.head == head


@pytest.mark.slow
def test_demo_finetune_writes_its_report(tmp_path: Path) -> None:
    from protege.cli import main

    flags = "--steps 1500 --bc-steps 50 --eval-every 500 --eval-episodes 2 --no-progress"
    assert main(["demo", "finetune", "--out", str(tmp_path), *flags.split()]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == {"with KL", "without KL"}
    assert results["demonstrator"] < 200 < results["expert"]
    for name in ("report.md", "index.html", "finetune_curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "with KL: best evaluation" in (tmp_path / "report.md").read_text()


def test_self_imitation_keeps_the_best_episodes_learns_them_and_resumes(
    weak: Path, tmp_path: Path
) -> None:
    quiet = {"tensorboard": False}
    cfg = FinetuneConfig(
        steps=600,
        value_warmup=0,
        kl=0.0,
        self_imitation=5.0,
        self_imitation_episodes=3,
        eval_every=10**6,
        eval_episodes=2,
    )
    ppo = dataclasses.replace(TINY, lr=3e-3, epochs=4)
    whole = finetune(Policy.load(weak), CARTPOLE, tmp_path / "si", cfg, ppo, **quiet)
    assert all(h["self_imitation_weight"] == 5.0 for h in whole.history)
    # the kept episodes, in the checkpoint: the 3 best of every episode the run stored
    state = json.loads((tmp_path / "si" / "checkpoint" / "state.json").read_text())
    kept = load_file(str(tmp_path / "si" / "checkpoint" / state["weights"]))
    stored = [float(e.rewards.sum()) for e in Store.open(tmp_path / "si" / "store").episodes()]
    assert len(stored) > 3
    assert kept["term.self_imitation.returns"].tolist() == sorted(stored, reverse=True)[:3]
    # a resumed run imitates the same episodes: the same numbers as the uninterrupted one
    short = dataclasses.replace(cfg, steps=200)
    finetune(Policy.load(weak), CARTPOLE, tmp_path / "part", short, ppo, **quiet)
    rest = finetune(Policy.load(weak), CARTPOLE, tmp_path / "part", cfg, ppo, resume=True, **quiet)
    assert rest.resumed_from is not None and 0 < rest.resumed_from < whole.updates
    assert [sorted(h.items()) for h in rest.history] == [sorted(h.items()) for h in whole.history]
    bad: dict[str, float]
    for bad in ({"self_imitation": -1.0}, {"self_imitation": math.nan}):
        with pytest.raises(ConfigError, match="self_imitation"):
            FinetuneConfig(**bad)
    with pytest.raises(ConfigError, match="self_imitation_episodes"):
        FinetuneConfig(self_imitation_episodes=0)


def test_self_imitation_learns_the_actions_of_the_best_episodes_only() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(120, 4)).astype(np.float32)
    rule = (obs[:, 2] > 0).astype(np.int64)  # the best episode's actions follow this rule
    actions = np.concatenate([rule[:60], 1 - rule[60:]])  # the worse one's, the opposite
    rewards = np.concatenate([np.ones(60), np.full(60, 0.2)])
    last = np.zeros(120, bool)
    last[[59, 119]] = True
    batch = RolloutBatch(
        obs=obs, next_obs=obs, actions=actions,
        raw_actions=torch.as_tensor(actions, dtype=torch.float32).view(-1, 1, 1),
        logp=torch.zeros(120), values=torch.zeros(120), env_rewards=rewards,
        terminal=last.copy(), last=last, episode_returns=[60.0, 12.0], episode_lengths=[60, 60],
    )  # fmt: skip
    term = SelfImitation(weight=1.0, episodes=1, batch_size=64, seed=0)
    term.observe(batch, rewards, 0)
    assert term.returns() == [60.0] and term.weight(0) == 1.0
    policy = Policy(PolicyConfig.for_spaces(*CARTPOLE.spaces, hidden_sizes=(32,)), seed=0)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for u in range(200):
        loss = term.loss(policy, {}, u)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        chosen = policy.act(obs)
    assert (chosen[:60] == rule[:60]).mean() > 0.9  # the kept episode's actions
    assert (chosen[60:] == rule[60:]).mean() > 0.9  # the rule, not the worse episode's
    state = term.tensors()
    again = SelfImitation(weight=1.0, episodes=1, batch_size=64, seed=0)
    again.load_tensors(state)
    assert again.returns() == [60.0] and again.seen == 2
    assert torch.equal(again.loss(policy, {}, 7), term.loss(policy, {}, 7))


def test_critic_prefit_own_fits_the_first_batch_s_own_returns(weak: Path, tmp_path: Path) -> None:
    quiet = {"tensorboard": False, "store_episodes": False}
    cfg = FinetuneConfig(steps=450, value_warmup=0, eval_every=10**6, eval_episodes=2)
    plain = finetune(Policy.load(weak), CARTPOLE, tmp_path / "a", cfg, TINY, **quiet)
    own = dataclasses.replace(cfg, critic_prefit_own=300)
    ft = finetune(Policy.load(weak), CARTPOLE, tmp_path / "b", own, TINY, **quiet)
    first = ft.history[0]
    assert first["own_prefit_rmse_after"] < 0.2 * first["own_prefit_rmse_before"]
    assert "own_prefit_rmse_before" not in plain.history[0]
    assert "own_prefit_rmse_before" not in ft.history[1]  # the first update only
    assert first["value_loss"] != plain.history[0]["value_loss"]
    # the targets: discounted returns to each episode's end; a truncated one bootstraps
    rewards = np.ones(5)
    last = np.array([False, True, False, False, True])
    terminal = np.array([False, True, False, False, False])  # the second episode: cut off
    obs = np.arange(20, dtype=np.float32).reshape(5, 4)
    batch = RolloutBatch(
        obs=obs, next_obs=obs + 100, actions=np.zeros(5, np.int64),
        raw_actions=torch.zeros(5, 1, 1), logp=torch.zeros(5), values=torch.zeros(5),
        env_rewards=rewards, terminal=terminal, last=last, episode_returns=[2.0, 3.0],
        episode_lengths=[2, 3],
    )  # fmt: skip
    t = batch_returns(batch, rewards, 0.5, 10)
    assert t.returns.tolist() == [1.5, 1.0, 1.75, 1.5, 1.0]
    assert t.tail_discount is not None and t.tail_obs is not None
    assert t.tail_discount.tolist() == [0.0, 0.0, 0.125, 0.25, 0.5]
    assert (t.tail_obs[2:] == obs[4] + 100).all()
    with pytest.raises(ConfigError, match="critic_prefit_own"):
        FinetuneConfig(critic_prefit_own=-1)
