"""DART (Laskey, Lee, Fox, Dragan & Goldberg, CoRL 2017, "DART: Noise Injection for Robust
Imitation Learning").

The expert demonstrates with noise injected into the actions it *executes*, so its
demonstrations visit the states a slightly-off learner would reach, while the dataset stores
its clean, intended actions (:class:`~protege.rollout.gates.NoisyExpertGate`). The learner
never drives. After each round the noise is set to the learner's error on the supervisor's
(noisy) state distribution, measured on states it was not trained on: the round-(r−1)
learner on round r−1's episodes. Continuous actions get Σ = the covariance of a* − π̂(s)
(``tools/noise.py`` in the paper's code); discrete ones a tremble ε = the disagreement rate
(the code's ``EpsSupervisor``). ``DARTConfig.final_error`` rescales Σ̂ to the paper's α, the
expected error of the final policy (a learner early on errs far more than the one it will
become); ``DARTConfig.noise_dims`` confines the noise, and the fit, to some action
dimensions (CarRacing: steering; the expert's brake sits at 0 and its gas often at 0 or 1, the
edges of the action box, so noise there is clipped to a one-sided push that slows every lap
rather than copying the learner's errors).

Example:
    >>> result = dart.run(task, "runs/dart/store", DAggerConfig(rounds=4), DARTConfig())
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from protege.algos import engine, rounds
from protege.algos.engine import MethodSpec, RoundContext
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import DARTConfig
from protege.data.obs import take
from protege.errors import ConfigError
from protege.policies.policy import Policy
from protege.rollout.gates import Gate, NoisyExpertGate
from protege.tasks.base import Task


def learner_error(
    learner: Any,
    obs: np.ndarray,
    actions: np.ndarray,
    discrete: bool,
    dims: tuple[int, ...] | None = None,
) -> Any:
    """Disagreement rate (discrete) or error covariance (continuous, over ``dims``: all if
    None) of ``learner`` on labels."""
    pred = np.asarray(learner.act(obs))
    if discrete:
        return float(np.mean(pred != np.asarray(actions)))
    err = (np.asarray(actions, np.float64) - pred).reshape(len(pred), -1)
    if dims is not None:
        err = err[:, list(dims)]
    return np.atleast_2d(err.T @ err / max(len(err), 1))


def scaled(err: Any, dc: DARTConfig, discrete: bool) -> Any:
    """The noise from a fitted error: rescaled to trace α = ``final_error`` if set (the
    paper's α·Σ̂/tr Σ̂), else times ``noise_scale``; a tremble is capped at 1."""
    if dc.final_error is not None:
        if discrete:
            return min(1.0, dc.final_error)
        trace = float(np.trace(err))
        return dc.final_error * err / trace if trace > 0 else np.zeros_like(err)
    return min(1.0, dc.noise_scale * err) if discrete else dc.noise_scale * err


def embed(cov: np.ndarray, dims: tuple[int, ...] | None, act_dim: int) -> np.ndarray:
    """``cov`` over ``dims`` as an ``act_dim`` × ``act_dim`` covariance (zeros elsewhere)."""
    if dims is None:
        return cov
    full = np.zeros((act_dim, act_dim))
    full[np.ix_(dims, dims)] = cov
    return full


def noise_for_round(ctx: RoundContext, dc: DARTConfig, discrete: bool) -> Any:
    """The noise of round ``ctx.round``: the previous learner's error on the previous round.

    Continuous actions: a covariance over ``dc.noise_dims`` (a per-dimension variance
    vector before any error is known), zero on the other dimensions.
    """
    dims = None if discrete else dc.noise_dims
    shape = ctx.task.spaces[1].shape
    act_dim = 0 if discrete or shape is None else int(np.prod(shape))
    if dims is not None and max(dims) >= act_dim:
        raise ConfigError(
            f"DARTConfig.noise_dims {dims}: the action of {ctx.task.name} has {act_dim} dimensions"
        )
    initial: Any = dc.initial_noise
    if dims is not None:
        initial = np.zeros(act_dim)
        initial[list(dims)] = dc.initial_noise
    if not dc.fit_noise or ctx.previous is None or ctx.data is None:
        return initial
    data = ctx.data
    step_round = np.repeat(data.rounds, data.episode_lengths)
    mask = data.labeled & (step_round == ctx.round - 1)
    if not mask.any():
        return initial
    err = learner_error(ctx.previous, take(data.obs, mask), data.actions[mask], discrete, dims)
    noise = scaled(err, dc, discrete)
    return noise if discrete else embed(noise, dims, act_dim)


def make_gate(task: Task, ctx: RoundContext, dc: DARTConfig) -> NoisyExpertGate:
    _, space = task.spaces
    seed = rounds.derive_seed(ctx.config.seed, 1, ctx.round)
    if isinstance(space, gym.spaces.Discrete):
        eps = float(noise_for_round(ctx, dc, True))
        return NoisyExpertGate(epsilon=eps, n_actions=int(space.n), seed=seed)
    assert isinstance(space, gym.spaces.Box)
    cov = noise_for_round(ctx, dc, False)
    return NoisyExpertGate(covariance=cov, low=space.low, high=space.high, seed=seed)


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: DARTConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """DART through :func:`protege.algos.engine.run`: every round is noisy demonstrations."""
    dc = method_config or DARTConfig()

    def factory(ctx: RoundContext) -> Gate:
        return make_gate(task, ctx, dc)

    kwargs.setdefault("method", "dart")
    kwargs.setdefault("settings", dc)
    return engine.run(
        task, make_policy or engine.policy_factory(task), store_path, config, factory, **kwargs
    )


SPEC = MethodSpec("dart", "DART", DARTConfig, run, Policy.load)
