"""The horizon experiment: BC's E[mistakes] ~ εT², DAgger's ~ εT (Ross, Gordon & Bagnell 2011).

Every arm is trained by protege's own algorithms (dagger.run and its gates) through the one
rollout loop; the exact dynamic programme and a Monte Carlo through the loop must agree.
Also the DriftCorridor env, its vector twin and its scripted expert at the gymnasium level.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from protege.configs.horizon import HorizonConfig
from protege.errors import ConfigError
from protege.experiments.horizon import run_horizon
from protege.experiments.horizon_exact import exact_expectations
from protege.experiments.horizon_mc import monte_carlo_episodes
from protege.experiments.horizon_results import HorizonResult
from protege.experiments.slopes import (
    bootstrap_episodes_slope,
    chi2_sf,
    loglog_slope,
    ols_slope,
    t_quantile,
)
from protege.experiments.tabular import SlippingTable, TabularNearestNeighbor
from protege.tasks.lane import LANE, LaneExpert
from protege.tasks.lane_dynamics import WIDTH, expert_steer, lane_transition, next_offset
from protege.tasks.lane_env import DriftCorridor, DriftCorridorVector

EPS = 2e-3
FAST_ARMS = ("bc", "dagger", "dart", "hg-dagger")
FAST = HorizonConfig(
    horizons=(20, 40, 80),
    epsilon=EPS,
    dagger_rounds=3,
    seeds=1,
    arms=FAST_ARMS,
    mc_episodes=3000,
    bootstrap=500,
    saturated_epsilon=0.05,
)
"""A small sweep (εT ≤ 0.16, and saturated at ε = 0.05): ~9 s of CPU."""


@pytest.fixture(scope="module")
def result() -> HorizonResult:
    return run_horizon(FAST)


# -- the slopes (exact DP of policies trained through dagger.run) ---------------------------


def test_bc_is_quadratic(result: HorizonResult) -> None:
    fit = result.arms["bc"].mistakes_slope
    assert 1.9 <= fit.slope <= 2.02
    # The exact curve bends (BC starts to saturate), so the OLS interval has a width.
    assert 1.85 <= fit.low < fit.slope < fit.high <= 2.05
    assert fit.method == "ols" and fit.se > 0


@pytest.mark.parametrize("arm", ["dagger", "dart", "hg-dagger"])
def test_interactive_and_dart_are_linear(result: HorizonResult, arm: str) -> None:
    fit = result.arms[arm].mistakes_slope
    assert 0.97 <= fit.low <= fit.slope <= fit.high <= 1.03


def test_dagger_errs_only_by_slips(result: HorizonResult) -> None:
    T = np.asarray(result.horizons, dtype=float)
    np.testing.assert_allclose(result.arms["dagger"].mistakes, EPS * T, rtol=1e-9)
    assert np.all(result.arms["bc"].mistakes > 5 * EPS * T)


def test_labels_follow_each_gate(result: HorizonResult) -> None:
    """The counts dagger.run reports: BetaMixture labels every step, HG-DAgger's supervisor
    only its takeovers, DART every step of its K (noisy) demonstrations."""
    cfg = result.config
    T = np.asarray(result.horizons)
    bc, dagger = result.arms["bc"], result.arms["dagger"]
    hg, dart = result.arms["hg-dagger"], result.arms["dart"]
    np.testing.assert_array_equal(bc.mean_labels, cfg.n_demos * T)
    rounds = np.array([cfg.episodes_for(t) for t in T]) * cfg.dagger_rounds
    np.testing.assert_array_equal(dagger.mean_labels, (cfg.n_demos + rounds) * T)
    np.testing.assert_array_equal(dart.mean_labels, bc.mean_labels)
    extra = hg.mean_labels - bc.mean_labels
    assert np.all(extra > 0)
    assert np.all(extra < 0.01 * (dagger.mean_labels - bc.mean_labels))
    np.testing.assert_array_equal(hg.queries, hg.labels)  # it watches the safe set only
    np.testing.assert_allclose(hg.cost, dagger.cost, rtol=0.05)


def test_monte_carlo_through_the_loop_agrees_with_exact(result: HorizonResult) -> None:
    for quantity in ("mistakes", "cost"):
        ag = result.agreement(quantity)
        assert ag is not None and ag.df == len(FAST_ARMS) * len(FAST.horizons)
        assert ag.passed, ag
        assert ag.max_abs_z < 4.0, ag
    bc, dagger = result.arms["bc"].mc, result.arms["dagger"].mc
    assert bc is not None and dagger is not None
    assert np.all(bc.mistakes_se > 0) and np.all(dagger.mistakes_se > 0)
    # The Monte Carlo alone separates the two exponents, and its intervals cover the exact.
    assert bc.mistakes_slope.low > dagger.mistakes_slope.high
    for mc in (bc, dagger):
        assert mc.mistakes_slope.method == "bootstrap"
        assert mc.mistakes_slope.low < mc.exact_slope < mc.mistakes_slope.high


def test_bc_saturates_when_eps_t_is_large(result: HorizonResult) -> None:
    sat = result.saturated
    assert sat is not None and sat.config.epsilon == 0.05
    bc = sat.arms["bc"].mistakes_slope.slope
    assert bc < 1.6
    assert bc < result.arms["bc"].mistakes_slope.slope - 0.4
    for arm in ("dagger", "hg-dagger"):
        assert 0.97 <= sat.arms[arm].mistakes_slope.slope <= 1.03
    # Where εT is large the slips' direction matters too, and the loop still agrees.
    for quantity in ("mistakes", "cost"):
        ag = sat.agreement(quantity)
        assert ag is not None and ag.passed, ag


def test_report_and_plot(result: HorizonResult, tmp_path) -> None:
    text = result.to_markdown()
    for arm in FAST_ARMS:
        assert f"| {arm} |" in text
    assert "ε = 0.05" in text  # the saturated section
    assert "Agreement, mistakes: χ² =" in text
    out = result.plot(tmp_path / "horizon.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = result.to_dict()
    assert d["arms"]["bc"]["mistakes_slope"]["slope"] == result.arms["bc"].mistakes_slope.slope
    assert d["agreement"]["mistakes"]["df"] == len(FAST_ARMS) * len(FAST.horizons)


# -- determinism, seeds and knobs (tiny sweeps) ---------------------------------------------

TINY = HorizonConfig(
    horizons=(10, 20),
    epsilon=0.02,
    dagger_rounds=1,
    seeds=2,
    arms=("bc", "hg-dagger"),
    mc_episodes=200,
    bootstrap=50,
    p_turn=0.2,
    saturated_epsilon=None,
)


def test_same_seed_gives_identical_numbers() -> None:
    a, b = run_horizon(TINY), run_horizon(TINY)
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for key in ("seconds", "total_seconds", "train_seconds", "mc_seconds"):
            d.pop(key)
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)  # NaN-safe
    c = run_horizon(dataclasses.replace(TINY, seed=1, mc_episodes=0))
    assert not np.array_equal(c.arms["hg-dagger"].labels, a.arms["hg-dagger"].labels)


def test_cliff_makes_dagger_quadratic_in_cost() -> None:
    cfg = dataclasses.replace(
        TINY, horizons=(20, 40, 80), p_turn=0.0, cliff=True, cliff_offset=1, mc_episodes=0
    )
    res = run_horizon(dataclasses.replace(cfg, arms=("bc", "dagger"), seeds=1))
    assert res.arms["dagger"].cost_slope.slope > 1.7


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        HorizonConfig(horizons=(50,))
    with pytest.raises(ConfigError):
        HorizonConfig(epsilon=0.0)
    with pytest.raises(ConfigError):
        HorizonConfig(arms=("bc", "gail"))
    with pytest.raises(ConfigError):
        HorizonConfig(mc_horizons=(50, 70))
    assert HorizonConfig().episodes_for(50) * 50 == 20_000  # ≈ 5 slips per round at ε = 2.5e-4
    assert HorizonConfig(mc_horizons=(50, 1000)).mc_episodes_for(1000) == 500


# -- statistics -----------------------------------------------------------------------------


def test_loglog_slope_recovers_powers() -> None:
    T = np.array([50.0, 100, 200, 500, 1000])
    assert loglog_slope(T, 3e-4 * T**2) == pytest.approx(2.0)
    assert loglog_slope(T, 7e-2 * T) == pytest.approx(1.0)


def test_ols_interval_is_a_point_for_a_power_law_and_widens_with_curvature() -> None:
    T = np.array([50.0, 100, 200, 500, 1000])
    exact = ols_slope(T, 7e-2 * T, 0.95)
    assert exact.high - exact.low < 1e-9
    bent = ols_slope(T, T**2 / (1 + T / 300), 0.95)
    assert bent.high - bent.low > 0.1 and bent.low < bent.slope < bent.high
    assert math.isnan(ols_slope(T[:2], T[:2], 0.95).se)


def test_t_quantiles_and_chi2_tail() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    assert t_quantile(0.975, 3) == pytest.approx(3.18245, abs=1e-4)
    assert t_quantile(0.975, 30) == pytest.approx(2.04227, abs=1e-4)
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-5)
    assert chi2_sf(18.307, 10) == pytest.approx(0.05, abs=1e-4)


def test_bootstrap_slope_covers_the_truth_and_shrinks_with_episodes() -> None:
    rng = np.random.default_rng(0)
    T = (20, 40, 80)

    def fit(n: int) -> tuple[float, float]:
        samples = [rng.poisson(0.01 * t, size=n) for t in T]
        s = bootstrap_episodes_slope(T, samples, 400, 0.95, np.random.default_rng(1))
        assert s.low < 1.0 < s.high
        return s.high - s.low, s.se

    (w1, _), (w2, _) = fit(5_000), fit(80_000)
    assert w2 < 0.5 * w1


# -- the learner and the exact evaluator ----------------------------------------------------


def test_one_nn_on_centre_only_data_follows_the_road() -> None:
    obs = np.array([[0, -1], [0, 0], [0, 1]], dtype=np.float32)
    learner = TabularNearestNeighbor.fit(obs, LaneExpert().act(obs))
    queries = np.array([[d, c] for d in (-3, -1, 1, 3) for c in (-1, 0, 1)], dtype=np.float32)
    np.testing.assert_array_equal(learner.act(queries) - 1, queries[:, 1])  # steer = Δc
    # One recovery label per side is enough: the nearest neighbour extrapolates it.
    obs2 = np.array([[0, 0], [1, 0], [-1, 0]], dtype=np.float32)
    learner2 = TabularNearestNeighbor.fit(obs2, LaneExpert().act(obs2))
    far = np.array([[d, 0] for d in range(-5, 6)], dtype=np.float32)
    np.testing.assert_array_equal(learner2.act(far), LaneExpert().act(far))


def test_slipping_table_slips_to_each_other_action_at_rate_eps_over_2(tmp_path) -> None:
    table = np.zeros(33, dtype=np.int64)  # steer 0 (action 1) everywhere
    learner = SlippingTable(table, 0.3, seed=0)
    acts = np.concatenate([learner.act(np.zeros((1000, 2))) for _ in range(50)])
    assert set(np.unique(acts)) == {0, 1, 2}
    np.testing.assert_allclose(
        np.bincount(acts, minlength=3) / acts.size, [0.15, 0.7, 0.15], atol=0.01
    )
    learner.save(tmp_path / "t")
    again = SlippingTable.load(tmp_path / "t")
    assert again.epsilon == 0.3
    np.testing.assert_array_equal(again.table, table)


def test_exact_dp_matches_env_slips() -> None:
    """The gymnasium env slipping by itself and the exact DP agree (same kernel)."""
    eps, T, n = 0.05, 40, 400
    obs = np.array([[0, 0], [1, 0]], dtype=np.float32)  # a recovery on one side only
    policy = TabularNearestNeighbor.fit(obs, LaneExpert().act(obs))
    env = DriftCorridor(horizon=T, epsilon=eps)
    mistakes, cost = np.zeros(n), np.zeros(n)
    for i in range(n):
        o, _ = env.reset(seed=1000 + i)
        done = False
        while not done:
            o, r, term, trunc, info = env.step(int(policy.act(o)[0]))
            mistakes[i] += info["mistake"]
            cost[i] -= r
            done = term or trunc
    em, ec = exact_expectations(policy.tables, T, eps)
    for sample, exact in ((mistakes, em[0]), (cost, ec[0])):
        se = sample.std(ddof=1) / np.sqrt(n)
        assert abs(sample.mean() - exact) < 4 * se


def test_monte_carlo_through_the_loop_detects_a_wrong_rate() -> None:
    """The MC estimator is sensitive: at 2ε the same table is off by many standard errors."""
    table = np.zeros(33, dtype=np.int64)
    cfg = HorizonConfig(epsilon=0.02)
    m, _ = monte_carlo_episodes(table, cfg, 30, 4000, seed=0)
    se = m.std(ddof=1) / math.sqrt(len(m))
    right = exact_expectations(table[None], 30, 0.02)[0][0]
    wrong = exact_expectations(table[None], 30, 0.04)[0][0]
    assert abs(m.mean() - right) < 3 * se
    assert abs(m.mean() - wrong) > 10 * se


# -- the gymnasium envs and the expert ------------------------------------------------------


def test_env_passes_gymnasium_checker() -> None:
    check_env(DriftCorridor(epsilon=0.1, p_turn=0.2), skip_render_check=True)
    env = LANE.make_env()
    assert env.observation_space.shape == (2,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Discrete(3)
    frame = DriftCorridor(render_mode="rgb_array").render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.shape[2] == 3
    text = DriftCorridor(render_mode="ansi").render()
    assert isinstance(text, str) and "X" in text


def test_scalar_and_vector_dynamics_agree_everywhere() -> None:
    for cliff in (None, 2):
        for d, a, dc in itertools.product(range(-5, 6), (-1, 0, 1), (-1, 0, 1)):
            vec = int(lane_transition(np.array([d]), np.array([a]), np.array([dc]), 5, cliff)[0])
            assert next_offset(d, a, dc, 5, cliff) == vec


def test_vector_env_steps_like_single_envs_and_autoresets() -> None:
    n, T = 6, 7
    venv = DriftCorridorVector(n, horizon=T, cliff=True, cliff_offset=3)
    envs = [DriftCorridor(horizon=T, cliff=True, cliff_offset=3) for _ in range(n)]
    obs, _ = venv.reset(seed=0)
    singles = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)])
    np.testing.assert_array_equal(obs, singles)
    rng = np.random.default_rng(0)
    for t in range(T):
        actions = rng.integers(0, 3, size=n)
        obs, reward, term, trunc, infos = venv.step(actions)
        outs = [e.step(int(a)) for e, a in zip(envs, actions, strict=True)]
        expected_obs = np.stack([o[0] for o in outs])
        np.testing.assert_array_equal(reward, [o[1] for o in outs])
        np.testing.assert_array_equal(trunc, [o[3] for o in outs])
        assert not term.any()
        for key in ("mistake", "executed_steer", "expert_action", "cost"):
            src = infos["final_info"] if t == T - 1 else infos
            np.testing.assert_array_equal(src[key], [o[4][key] for o in outs])
        if t < T - 1:
            np.testing.assert_array_equal(obs, expected_obs)
    # Same-step autoreset: the last observation in final_obs, a fresh episode in obs.
    assert trunc.all() and infos["_final_obs"].all()
    np.testing.assert_array_equal(infos["final_obs"], expected_obs)
    np.testing.assert_array_equal(obs, np.zeros((n, 2)))


def test_vector_env_slips_only_where_the_learner_drives() -> None:
    venv = DriftCorridorVector(4, epsilon=1.0)
    venv.reset(seed=0, options={"learner_controlled": [True, True, False, False]})
    _, _, _, _, info = venv.step(np.ones(4, dtype=np.int64))
    np.testing.assert_array_equal(info["slipped"], [True, True, False, False])
    assert np.all(np.abs(info["offset"][:2]) == 1) and np.all(info["offset"][2:] == 0)


@pytest.mark.parametrize("p_turn", [0.0, 0.3])
def test_expert_keeps_the_centre_and_never_errs(p_turn: float) -> None:
    env = DriftCorridor(horizon=500, epsilon=0.5, p_turn=p_turn)
    expert = LaneExpert()
    obs, _ = env.reset(seed=3, options={"learner_controlled": False})
    turns = 0
    for _ in range(500):
        obs, reward, term, trunc, info = env.step(int(expert.act(obs)[0]))
        turns += obs[1] != 0
        assert info["offset"] == 0 and obs[0] == 0 and reward == 0.0
        assert not info["slipped"] and not info["mistake"]
        assert not info["learner_controlled"]
    assert trunc and not term
    assert (turns > 0) == (p_turn > 0)


def test_expert_is_batched_and_recovers_in_one_step() -> None:
    expert = LaneExpert()
    obs = np.array([[d, c] for d in range(-5, 6) for c in (-1, 0, 1)], dtype=np.float32)
    act = expert.act(obs)
    assert act.shape == (33,) and act.dtype == np.int64
    np.testing.assert_array_equal(act - 1, np.clip(obs[:, 1] - obs[:, 0], -1, 1))
    np.testing.assert_array_equal(act - 1, expert_steer(obs[:, 0], obs[:, 1]))
    env = DriftCorridor(epsilon=0.0)
    for d in (-1, 1):
        o, _ = env.reset(seed=0, options={"offset": d})
        o, *_ = env.step(int(expert.act(o)[0]))
        assert o[0] == 0


def test_a_slip_moves_the_car_only_when_the_learner_drives() -> None:
    env = DriftCorridor(epsilon=1.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(1)  # steer 0 at d = 0 ...
    assert info["slipped"] and info["mistake"]
    assert info["offset"] in (-1, 1) and info["executed_steer"] == info["offset"]
    assert reward == -1.0
    env.unwrapped.set_controller("expert")
    d = info["offset"]
    _, _, _, _, info = env.step(1 - d)  # the expert's correction, executed exactly
    assert not info["slipped"] and info["offset"] == 0


def test_vector_env_controller_flag() -> None:
    venv = LANE.make_vec_env(3)
    venv.reset(seed=0)
    venv.set_attr("learner_controlled", [False, False, False])
    assert venv.get_attr("learner_controlled") == (False, False, False)
    venv.call("set_controller", "learner")
    assert venv.get_attr("learner_controlled") == (True, True, True)
    venv.close()


# -- the headline run (slow) ----------------------------------------------------------------


@pytest.mark.slow
def test_headline_sweep_reproduces_the_benchmark() -> None:
    """The BENCHMARKS.md setting with one data seed (~3 minutes on 2 cores)."""
    res = run_horizon(HorizonConfig(seeds=1))
    bc = res.arms["bc"].mistakes_slope
    assert bc.slope == pytest.approx(1.958, abs=2e-3)
    assert 1.9 < bc.low < bc.slope < bc.high < 2.0
    for arm in ("dagger", "dagger-exp", "dagger-linear", "dart", "hg-dagger"):
        assert res.arms[arm].mistakes_slope.slope == pytest.approx(1.0, abs=5e-3), arm
    for quantity in ("mistakes", "cost"):
        ag = res.agreement(quantity)
        assert ag is not None and ag.passed, ag
    assert res.saturated is not None
    assert res.saturated.arms["bc"].mistakes_slope.slope == pytest.approx(1.430, abs=5e-3)
    sat_ag = res.saturated.agreement("mistakes")
    assert sat_ag is not None and sat_ag.passed, sat_ag


def test_the_configs_lane_width_is_the_lanes() -> None:
    """HorizonConfig (standard library only) restates the lane's width as a literal."""
    assert HorizonConfig().width == WIDTH
