"""SMILe and AggreVaTe: their rules (geometric mixture weights, per-round data; replayed
states, tried actions, argmax-return labels), their label counts, their checkpoints, and that
each learns on the lane toy (exact dynamic programming over the learned tables)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from fakes import CountingExpert
from protege.algos import aggrevate, engine, registry, smile
from protege.algos.rounds import ordered
from protege.configs.bc import BCConfig
from protege.configs.horizon import HorizonConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import AggreVaTeConfig, SmileConfig
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Store
from protege.errors import CheckpointError, ConfigError
from protege.experiments.horizon import run_horizon
from protege.experiments.horizon_arms import lane_task
from protege.experiments.tabular import TabularTrainer
from protege.policies.mixture import MixturePolicy
from protege.tasks import make

CARTPOLE = make("cartpole")
LANE_CFG = HorizonConfig(epsilon=0.02, n_envs=4)
LANE = lane_task(LANE_CFG, 30)


def lane_config(**kw: Any) -> DAggerConfig:
    base: dict[str, Any] = dict(
        rounds=3, episodes_per_round=8, initial_demos=2, n_envs=4, eval_episodes=1, eval_envs=1
    )
    return DAggerConfig(**{**base, **kw})


# ------------------------------------------------------------------------------- SMILe
def test_smile_weights_are_geometric_and_sum_to_one() -> None:
    expert, w = smile.smile_weights(0.3, 4)
    assert expert == pytest.approx(0.7**4)
    np.testing.assert_allclose(w, [0.3, 0.3 * 0.7, 0.3 * 0.49, 0.3 * 0.343])
    assert expert + sum(w) == pytest.approx(1.0)


def test_smile_mixes_by_the_rule_trains_on_its_round_and_counts_every_label(
    tmp_path: Path,
) -> None:
    alpha = 0.4
    expert = CountingExpert(LANE.make_expert())
    trainer = TabularTrainer(LANE_CFG.epsilon, LANE_CFG.width)
    res = smile.run(
        LANE, tmp_path / "s", lane_config(), SmileConfig(alpha), trainer=trainer, expert=expert
    )
    run = tmp_path / "s.run" / "learners"
    for r, row in enumerate(res.rows):
        mix = MixturePolicy.load(run / f"round_{r:03d}", trainer.load)  # tables' own loader
        assert isinstance(mix, MixturePolicy) and len(mix) == r + 1
        want_expert, want = smile.smile_weights(alpha, r + 1)
        np.testing.assert_allclose(mix.weights, want)
        assert mix.expert_weight == pytest.approx(want_expert)
        np.testing.assert_allclose(mix.probabilities, np.array(want) / sum(want))
        # Round r was driven by π_r: the expert with probability (1 − α)^r.
        assert row.beta == (None if r == 0 else pytest.approx((1 - alpha) ** r))
    # Every visited step is labelled, and the expert was asked exactly that often.
    last = res.rows[-1]
    assert last.labels == last.expert_steps + last.learner_steps == last.expert_queries
    assert expert.asked == last.labels
    data = ordered(Store.open(tmp_path / "s"))
    assert data is not None
    r2 = data.select_episodes(data.rounds == 2)
    assert (r2.actor == LEARNER).any() and (r2.actor == EXPERT).any()  # a per-step mixture
    # π̂_3 was trained on round 2's labels alone: it is the table fitted on them.
    mix = MixturePolicy.load(run / "round_002", trainer.load)
    alone = trainer.fit(r2, 2, 0, None).table
    np.testing.assert_array_equal(mix.components[2].table, alone)


def test_mixture_draws_follow_the_weights_and_are_pinned_per_episode() -> None:
    class Const:
        def __init__(self, a: int):
            self.a = a

        def act(self, obs: np.ndarray, deterministic: bool = True, generator: Any = None) -> Any:
            return np.full(len(obs), self.a)

        def episodes_started(self, mask: np.ndarray | None = None) -> None:
            pass

    mix = MixturePolicy([Const(0), Const(1), Const(2)], [0.5, 0.3, 0.2], seed=3)
    obs = np.zeros((5000, 4), np.float32)
    counts = np.bincount(mix.act(obs), minlength=3) / len(obs)
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.2], atol=0.025)
    mix.episodes_started()
    mix.pin(0, 11)
    first = [int(mix.act(obs[:2])[0]) for _ in range(50)]
    mix.pin(0, 11)
    assert [int(mix.act(obs[:2])[0]) for _ in range(50)] == first


def test_mixture_checkpoint_round_trips_through_the_registry(tmp_path: Path) -> None:
    pf = engine.policy_factory(CARTPOLE, hidden_sizes=(8,))
    parts = []
    for k in range(3):
        import torch

        torch.manual_seed(k)
        parts.append(pf())
    mix = MixturePolicy(parts, [0.3, 0.21, 0.147], seed=5, expert_weight=0.343)
    mix.save(tmp_path / "m")
    loaded = registry.load_learner(tmp_path / "m")
    assert isinstance(loaded, MixturePolicy) and loaded.expert_weight == pytest.approx(0.343)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    mix.episodes_started()
    loaded.episodes_started()
    np.testing.assert_array_equal(mix.act(obs), loaded.act(obs))
    meta = tmp_path / "m" / "mixture.json"
    meta.write_text(json.dumps({"kind": "mixture", "weights": [1, "x"], "seed": 0}))
    with pytest.raises(CheckpointError, match=r"mixture\.json: field 'weights'"):
        registry.load_learner(tmp_path / "m")


# --------------------------------------------------------------------------- AggreVaTe
def test_aggrevate_restores_states_tries_every_action_and_counts_every_query(
    tmp_path: Path,
) -> None:
    expert = CountingExpert(LANE.make_expert())
    trainer = TabularTrainer(LANE_CFG.epsilon, LANE_CFG.width)
    cfg = lane_config(rounds=2)
    res = aggrevate.run(
        LANE, tmp_path / "a", cfg, AggreVaTeConfig(), trainer=trainer, expert=expert
    )
    last = res.rows[-1]
    assert expert.asked == last.labels == last.expert_queries  # every ask is a stored label
    data = ordered(Store.open(tmp_path / "a"))  # by (round, episode index)
    assert data is not None
    n, A = cfg.episodes_per_round, 3
    for r in (1, 2):
        assert res.rows[r].episodes == n * (1 + A)
        own = data.select_episodes(data.rounds == r)
        for k in range(n):
            rollin = own.episode_starts[k]
            t = aggrevate.sampled_time(cfg.seed, r, k, int(own.episode_lengths[k]))
            eps = [n + k * A + j for j in range(A)]
            starts = own.episode_starts[eps]
            # Every completion starts at the roll-in's state at t, replayed exactly ...
            for s in starts:
                np.testing.assert_array_equal(own.obs[s], own.obs[rollin + t])
            # ... tries action j there, and the expert drives and labels to the end.
            np.testing.assert_array_equal(own.executed[starts], np.arange(A))
            for s, length in zip(starts, own.episode_lengths[eps], strict=True):
                assert np.all(own.actor[s : s + length] == EXPERT)
                assert own.labeled[s : s + length].all()
    replayed = sum(row.extras.get(aggrevate.REPLAYED, 0.0) for row in res.rows)
    assert replayed > 0  # env steps spent restoring states, reported per round


def test_aggrevate_labels_each_state_with_its_best_tried_action() -> None:
    layout = aggrevate.Layout(n=1, actions=3)
    # Round 1: one roll-in (2 steps), then completions of actions 0, 1, 2 from s_t.
    obs = np.array([[0, 0], [1, 0], [1, 0], [0, 0], [1, 0], [1, 0], [2, 0]], np.float32)
    executed = np.array([1, 2, 0, 1, 1, 2, 1])
    labels = np.array([1, 2, 0, 0, 0, 0, 0])
    rewards = np.array([0, -1, 0, -1, -1, -1, -1], np.float32)
    lengths = np.array([2, 1, 2, 2])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    data = aggrevate.Transitions(
        obs=obs,
        actions=labels,
        executed=executed,
        rewards=rewards,
        actor=np.zeros(7, np.uint8),
        labeled=np.ones(7, bool),
        episode_starts=starts,
        episode_lengths=lengths,
        rounds=np.ones(4, np.int64),
    )
    ex = aggrevate.cost_sensitive_examples(data, layout)
    # Returns 0, −2, −2: action 0 is best at s_t = (1, 0).
    np.testing.assert_array_equal(ex.obs, [[1, 0]])
    np.testing.assert_array_equal(ex.actions, [0])
    # A tie between actions 1 and 2 goes to the expert's label at s_t (2 here).
    tie = dataclasses.replace(data, rewards=np.array([0, -1, -5, -1, -1, -1, -1], np.float32))
    tie = dataclasses.replace(tie, actions=np.array([1, 2, 2, 0, 0, 0, 0]))
    np.testing.assert_array_equal(aggrevate.cost_sensitive_examples(tie, layout).actions, [2])


class Unseeded(gym.Wrapper):
    """CartPole whose observations carry noise from an unseeded generator: replaying its
    actions from the same seed does not reach the same state."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.noise = np.random.default_rng()

    def step(self, action: Any) -> Any:
        obs, *rest = self.env.step(action)
        return (obs + self.noise.normal(0, 1e-4, obs.shape).astype(obs.dtype), *rest)


def test_aggrevate_refuses_an_env_whose_replay_diverges(tmp_path: Path) -> None:
    task = dataclasses.replace(CARTPOLE, env_id=lambda **kw: Unseeded(gym.make("CartPole-v1")))
    cfg = DAggerConfig(
        rounds=1,
        episodes_per_round=2,
        initial_demos=1,
        n_envs=2,
        bc=BCConfig(steps=20, progress=False),
        eval_episodes=1,
        eval_envs=1,
    )
    with pytest.raises(ConfigError, match="not deterministic given its seed"):
        aggrevate.run(
            task,
            tmp_path / "u",
            cfg,
            AggreVaTeConfig(completion_horizon=5),
            make_policy=engine.policy_factory(task, hidden_sizes=(8,)),
        )
    with pytest.raises(ConfigError, match="multiple of n_envs"):
        aggrevate.run(task, tmp_path / "v", dataclasses.replace(cfg, n_envs=4))


def test_both_learn_on_the_lane_where_bc_compounds() -> None:
    """The horizon experiment's exact E[mistakes]: AggreVaTe learns the expert's recovery
    (errs only by slips, εT), SMILe's mixture errs less than BC at every T."""
    cfg = HorizonConfig(
        horizons=(20, 40, 80),
        epsilon=0.01,
        n_demos=5,
        dagger_rounds=3,
        slips_per_round=4.0,
        n_envs=8,
        seeds=1,
        arms=("bc", "smile", "aggrevate"),
        smile_alpha=0.5,
        mc_episodes=0,
        saturated_epsilon=None,
    )
    res = run_horizon(cfg)
    T = np.asarray(cfg.horizons, float)
    bc, sm, agg = (res.arms[a] for a in ("bc", "smile", "aggrevate"))
    np.testing.assert_allclose(agg.mistakes, cfg.epsilon * T, rtol=1e-9)
    assert np.all(sm.mistakes < 0.8 * bc.mistakes)
    assert bc.mistakes_slope.slope > 1.7 and agg.mistakes_slope.slope == pytest.approx(1.0)
    assert np.all(agg.queries == agg.labels) and np.all(agg.labels > bc.labels)


@pytest.mark.parametrize("method", ["smile", "aggrevate"])
def test_a_run_stopped_mid_round_resumes_to_the_same_numbers(tmp_path: Path, method: str) -> None:
    """The mixture's per-step draws (SMILe) and the sampled times and replays (AggreVaTe)
    come from (seed, round, episode): a run stopped between batches and resumed collects
    the same episodes and reaches the same rows as an uninterrupted one."""
    cfg = DAggerConfig(
        rounds=2,
        episodes_per_round=2,
        initial_demos=1,
        n_envs=1,
        bc=BCConfig(steps=30, batch_size=32, progress=False),
        eval_episodes=2,
        eval_envs=2,
    )
    settings = SmileConfig(0.5) if method == "smile" else AggreVaTeConfig(completion_horizon=3)
    pf = engine.policy_factory(CARTPOLE, hidden_sizes=(8,))

    def go(path: Path, **kw: Any) -> Any:
        return registry.run_method(method, CARTPOLE, path, cfg, settings, make_policy=pf, **kw)

    whole = go(tmp_path / "a")
    # stop() is asked before every batch (and before training): stop before round 1's
    # second episode (SMILe), or before its first completion (AggreVaTe, after the roll-ins).
    calls, at = iter(range(100)), 3 if method == "smile" else 4
    part = go(tmp_path / "b", stop=lambda: next(calls) == at)
    assert part.stopped and len(part.rows) == 1
    resumed = go(tmp_path / "b", resume=True)

    def numbers(res: Any) -> list[tuple[Any, ...]]:
        return [(r.labels, r.expert_queries, r.learner_steps, r.mean_return) for r in res.rows]

    assert numbers(resumed) == numbers(whole)


def test_continuous_actions_try_the_experts_then_perturbations_of_it() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert aggrevate.tried_actions(space, AggreVaTeConfig(explore_actions=4)) == 4
    assert aggrevate.tried_actions(gym.spaces.Discrete(5), AggreVaTeConfig()) == 5
    gate = aggrevate.AggreVaTeGate(0.0, space, explore_std=0.5, seed=0)
    gate.seed_episode(0, 7)
    a_star = np.array([0.2, 0.9], np.float32)
    np.testing.assert_array_equal(gate._tried_action(0, 0, a_star), a_star)
    tried = np.stack([gate._tried_action(0, 1, a_star) for _ in range(400)])
    assert np.all(tried >= -1.0) and np.all(tried <= 1.0)  # clipped to the box
    assert tried[:, 0].std() == pytest.approx(0.5, rel=0.15)  # σ = 0.5 × half range
    gate.seed_episode(0, 7)
    np.testing.assert_array_equal(gate._tried_action(0, 1, a_star), tried[0])  # pinned
