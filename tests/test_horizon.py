"""The horizon experiment: BC's E[mistakes] ~ εT², DAgger's ~ εT (Ross, Gordon & Bagnell 2011).

Also the DriftCorridor env and its scripted expert at the gymnasium level.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from protege.errors import ConfigError
from protege.experiments.horizon import (
    ARMS,
    HorizonConfig,
    HorizonResult,
    TabularNearestNeighbor,
    exact_expectations,
    loglog_slope,
    run_horizon,
)
from protege.tasks.lane import LANE, DriftCorridor, LaneExpert, expert_steer

EPS = 2.5e-4


@pytest.fixture(scope="module")
def result() -> HorizonResult:
    return run_horizon(HorizonConfig(epsilon=EPS, mc_episodes=4000, seed=0))


# -- the headline slopes (exact DP, zero sampling noise) -------------------------------------


def test_bc_is_quadratic(result: HorizonResult) -> None:
    fit = result.arms["bc"].mistakes_slope
    assert 1.85 <= fit.slope <= 2.05
    assert 1.85 <= fit.low <= fit.high <= 2.05


@pytest.mark.parametrize("arm", ["dagger", "dagger-exp", "dagger-linear"])
def test_dagger_is_linear(result: HorizonResult, arm: str) -> None:
    fit = result.arms[arm].mistakes_slope
    assert 0.95 <= fit.slope <= 1.05
    assert 0.95 <= fit.low <= fit.high <= 1.05


def test_dart_is_linear(result: HorizonResult) -> None:
    assert result.config.epsilon_dart == 0.05
    fit = result.arms["dart"].mistakes_slope
    assert 0.95 <= fit.slope <= 1.05
    # Offline, like BC: DART uses exactly the demos' labels.
    np.testing.assert_array_equal(result.arms["dart"].labels, result.arms["bc"].labels)


def test_dagger_after_coverage_errs_only_by_slips(result: HorizonResult) -> None:
    T = np.asarray(result.horizons, dtype=float)
    np.testing.assert_allclose(result.arms["dagger"].mistakes, EPS * T, rtol=1e-9)
    assert np.all(result.arms["bc"].mistakes > 20 * EPS * T)


def test_hg_dagger_needs_far_fewer_labels_at_comparable_cost(result: HorizonResult) -> None:
    hg, dagger, bc = result.arms["hg-dagger"], result.arms["dagger"], result.arms["bc"]
    assert np.all(hg.mean_labels < 0.25 * dagger.mean_labels)
    # Beyond the shared demos, HG-DAgger labels only the takeover steps (≈ one per slip).
    extra_hg = hg.mean_labels - bc.mean_labels
    extra_dagger = dagger.mean_labels - bc.mean_labels
    assert np.all(extra_hg > 0)
    assert np.all(extra_hg < 1e-3 * extra_dagger)
    np.testing.assert_allclose(hg.cost, dagger.cost, rtol=0.1)
    assert 0.95 <= hg.mistakes_slope.slope <= 1.05


def test_monte_carlo_agrees_with_exact(result: HorizonResult) -> None:
    for arm in result.arms.values():
        assert arm.mc_mistakes is not None and arm.mc_mistakes_se is not None
        assert arm.mc_cost is not None and arm.mc_cost_se is not None
        for mc, se, exact in (
            (arm.mc_mistakes, arm.mc_mistakes_se, arm.exact_mistakes[0]),
            (arm.mc_cost, arm.mc_cost_se, arm.exact_cost[0]),
        ):
            assert np.all(se > 0)
            z = (mc - exact) / se
            assert np.all(np.abs(z) < 4.0), (arm.name, z)


def test_bc_saturates_when_eps_t_is_large(result: HorizonResult) -> None:
    sat = result.saturated
    assert sat is not None and sat.config.epsilon == 1e-2
    bc = sat.arms["bc"].mistakes_slope.slope
    assert bc < 1.6
    assert bc < result.arms["bc"].mistakes_slope.slope - 0.4
    assert 0.95 <= sat.arms["dagger"].mistakes_slope.slope <= 1.05


def test_report_and_plot(result: HorizonResult, tmp_path) -> None:
    text = result.to_markdown()
    for arm in ARMS:
        assert f"| {arm} |" in text
    assert "ε = 0.01" in text  # the saturated section
    out = result.plot(tmp_path / "horizon.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = result.to_dict()
    assert d["arms"]["bc"]["mistakes_slope"]["slope"] == result.arms["bc"].mistakes_slope.slope


# -- determinism, seeds and knobs -----------------------------------------------------------

SMALL = HorizonConfig(
    horizons=(50, 100, 200),
    seeds=3,
    mc_episodes=300,
    p_turn=0.2,
    saturated_epsilon=None,
    bootstrap=200,
)


def test_same_seed_gives_identical_numbers() -> None:
    a, b = run_horizon(SMALL), run_horizon(SMALL)
    da, db = a.to_dict(), b.to_dict()
    da.pop("seconds"), db.pop("seconds")
    assert da == db
    for name in ARMS:
        np.testing.assert_array_equal(a.arms[name].exact_mistakes, b.arms[name].exact_mistakes)
        np.testing.assert_array_equal(a.arms[name].labels, b.arms[name].labels)
    c = run_horizon(dataclasses.replace(SMALL, seed=1))
    assert not np.array_equal(c.arms["hg-dagger"].labels, a.arms["hg-dagger"].labels)


def test_cliff_makes_dagger_quadratic_in_cost() -> None:
    cfg = dataclasses.replace(
        SMALL, p_turn=0.0, cliff=True, cliff_offset=1, mc_episodes=0, arms=("bc", "dagger")
    )
    res = run_horizon(cfg)
    assert res.arms["dagger"].cost_slope.slope > 1.8


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        HorizonConfig(horizons=(50,))
    with pytest.raises(ConfigError):
        HorizonConfig(epsilon=0.0)
    with pytest.raises(ConfigError):
        HorizonConfig(arms=("bc", "gail"))


def test_loglog_slope_recovers_powers() -> None:
    T = np.array([50.0, 100, 200, 500, 1000])
    assert loglog_slope(T, 3e-4 * T**2) == pytest.approx(2.0)
    assert loglog_slope(T, 7e-2 * T) == pytest.approx(1.0)


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


def test_exact_dp_matches_env_rollouts() -> None:
    """Roll the BC policy out in the gymnasium env itself; compare with the exact DP."""
    eps, T, n = 0.05, 40, 400
    obs = np.array([[0, 0]], dtype=np.float32)
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


# -- the gymnasium env and the expert -------------------------------------------------------


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
