"""The interactive methods' own settings, one dataclass per method (``--method``'s flags).

What every method shares (rounds, episodes, training) is
:class:`~protege.configs.interactive.DAggerConfig`; plain DAgger has nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protege.configs.checks import MAX_SIZE, MAX_STEPS, check_float, check_int, check_sizes
from protege.errors import ConfigError


@dataclass
class SupervisorConfig:
    """HG-DAgger's simulated supervisor: when it takes over and hands back (see
    :class:`~protege.rollout.gates_interactive.SimulatedSupervisorGate`)."""

    use_risk: bool = True
    """Take over outside the task's safe set (:attr:`protege.tasks.base.Task.risk`)."""
    disagreement_threshold: float | None = 0.5
    """Take over when the novice's mean disagreement over ``window`` steps exceeds it (1/0
    per step for discrete actions, L2 distance for continuous). None: never."""
    window: int = 10
    """Steps over which the novice's disagreement is averaged."""
    hand_back: float = 0.7
    """Hand back once the risk is at most this (LunarLander's expert is below 0.7 in 75% of
    its own states)."""
    min_takeover: int = 10
    """Fewest steps the supervisor drives once it takes over."""
    risk: Callable[[Any, Any], Any] | None = None
    """Overrides the task's own risk score (a
    :data:`~protege.rollout.gates_interactive.RiskScore`; Python only)."""

    def __post_init__(self) -> None:
        own = "SupervisorConfig"
        if self.disagreement_threshold is not None:
            check_float(own, "disagreement_threshold", self.disagreement_threshold, 0.0)
        check_int(own, "window", self.window, 1, MAX_STEPS)
        check_float(own, "hand_back", self.hand_back)
        check_int(own, "min_takeover", self.min_takeover, 0, MAX_STEPS)


@dataclass
class EnsembleConfig:
    """EnsembleDAgger's gate: χ (variance) and τ (discrepancy), hand-set as in the paper."""

    members: int = 5
    """Policies in the ensemble (ensemble and thrifty)."""
    variance_threshold: float = 0.02
    """χ: the expert drives where the ensemble's action variance exceeds it."""
    discrepancy_threshold: float | None = None
    """τ: the expert drives where the novice's discrepancy exceeds it; needs an expert query
    at every step. None: variance only (queries only where the expert drives)."""
    label_all: bool = False
    """Store every queried state as a label (the paper); False: only expert-driven steps."""
    bootstrap: bool = True
    """Train each member on its own bootstrap resample of the episodes (else all on all)."""

    def __post_init__(self) -> None:
        own = "EnsembleConfig"
        check_int(own, "members", self.members, 1, 1024)
        check_float(own, "variance_threshold", self.variance_threshold, 0.0)
        if self.discrepancy_threshold is not None:
            check_float(own, "discrepancy_threshold", self.discrepancy_threshold, 0.0)


@dataclass
class ThriftyConfig:
    """ThriftyDAgger's settings (defaults from the paper's code unless noted)."""

    alpha_h: float = 0.01
    """Target rate of robot-to-human context switches (``--targetrate``)."""
    members: int = 5
    """Policies in the robot's ensemble (novelty is their action variance)."""
    use_risk: bool = True
    """False: the novelty-only ablation (no Q network)."""
    gamma: float = 0.9999
    """Discount of the success critic Q (the discounted probability of success)."""
    q_steps: int = 2000
    """Q gradient steps per round. The paper's code takes 12,500 (5 × 5 × 500) at batch 50,
    more arithmetic than these 2,000 at batch 256 (BENCHMARKS.md, "ThriftyDAgger's critic at
    the paper's batch")."""
    q_batch: int = 256
    """The paper uses 50. At the demo's settings, 50 made ThriftyDAgger 1.5× faster (median CPU
    time) but reached 95% of the expert on 3 of 5 seeds instead of 4, with final returns 22
    lower on average (BENCHMARKS.md, "ThriftyDAgger's critic at the paper's batch"), so
    protege keeps 256."""
    q_lr: float = 1e-3
    """Learning rate of the success critic."""
    pos_fraction: float = 0.1
    """Each Q batch holds at least this fraction of success (reward 1) transitions."""
    polyak: float = 0.995
    """Averaging rate of the critic's target network."""
    q_hidden: tuple[int, ...] = (256, 256)
    """Widths of the success critic's MLP."""
    min_calibration: int = 25
    """Re-calibrate only from more than this many autonomous states."""
    calibrate_every: int = 1
    """Episodes collected in parallel between re-calibrations of the thresholds. 1 (the
    paper): one episode at a time, re-calibrated after every episode. k > 1: k at a time,
    re-calibrated after every batch (faster on several cores; a crash loses up to k
    episodes). Replaces ``DAggerConfig.n_envs`` in :func:`protege.algos.thrifty.run`."""
    bootstrap: bool = True
    """Train each member on its own bootstrap resample of the episodes (else all on all)."""

    def __post_init__(self) -> None:
        own = "ThriftyConfig"
        check_int(own, "members", self.members, 1, 1024)
        check_int(own, "q_steps", self.q_steps, 0, MAX_STEPS)
        check_int(own, "q_batch", self.q_batch, 1, 2**20)
        check_float(own, "q_lr", self.q_lr, 0.0, lo_open=True)
        check_float(own, "polyak", self.polyak, 0.0, 1.0)
        check_sizes(own, "q_hidden", self.q_hidden)
        check_int(own, "min_calibration", self.min_calibration, 0, MAX_STEPS)
        check_int(own, "calibrate_every", self.calibrate_every, 1, MAX_SIZE)
        check_float(own, "alpha_h", self.alpha_h, 0.0, 1.0, lo_open=True, hi_open=True)
        check_float(own, "pos_fraction", self.pos_fraction, 0.0, 1.0, hi_open=True)
        check_float(own, "gamma", self.gamma, 0.0, 1.0, lo_open=True)


@dataclass
class DARTConfig:
    """DART's noise: where it starts and how it follows the learner's error."""

    initial_noise: float = 0.1
    """Noise before any learner error is known: tremble ε, or variance per action dim."""
    fit_noise: bool = True
    """Re-fit the noise each round to the learner's held-out error (else keep the initial)."""
    noise_scale: float = 1.0
    """Multiplies the fitted noise (ignored when ``final_error`` is set)."""
    final_error: float | None = None
    """The paper's α: the expected error of the final policy, as a per-step squared error
    summed over the noisy action dimensions (for a tremble: the disagreement rate). If set,
    each fitted Σ̂ is rescaled to this trace (α·Σ̂/tr Σ̂; ε = α), so the error's shape comes
    from the learner and its size from the policy it will become; None: Σ̂ × noise_scale."""
    noise_dims: tuple[int, ...] | None = None
    """Continuous actions: the action dimensions that get noise, and whose error is fitted
    (e.g. ``(0,)``, steering alone in CarRacing); the others execute the expert's action
    exactly. None: every dimension."""

    def __post_init__(self) -> None:
        check_float("DARTConfig", "initial_noise", self.initial_noise, 0.0)
        check_float("DARTConfig", "noise_scale", self.noise_scale, 0.0)
        if self.final_error is not None:
            check_float("DARTConfig", "final_error", self.final_error, 0.0)
        if self.noise_dims is not None:
            dims = tuple(self.noise_dims)
            if not dims or len(set(dims)) != len(dims):
                raise ConfigError(
                    f"DARTConfig.noise_dims must list distinct action dimensions, got {dims}"
                )
            for i, d in enumerate(dims):
                check_int("DARTConfig", f"noise_dims[{i}]", d, 0, MAX_SIZE)
            self.noise_dims = dims


@dataclass
class SmileConfig:
    """SMILe's mixing rate (Ross & Bagnell 2010)."""

    alpha: float = 0.1
    """α: each round moves this fraction of the expert's remaining weight to the new policy
    (after n rounds the expert weighs (1 − α)^n, policy j weighs α(1 − α)^(j−1)); the
    paper's experiments use 0.1."""

    def __post_init__(self) -> None:
        check_float("SmileConfig", "alpha", self.alpha, 0.0, 1.0, lo_open=True)


@dataclass
class AggreVaTeConfig:
    """AggreVaTe's exploration and cost-to-go estimates (Ross & Bagnell 2014)."""

    explore_actions: int = 3
    """Continuous actions: actions tried at each sampled state, the expert's own first, then
    Gaussian perturbations of it. Discrete actions: ignored, every action is tried."""
    explore_std: float = 0.3
    """Continuous actions: the perturbations' standard deviation, as a fraction of each
    action dimension's half range."""
    completion_horizon: int | None = None
    """The expert completes each tried action for at most this many steps after it (None:
    to the end of the episode, the paper's cost-to-go)."""

    def __post_init__(self) -> None:
        own = "AggreVaTeConfig"
        check_int(own, "explore_actions", self.explore_actions, 1, 1024)
        check_float(own, "explore_std", self.explore_std, 0.0)
        if self.completion_horizon is not None:
            check_int(own, "completion_horizon", self.completion_horizon, 1, MAX_STEPS)
