"""Gates decide, at every step and for every sub-env, who acts and whether to keep a label.

A gate sees the learner's proposed action and a lazy handle on the expert: calling
``step.expert(mask)`` asks the expert about the sub-envs in ``mask`` only, and every such
query is counted. So a gate that labels only takeover states pays only for those. Every gate
subclasses :class:`Gate`, whose docstring is the contract with the rollout loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from protege.configs.interactive import parse_beta
from protege.data.obs import n_rows, take
from protege.errors import ConfigError
from protege.experts.base import Expert, check_actions


class LazyExpert:
    """Asks the wrapped expert only for the sub-envs a gate needs, at most once per step."""

    def __init__(self, expert: Expert | None, action_space: gym.Space | None = None):
        self.expert = expert
        self.action_space = action_space
        """When given, every answer is checked to lie in it (:func:`check_actions`)."""
        self.queries = 0
        self._obs: np.ndarray | None = None
        self._infos: dict[str, Any] | None = None
        self._actions: np.ndarray | None = None
        self._asked = np.zeros(0, bool)
        self._active = np.zeros(0, bool)

    def begin_step(
        self,
        obs: np.ndarray,
        infos: dict[str, Any],
        template: np.ndarray,
        active: np.ndarray | None = None,
    ) -> None:
        """A new step. ``active`` (N,) bool: sub-envs still collecting episodes; the expert is
        never asked about the others (they only keep stepping until the batch is done)."""
        self._obs, self._infos = obs, infos
        self._actions = np.zeros_like(template)
        n = n_rows(obs)
        self._asked = np.zeros(n, bool)
        self._active = np.ones(n, bool) if active is None else np.asarray(active, bool)

    @property
    def active(self) -> np.ndarray:
        """(N,) bool: the sub-envs still collecting; the expert is never asked about others."""
        return self._active

    @property
    def asked(self) -> np.ndarray:
        """(N,) bool: the sub-envs the expert has been asked about this step."""
        return self._asked

    @property
    def actions(self) -> np.ndarray:
        """(N, ...) the expert's actions this step where :attr:`asked`, zeros elsewhere."""
        assert self._actions is not None, "begin_step first"
        return self._actions

    def __call__(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Expert actions for all N sub-envs; only those in ``mask`` (and active) are computed
        and counted. Rows not computed are zeros."""
        assert self._obs is not None and self._actions is not None
        if self.expert is None:
            raise ValueError("this rollout has no expert to ask")
        n = n_rows(self._obs)
        mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
        new = mask & ~self._asked & self._active
        if new.any():
            idx = np.flatnonzero(new)
            sub_infos = _select_infos(self._infos, idx, n)
            answer = self.expert.act(take(self._obs, idx), sub_infos)
            if self.action_space is not None:
                answer = check_actions(self.expert, answer, self.action_space)
            self._actions[idx] = answer
            self._asked |= new
            self.queries += len(idx)
        return self._actions


def _select_infos(infos: dict[str, Any] | None, idx: np.ndarray, n: int) -> dict[str, Any]:
    """The vector env's batched info dict restricted to the sub-envs ``idx``."""
    if not infos:
        return {}
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n:
            out[key] = value[idx]
        elif isinstance(value, dict):
            out[key] = _select_infos(value, idx, n)
        else:
            out[key] = value
    return out


@dataclass
class StepView:
    """What a gate may look at."""

    obs: Any
    """(N, ...) observations, or a dict of parts (:mod:`protege.data.obs`): count them with
    ``n_rows``, slice them with ``take``."""
    infos: dict[str, Any]
    learner_action: np.ndarray | None
    """(N, ...) the learner's proposal, or None when there is no learner."""
    expert: LazyExpert
    t: np.ndarray
    """(N,) int: step index within each sub-env's current episode."""


@dataclass
class Decision:
    expert_acts: np.ndarray
    """(N,) bool: execute the expert's action in these sub-envs (else the learner's)."""
    label: np.ndarray
    """(N,) bool: store the expert's action as a training label in these sub-envs."""
    executed: np.ndarray | None = None
    """Optional (N, ...) action to execute where ``expert_acts`` instead of the clean expert
    action (DART executes a noisy one and stores the clean one)."""


class Gate(ABC):
    """Decides, at every step and for every sub-env, who acts and whether the expert's action
    is stored as a training label. The contract with the rollout loop
    (:func:`protege.rollout.loop.rollout`):

    * **Episodes.** After the vector env's first reset the loop calls ``begin_episode(i)`` for
      every sub-env ``i = 0 .. N-1`` in order. After a step in which sub-env ``i``'s episode
      ended (the vector env has already started the next one), the loop first tells its
      observers that the episode ended, then calls ``begin_episode(i)``, for the finished
      sub-envs in ascending order; also for sub-envs past their quota of episodes, which keep
      stepping until the whole batch is done. Per-episode state (who drives, counters, a
      random generator) is kept by sub-env index. One gate may serve several rollouts (a
      round's batches); each starts with ``begin_episode(i)`` for every ``i``.
    * **Steps.** ``decide(step)`` is called once per step for all N sub-envs at once
      (:class:`StepView`: the observations and infos, the learner's proposal or None, the lazy
      expert and each sub-env's step index) and must return a :class:`Decision`: (N,) bool
      ``expert_acts`` and ``label``, and optionally the (N, ...) ``executed`` action to run
      where the expert acts. Rows of sub-envs past their quota (``step.expert.active`` False)
      are stepped but never counted, recorded or asked about.
    * **The expert is asked lazily.** ``step.expert(mask)`` computes the expert's actions for
      the active rows in ``mask`` only, at most once per row and step, and counts each row as
      an expert query. A gate asks for what its decision needs; after ``decide`` the loop asks
      for the rows where ``expert_acts | label`` (and where an observer needs the expert), so
      a gate need not ask for the rows it hands to the expert.

    Optional hooks, which do nothing by default:

    * ``seed_episode(i, seed)``: pin the random draws of sub-env ``i``'s current episode.
      A round engine calls it right after ``begin_episode(i)`` with a seed derived from
      (seed, round, episode index), so a resumed run replays the same draws.
    * ``episode_extras(i)``: numbers stored with sub-env ``i``'s finished episode (counters,
      thresholds). Read after the episode's last ``decide`` and before the next
      ``begin_episode(i)``.
    * ``beta``: for a β-mixing gate, the probability that the expert's action is executed at
      a step; a round's row reports it. None for other gates.
    * ``thresholds()``: the gate's thresholds as they stand; a round's row reports them.
    """

    beta: float | None = None
    """β of a β-mixing gate (:class:`BetaMixture`), None for other gates."""

    def begin_episode(self, env_index: int) -> None:  # noqa: B027 (optional hook)
        """A new episode starts in sub-env ``env_index``."""

    @abstractmethod
    def decide(self, step: StepView) -> Decision:
        """Who acts in each sub-env this step, and where the expert's action is a label."""

    def seed_episode(self, env_index: int, seed: int) -> None:  # noqa: B027 (optional hook)
        """Pin the random draws of sub-env ``env_index``'s current episode to ``seed``."""

    def episode_extras(self, env_index: int) -> dict[str, float]:
        """Numbers to store with sub-env ``env_index``'s episode, which has just ended."""
        return {}

    def thresholds(self) -> dict[str, float]:
        """The gate's thresholds as they stand (reported in each round's row)."""
        return {}


class ExpertGate(Gate):
    """The expert acts and labels every step: collecting demonstrations."""

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        return Decision(expert_acts=np.ones(n, bool), label=np.ones(n, bool))


class LearnerGate(Gate):
    """The learner acts every step. With ``label=True`` the expert labels every visited state
    (DAgger with β = 0, or evaluation measuring disagreement along the learner's own states)."""

    def __init__(self, label: bool = False):
        self.label = label

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        return Decision(expert_acts=np.zeros(n, bool), label=np.full(n, self.label))


# ------------------------------------------------------------------------------ β-mixing
class BetaSchedule(Protocol):
    """β for a round: the probability that the expert's action is executed at a step."""

    def __call__(self, round: int) -> float: ...


@dataclass(frozen=True)
class IndicatorBeta:
    """β = 1 in round 0 (the demonstrations), 0 afterwards: the parameter-free schedule Ross,
    Gordon & Bagnell (2011) report often works best."""

    def __call__(self, round: int) -> float:
        return 1.0 if round == 0 else 0.0


@dataclass(frozen=True)
class ExponentialBeta:
    """β = p**round (Ross et al. 2011 suggest β_i = p^(i−1) with β_1 = 1; round 0 is their i=1)."""

    p: float = 0.5

    def __call__(self, round: int) -> float:
        return float(self.p**round)


@dataclass(frozen=True)
class LinearBeta:
    """β ramps down linearly from 1 in round 0 to 0 at ``rampdown_rounds`` (the ``imitation``
    package's default ``LinearBetaSchedule(15)``)."""

    rampdown_rounds: int = 15

    def __call__(self, round: int) -> float:
        return float(min(1.0, max(0.0, (self.rampdown_rounds - round) / self.rampdown_rounds)))


def beta_schedule(spec: str | BetaSchedule) -> BetaSchedule:
    """Parse ``"indicator"``, ``"exponential:0.5"`` (or ``"exp:0.5"``) or ``"linear:15"``
    (see :func:`protege.configs.interactive.parse_beta`)."""
    if not isinstance(spec, str):
        return spec
    name, arg = parse_beta(spec)
    if name == "exponential":
        return ExponentialBeta(arg)
    if name == "linear":
        return LinearBeta(int(arg))
    return IndicatorBeta()


class _PerEpisodeRandom(Gate):
    """One generator per sub-env, re-seeded at every episode.

    ``seed_episode(i, s)`` pins sub-env i's current episode to seed ``s`` (DAgger derives it
    from (seed, round, episode index) so a resumed run replays the same draws); otherwise
    episode k of sub-env i draws from ``SeedSequence([seed, i, k])``.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._rngs: dict[int, np.random.Generator] = {}
        self._episodes: dict[int, int] = {}

    def begin_episode(self, env_index: int) -> None:
        k = self._episodes.get(env_index, 0)
        self._episodes[env_index] = k + 1
        self._rngs[env_index] = np.random.default_rng([self.seed, env_index, k])

    def seed_episode(self, env_index: int, seed: int) -> None:
        self._rngs[env_index] = np.random.default_rng(seed)

    def rng(self, env_index: int) -> np.random.Generator:
        if env_index not in self._rngs:
            self.begin_episode(env_index)
        return self._rngs[env_index]


class BetaMixture(_PerEpisodeRandom):
    """DAgger's mixture policy π_i = β π* + (1−β) π̂_i (Ross, Gordon & Bagnell 2011).

    Drawn per step and per sub-env (as the ``imitation`` package does): the expert's action is
    executed with probability β, the learner's otherwise, and the expert labels *every*
    visited state, so every step costs one expert query.

    Example:
        >>> gate = BetaMixture(beta_schedule("linear:15")(round), seed=0)
    """

    def __init__(self, beta: float, seed: int = 0):
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"β must be in [0, 1], got {beta}")
        super().__init__(seed)
        self.beta = float(beta)

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        u = np.array([self.rng(i).random() for i in range(n)])
        return Decision(expert_acts=u < self.beta, label=np.ones(n, bool))


class NoisyExpertGate(_PerEpisodeRandom):
    """DART (Laskey, Lee, Fox, Dragan & Goldberg 2017): the expert demonstrates with noise
    injected into the *executed* action while its clean action is stored as the label.

    Continuous actions: ``a + N(0, covariance)`` clipped to ``[low, high]`` (``covariance``
    a scalar variance, a per-dimension vector or a full matrix; dimensions of zero variance
    execute the clean action exactly). Discrete actions: with
    probability ``epsilon`` a uniformly random action is executed (DART's ``EpsSupervisor``,
    the analogue of a trembling hand). Every step is labeled.

    Example:
        >>> gate = NoisyExpertGate(covariance=0.05, low=space.low, high=space.high, seed=0)
        >>> gate = NoisyExpertGate(epsilon=0.1, n_actions=4, seed=0)
    """

    def __init__(
        self,
        *,
        covariance: float | np.ndarray | None = None,
        low: np.ndarray | None = None,
        high: np.ndarray | None = None,
        epsilon: float = 0.0,
        n_actions: int | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        if (covariance is None) == (n_actions is None):
            raise ConfigError("NoisyExpertGate needs covariance (Box) or n_actions (Discrete)")
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)
        self.n_actions = n_actions
        self.low, self.high = low, high
        self.covariance = None if covariance is None else np.asarray(covariance, np.float64)
        self._chol: tuple[np.ndarray, np.ndarray] | None = None

    def _cholesky(self, act_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The dimensions with noise and the Cholesky factor of their covariance block."""
        if self._chol is None:
            assert self.covariance is not None
            cov = self.covariance
            if cov.ndim < 2:
                cov = np.diag(np.broadcast_to(cov, (act_dim,)))
            # Dimensions without variance execute the expert's action exactly.
            dims = np.flatnonzero(np.diag(cov) > 0)
            block = cov[np.ix_(dims, dims)]
            self._chol = (dims, np.linalg.cholesky(block + 1e-12 * np.eye(len(dims))))
        return self._chol

    def thresholds(self) -> dict[str, float]:
        """The noise of this gate: ``epsilon``, or the variance of each action dimension."""
        if self.covariance is None:
            return {"epsilon": self.epsilon}
        var = self.covariance if self.covariance.ndim < 2 else np.diag(self.covariance)
        return {f"noise_var_{i}": float(v) for i, v in enumerate(np.atleast_1d(var))}

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        clean = step.expert()
        noisy = np.array(clean, copy=True)
        if self.covariance is not None:
            flat = np.asarray(clean, np.float64).reshape(n, -1)
            dims, chol = self._cholesky(flat.shape[1])
            z = np.stack([self.rng(i).standard_normal(len(dims)) for i in range(n)])
            moved: np.ndarray = flat.copy()
            moved[:, dims] += z @ chol.T
            moved = moved.reshape(np.shape(clean))
            if self.low is not None and self.high is not None:
                moved = np.asarray(np.clip(moved, self.low, self.high))
            noisy = moved.astype(clean.dtype)
        else:
            assert self.n_actions is not None
            for i in range(n):
                rng = self.rng(i)
                if rng.random() < self.epsilon:
                    noisy[i] = rng.integers(self.n_actions)
        ones = np.ones(n, bool)
        return Decision(expert_acts=ones, label=ones, executed=noisy)
