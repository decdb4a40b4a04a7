"""The offline dial (issue 15, part 4): filtered BC, AWR and IQL on a store with rewards, and
mixed-quality collection (``collect --mix``)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import protege
from protege import BCConfig, Policy, PolicyConfig, Store
from protege.algos import offline
from protege.cli import main
from protege.cli.exit_codes import BAD_INPUT
from protege.configs.offline import OfflineConfig, mix_counts, parse_mix
from protege.data.transitions import Transitions
from protege.errors import ConfigError, DataError
from protege.experts.noisy import EpsilonExpert
from protege.policies.heads import HEADS
from protege.rollout.collect import collect, collect_mix

TOY = ["--no-progress", "--seed", "3"]


# ------------------------------------------------------------------ configs and inputs
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beta", -1.0),
        ("beta", 0.0),
        ("beta", math.nan),
        ("tau", 1.0),
        ("tau", math.nan),
        ("top_fraction", 0.0),
        ("top_fraction", 1.5),
        ("top_fraction", math.nan),
        ("max_weight", -3.0),
        ("discount", 1.2),
        ("algo", "cql"),
    ],
)
def test_bad_settings_are_refused_naming_the_flag(field: str, value: object) -> None:
    flag = "--" + field.replace("_", "-")
    with pytest.raises(ConfigError, match=flag):
        OfflineConfig(**{field: value})  # type: ignore[arg-type]


def test_discount_defaults_to_the_methods_own() -> None:
    """AWR looks 0.999 ahead (LunarLander's landing or crash comes hundreds of steps after
    the actions that decide it), IQL 0.99; a given discount is used as given."""
    assert OfflineConfig("awr").gamma == 0.999 and OfflineConfig("iql").gamma == 0.99
    assert OfflineConfig("awr", discount=0.9).gamma == 0.9
    assert OfflineConfig("iql", discount=0.0).gamma == 0.0


def test_mix_spec_is_parsed_and_split_by_largest_remainder() -> None:
    sources = parse_mix("expert:0.1,eps0.3:0.3,random:0.6")
    assert [(s.name, s.epsilon) for s in sources] == [
        ("expert", 0.0),
        ("eps0.3", 0.3),
        ("random", 1.0),
    ]
    assert mix_counts(sources, 10) == [1, 3, 6]
    assert sum(mix_counts(sources, 7)) == 7
    for bad, fragment in [
        ("expert:0.5,random:0.4", "sum to 0.9"),
        ("expert:0.5,bogus:0.5", "unknown source 'bogus'"),
        ("eps1.5:1", "ε must be in [0, 1]"),
        ("expert:nan,random:1", "not a finite number"),
        ("expert", "SOURCE:FRACTION"),
    ]:
        with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
            parse_mix(bad)


def test_epsilon_expert_is_the_expert_at_0_and_random_at_1() -> None:
    task = protege.tasks.make("cartpole")
    obs = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32)
    expert = task.make_expert()
    clean = expert.act(obs, None)
    for eps, lo, hi in [(0.0, 1.0, 1.0), (0.5, 0.65, 0.85), (1.0, 0.4, 0.6)]:
        noisy = EpsilonExpert(task.make_expert(), eps, task.spaces[1])
        noisy.begin_run(1)
        agree = (noisy.act(obs, None) == clean).mean()
        assert lo <= agree <= hi, (eps, agree)


# ------------------------------------------------------------------ filtered BC
def _transitions(returns: list[float]) -> Transitions:
    """Episodes of 2 steps each whose rewards sum to ``returns``."""
    rewards = np.repeat(np.asarray(returns, np.float32) / 2, 2)
    n, e = len(rewards), len(returns)
    return Transitions(
        obs=np.zeros((n, 3), np.float32),
        actions=np.zeros(n, np.int64),
        executed=np.zeros(n, np.int64),
        rewards=rewards,
        actor=np.zeros(n, np.uint8),
        labeled=np.ones(n, bool),
        episode_starts=np.arange(e) * 2,
        episode_lengths=np.full(e, 2),
        rounds=np.zeros(e, np.int64),
    )


def test_filtered_bc_keeps_the_top_fraction_or_those_above_the_threshold() -> None:
    data = _transitions([5.0, -3.0, 9.0, 1.0, 9.0, 0.0, 2.0, 7.0, -1.0, 4.0])
    top = offline.kept_episodes(data, OfflineConfig("filtered-bc", top_fraction=0.3), "d")
    assert np.flatnonzero(top).tolist() == [2, 4, 7]  # 9, 9, 7
    default = offline.kept_episodes(data, OfflineConfig("filtered-bc"), "d")
    assert np.flatnonzero(default).tolist() == [2]  # 10%: the first of the tied best
    above = offline.kept_episodes(data, OfflineConfig("filtered-bc", min_return=4.0), "d")
    assert np.flatnonzero(above).tolist() == [0, 2, 4, 7, 9]
    with pytest.raises(DataError, match=r"d: no episode has a return ≥ 10 \(the best has 9"):
        offline.kept_episodes(data, OfflineConfig("filtered-bc", min_return=10.0), "d")


# ------------------------------------------------------------------ weighted losses
@pytest.mark.parametrize("head", ["mse", "gaussian", "categorical"])
def test_a_float_mask_weights_each_step_of_the_loss(head: str) -> None:
    torch.manual_seed(0)
    discrete = head == "categorical"
    module = HEADS[head](8, 1 if discrete else 2, 1, **({"n_actions": 3} if discrete else {}))
    feats = torch.randn(6, 8)
    acts = torch.randint(0, 3, (6, 1, 1)).float() if discrete else torch.randn(6, 1, 2)
    w = torch.tensor([[0.0], [1.0], [3.0], [0.5], [0.0], [2.0]])
    weighted, _ = module.loss(feats, acts, w)
    per_step = torch.stack(
        [module.loss(feats[i : i + 1], acts[i : i + 1], None)[0] for i in range(6)]
    )
    expected = (per_step * w[:, 0]).sum() / w.sum()
    assert torch.allclose(weighted, expected, rtol=1e-5, atol=1e-6)


def test_a_policy_with_one_continuous_action_acts() -> None:
    # The acting plan kept the head's (1, F) weight's transpose, a view that still required
    # grad, so every Pendulum or MountainCarContinuous policy failed to act.
    task = protege.tasks.make("pendulum")
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(8,)), seed=0)
    actions = policy.act(np.zeros((2, 3), np.float32))
    assert actions.shape == (2, 1) and np.isfinite(actions).all()


# ------------------------------------------------------------------ stores and errors
def test_mixed_collection_labels_each_episode_with_its_source(tmp_path: Path) -> None:
    task = protege.tasks.make("cartpole")
    runs = collect_mix(task, tmp_path / "mix", parse_mix("expert:0.25,random:0.75"), 8, n_envs=4)
    assert [(s.name, r.n_episodes) for s, r in runs] == [("expert", 2), ("random", 6)]
    store = Store.open(tmp_path / "mix")
    eps = [e.extras["epsilon"] for e in store.index]
    assert sorted(eps) == [0.0] * 2 + [1.0] * 6
    ret = {e: np.mean([r.episode_return for r in store.index if r.extras["epsilon"] == e])
           for e in (0.0, 1.0)}  # fmt: skip
    assert ret[0.0] == 500.0 and ret[1.0] < 100.0
    data = store.transitions()
    assert (data.actions == data.executed).all() and data.labeled.all()
    nxt = data.next_obs()
    last = data.episode_starts + data.episode_lengths - 1
    assert np.array_equal(nxt[data.episode_starts[0]], data.obs[data.episode_starts[0] + 1])
    assert np.array_equal(nxt[last], data.final_obs)
    assert data.step_terminal()[last].tolist() == data.terminated.tolist()


def test_reward_methods_refuse_a_store_without_rewards_naming_it(tmp_path: Path) -> None:
    task = protege.tasks.make("cartpole")
    collect(task, tmp_path / "demo", 2, n_envs=2)
    src = Store.open(tmp_path / "demo")
    zero = Store.create(tmp_path / "norewards", *task.spaces, task="cartpole")
    for ep in src.episodes():
        zero.append(replace(ep, rewards=np.zeros_like(ep.rewards)))
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(8,)))
    for algo in ("filtered-bc", "awr", "iql"):
        with pytest.raises(DataError, match=f"{tmp_path / 'norewards'}: every reward is 0"):
            offline.fit(policy, Store.open(tmp_path / "norewards"), None, OfflineConfig(algo))
    pendulum = protege.tasks.make("pendulum")
    collect(pendulum, tmp_path / "pendulum", 1, n_envs=1)
    config = PolicyConfig.for_spaces(*pendulum.spaces, head="diffusion", hidden_sizes=(8,))
    with pytest.raises(ConfigError, match="head 'diffusion' has neither"):
        offline.fit(Policy(config), Store.open(tmp_path / "pendulum"), None, OfflineConfig("awr"))


def test_cli_refuses_bad_dial_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    task = protege.tasks.make("cartpole")
    collect(task, tmp_path / "demo", 2, n_envs=2)
    args = ["train", "--data", str(tmp_path / "demo"), "--out", str(tmp_path / "p"), *TOY]
    assert main([*args, "--algo", "awr", "--beta", "-1"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "OfflineConfig.beta (--beta) must be a finite number in (0.0, ∞)" in err, err
    assert main([*args, "--algo", "iql", "--tau", "1.5"]) == BAD_INPUT
    assert "--tau" in capsys.readouterr().err
    assert main([*args, "--algo", "awr", "--beta", "nan"]) == 2  # argparse: not finite
    assert main([*args, "--algo", "cql"]) == 2
    assert main(["collect", "--task", "cartpole", "--out", str(tmp_path / "m"), "--mix",
                 "expert:0.5", *TOY]) == BAD_INPUT  # fmt: skip
    assert "sum to 0.5" in capsys.readouterr().err


# ------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def pendulum_mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mixed Pendulum store: 6 expert episodes, 14 random ones (shared: never
    changed)."""
    path = tmp_path_factory.mktemp("offline") / "pendulum-mix"
    task = protege.tasks.make("pendulum")
    collect_mix(task, path, parse_mix("expert:0.3,random:0.7"), 20, n_envs=10, seed=0)
    return path


def _by_source(path: Path) -> np.ndarray:
    store = Store.open(path)
    lengths = [e.length for e in store.index]
    return np.repeat([e.extras["epsilon"] for e in store.index], lengths)


def test_awr_weights_favour_the_experts_steps(pendulum_mix: Path) -> None:
    from protege.algos import critics

    data = Store.open(pendulum_mix).transitions()
    config = OfflineConfig("awr", critic_steps=600, critic_hidden=(64, 64))
    adv, result = critics.awr_advantages(data, config, seed=0)
    weights, summary = offline.advantage_weights(adv, config)
    eps = _by_source(pendulum_mix)
    assert weights[eps == 0].mean() > 2 * weights[eps == 1].mean(), summary
    assert result.steps == 600 and result.samples_per_s > 0


def test_weighted_bc_imitates_only_the_steps_it_weights(tmp_path: Path) -> None:
    task = protege.tasks.make("cartpole")
    collect_mix(task, tmp_path / "mix", parse_mix("expert:0.5,random:0.5"), 6, n_envs=6)
    data = Store.open(tmp_path / "mix").transitions()
    expert_steps = _by_source(tmp_path / "mix") == 0
    returns = {}
    for name, weights in [("expert", expert_steps), ("random", ~expert_steps)]:
        policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(32,)), seed=0)
        config = BCConfig(steps=300, seed=0, progress=False, val_fraction=0.0)
        protege.bc.fit(policy, data, config, weights=weights.astype(np.float32))
        returns[name] = protege.evaluate(policy, task, episodes=4, n_envs=4, seed=9).mean_return
    assert returns["expert"] > 250.0 and returns["random"] < 60.0, returns
    with pytest.raises(DataError, match="finite numbers ≥ 0"):
        protege.bc.fit(policy, data, config, weights=-np.ones(len(data), np.float32))


def test_weighted_bc_draws_its_batches_in_proportion_to_the_weights(pendulum_mix: Path) -> None:
    """Rows are drawn ∝ weight and count once: a batch is not spent on rows of weight ≈ 0
    (uniform rows with weighted losses left the 30% expert steps a third of every batch)."""
    from protege.algos.bc import _Samples

    data = Store.open(pendulum_mix).transitions()
    expert = _by_source(pendulum_mix) == 0
    weights = np.where(expert, 1.0, 1e-3).astype(np.float32)
    policy = Policy(PolicyConfig.for_spaces(*protege.tasks.make("pendulum").spaces), seed=0)
    episodes = np.arange(len(data.episode_lengths))
    samples = _Samples(policy, data, episodes, weights, sample_by_weight=True)
    rows = samples.draw(20_000, torch.Generator().manual_seed(0))
    share = expert[rows.numpy()].mean()
    assert share == pytest.approx(expert.sum() / (expert.sum() + 1e-3 * (~expert).sum()), abs=0.01)
    assert samples.batch(rows[:8])[2] is None  # drawn ∝ weight: the losses are not weighted
    assert samples.draw(8, torch.Generator().manual_seed(0)).dtype == torch.int64
    with pytest.raises(DataError, match="some > 0"):
        protege.bc.fit(policy, data, BCConfig(steps=1), weights=np.zeros(len(data), np.float32))


@pytest.mark.slow
def test_awr_and_iql_beat_bc_on_all_of_a_mixed_pendulum_store(
    pendulum_mix: Path, tmp_path: Path
) -> None:
    task = protege.tasks.make("pendulum")
    store = Store.open(pendulum_mix)
    returns = {}
    for algo in ("bc", "awr", "iql"):
        policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(64, 64)), seed=0)
        config = OfflineConfig(algo, critic_steps=4000, critic_hidden=(64, 64))
        offline.fit(policy, store, BCConfig(steps=4000, seed=0, progress=False), config)
        returns[algo] = protege.evaluate(policy, task, episodes=10, n_envs=10, seed=100)
        policy.save(tmp_path / algo)
        loaded = Policy.load(tmp_path / algo)  # a normal policy: the checkpoint round-trips
        obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        assert np.array_equal(loaded.act(obs), policy.act(obs))
    bc = returns["bc"].mean_return
    assert returns["awr"].mean_return > bc + 150, {k: v.mean_return for k, v in returns.items()}
    assert returns["iql"].mean_return > bc + 150, {k: v.mean_return for k, v in returns.items()}
