"""DART's noise: fitted to the learner's held-out error, confined to chosen action dimensions,
rescaled to the paper's α, and executed exactly where it is zero."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from protege.algos import dart
from protege.algos.engine import RoundContext
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import DARTConfig
from protege.errors import ConfigError
from protege.rollout.gates import NoisyExpertGate, StepView

ACTIONS = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.ones(3, np.float32))
"""CarRacing's action box: steer, gas, brake."""
TASK = SimpleNamespace(name="three-dims", spaces=(gym.spaces.Box(-1, 1, (2,)), ACTIONS))

# Round 0: 4 steps the learner gets badly wrong; round 1: 4 steps with steering errors ±0.2
# and gas errors ±0.5. Noise for round 2 must come from round 1 alone.
ERRORS = np.array(
    [[3, 3, 3]] * 4 + [[0.2, 0.5, 0.0], [-0.2, -0.5, 0.0], [0.2, -0.5, 0.0], [-0.2, 0.5, 0.0]]
)


class OffByErrors:
    """A learner whose action on observation ``[k, 0]`` is the label minus ``ERRORS[k]``."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        return -ERRORS[np.asarray(obs)[:, 0].astype(int)].astype(np.float32)


def context(round: int, previous: Any | None = "learner") -> RoundContext:
    """Round ``round`` after rounds 0 and 1; ``previous`` the learner measured (default
    :class:`OffByErrors`)."""
    if previous == "learner":
        previous = OffByErrors()
    data = SimpleNamespace(
        obs=np.stack([np.arange(8), np.zeros(8)], axis=1).astype(np.float32),
        actions=np.zeros((8, 3), np.float32),
        labeled=np.ones(8, bool),
        rounds=np.array([0, 1]),
        episode_lengths=np.array([4, 4]),
    )
    cfg = DAggerConfig(rounds=3)
    return RoundContext(TASK, round, None, data, cfg, 1.0, previous)  # type: ignore[arg-type]


def test_fitted_noise_is_the_error_covariance_on_the_previous_round_only() -> None:
    cov = dart.noise_for_round(context(2), DARTConfig(), discrete=False)
    np.testing.assert_allclose(np.diag(cov), [0.04, 0.25, 0.0], atol=1e-7)
    assert cov[0, 1] == pytest.approx(0.0, abs=1e-7)  # the signs are balanced
    doubled = dart.noise_for_round(context(2), DARTConfig(noise_scale=2.0), discrete=False)
    np.testing.assert_allclose(doubled, 2 * cov)


def test_noise_dims_confine_the_fit_and_the_initial_noise() -> None:
    dc = DARTConfig(initial_noise=0.02, noise_dims=(0,))
    first = dart.noise_for_round(context(1, previous=None), dc, discrete=False)
    np.testing.assert_array_equal(first, [0.02, 0.0, 0.0])
    cov = dart.noise_for_round(context(2), dc, discrete=False)
    expected = np.zeros((3, 3))
    expected[0, 0] = 0.04  # the gas error (0.25) is not fitted
    np.testing.assert_allclose(cov, expected, atol=1e-7)
    with pytest.raises(ConfigError, match="noise_dims"):
        dart.noise_for_round(context(2), DARTConfig(noise_dims=(3,)), discrete=False)
    with pytest.raises(ConfigError, match="noise_dims"):
        DARTConfig(noise_dims=(0, 0))


def test_final_error_rescales_the_fitted_covariance_to_alpha() -> None:
    cov = dart.noise_for_round(context(2), DARTConfig(final_error=0.01), discrete=False)
    assert np.trace(cov) == pytest.approx(0.01)
    np.testing.assert_allclose(np.diag(cov), 0.01 * np.array([0.04, 0.25, 0.0]) / 0.29, atol=1e-9)
    steer = dart.noise_for_round(
        context(2), DARTConfig(final_error=0.003, noise_dims=(0,)), discrete=False
    )
    np.testing.assert_allclose(np.diag(steer), [0.003, 0.0, 0.0], atol=1e-12)
    # A tremble: ε = α.
    assert dart.scaled(0.4, DARTConfig(final_error=0.05), discrete=True) == 0.05


def test_dimensions_without_noise_execute_the_clean_action_exactly() -> None:
    gate = NoisyExpertGate(
        covariance=np.diag([0.04, 0.0, 0.0]), low=ACTIONS.low, high=ACTIONS.high, seed=0
    )
    clean = np.tile(np.array([0.1, 0.5, 0.0], np.float32), (64, 1))
    step = StepView(np.zeros((64, 2)), {}, None, lambda: clean, np.zeros(64, int))  # type: ignore[arg-type]
    decision = gate.decide(step)
    assert decision.executed is not None and decision.label.all()
    np.testing.assert_array_equal(decision.executed[:, 1:], clean[:, 1:])
    assert np.std(decision.executed[:, 0]) == pytest.approx(0.2, rel=0.3)
    assert gate.thresholds() == {"noise_var_0": 0.04, "noise_var_1": 0.0, "noise_var_2": 0.0}
