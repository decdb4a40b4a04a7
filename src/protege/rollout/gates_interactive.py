"""Gates that hand control to the expert only where the learner needs it.

* :class:`SimulatedSupervisorGate`: HG-DAgger's human gate, played by the task's expert.
* :class:`EnsembleGate`: EnsembleDAgger's variance and discrepancy gate.
* :class:`ThriftyGate`: ThriftyDAgger's novelty and risk gate with α_h-calibrated thresholds.

Each labels only the steps where the expert is in control. What a gate must *ask* the expert
to make its decision is a separate cost: every ask is counted by :class:`LazyExpert` in
``RolloutResult.expert_queries`` (and per episode by :func:`protege.algos.dagger.run`), so
"labels" and "queries" can be reported apart. A gate that compares the learner with the
expert at a state it does not label (a simulated supervisor watching for disagreement,
EnsembleDAgger's discrepancy test) pays a query there; for a person that is attention, for a
scripted expert it is compute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from protege.data.obs import n_rows
from protege.errors import ConfigError
from protege.rollout.gates import Decision, Gate, StepView


class UncertainLearner(Protocol):
    """A learner that can say how unsure it is: an ensemble (see
    :class:`protege.policies.ensemble.PolicyEnsemble`)."""

    def novelty(self, obs: np.ndarray) -> np.ndarray:
        """(N,) ensemble action variance at each observation (mean over action dims)."""
        ...

    def discrepancy(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N,) how far the learner's action is from ``actions``: squared L2 for continuous
        actions, 1 − (mean probability of ``actions``) for discrete ones."""
        ...


class SuccessCritic(Protocol):
    """Q(s, a): the (discounted) probability of finishing the task from s after action a."""

    def success(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N,) values in [0, 1]."""
        ...


RiskScore = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``risk(obs_N, t_N) -> (N,)``: ≥ 0, and > 1 outside the task's safe set (``t`` is the step
index within each episode, so a supervisor can also lose patience)."""


def action_gap(learner: np.ndarray, expert: np.ndarray) -> np.ndarray:
    """(N,) disagreement: 1/0 for discrete actions (integer arrays), L2 distance otherwise."""
    if np.issubdtype(np.asarray(expert).dtype, np.integer):
        return (np.asarray(learner) != np.asarray(expert)).astype(np.float64)
    diff = np.asarray(learner, np.float64) - np.asarray(expert, np.float64)
    return np.linalg.norm(diff.reshape(len(diff), -1), axis=1)


class _Modes(Gate):
    """Per-sub-env "who is driving" state plus per-episode counters."""

    counters: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.expert_mode: dict[int, bool] = {}
        self.steps_in_mode: dict[int, int] = {}
        self._counts: dict[int, dict[str, int]] = {}
        self.totals: dict[str, int] = dict.fromkeys(self.counters, 0)

    def begin_episode(self, env_index: int) -> None:
        self.expert_mode[env_index] = False
        self.steps_in_mode[env_index] = 0
        self._counts[env_index] = dict.fromkeys(self.counters, 0)

    def _mode(self, n: int) -> np.ndarray:
        for i in range(n):
            if i not in self.expert_mode:
                self.begin_episode(i)
        return np.array([self.expert_mode[i] for i in range(n)])

    def _set_mode(self, new_mode: np.ndarray) -> None:
        for i, m in enumerate(new_mode):
            if bool(m) != self.expert_mode[i]:
                self.steps_in_mode[i] = 0
            self.expert_mode[i] = bool(m)
            self.steps_in_mode[i] += 1

    def _count(self, name: str, mask: np.ndarray) -> None:
        for i in np.flatnonzero(mask):
            self._counts[int(i)][name] += 1
            self.totals[name] += 1

    def episode_extras(self, env_index: int) -> dict[str, float]:
        """Counters of sub-env ``env_index``'s current episode (stored with the episode)."""
        return {k: float(v) for k, v in self._counts.get(env_index, {}).items()}


class SimulatedSupervisorGate(_Modes):
    """HG-DAgger's supervisor (Kelly, Sidrane, Driggs-Campbell & Kochenderfer 2019), played by
    the expert: the learner drives until the supervisor judges it unsafe, the supervisor then
    drives (and only those steps are labeled) until the learner is back inside a band.

    Takeover when either
      * the state leaves the safe set: ``risk(obs, t) > 1``; or
      * the learner disagrees with the expert: the mean :func:`action_gap` over the last
        ``window`` learner-driven steps exceeds ``disagreement_threshold``.
    Hand back after at least ``min_takeover`` steps once ``risk(obs, t) ≤ hand_back`` (a band
    strictly inside the safe set, so control does not chatter at its edge).

    Cost: watching for disagreement needs the expert's action at every learner step: one
    expert *query* per step, not a label (a person watches anyway; a scripted expert
    computes). With ``disagreement_threshold=None`` the supervisor watches the safe set only
    and asks the expert only while driving.

    Example:
        >>> gate = SimulatedSupervisorGate(risk=task.risk, disagreement_threshold=0.5, window=10)
    """

    counters = ("takeover_unsafe", "takeover_disagree")

    def __init__(
        self,
        risk: RiskScore | None = None,
        disagreement_threshold: float | None = None,
        window: int = 1,
        hand_back: float = 0.5,
        min_takeover: int = 1,
    ):
        if risk is None and disagreement_threshold is None:
            raise ConfigError("a supervisor needs a risk score, a disagreement threshold or both")
        if window < 1 or min_takeover < 1:
            raise ConfigError(f"window and min_takeover must be ≥ 1 ({window}, {min_takeover})")
        if not 0.0 <= hand_back <= 1.0:
            raise ConfigError(
                f"hand_back must be in [0, 1] (a band inside the safe set), got {hand_back}"
            )
        super().__init__()
        self.risk = risk
        self.disagreement_threshold = disagreement_threshold
        self.window = window
        self.hand_back = hand_back
        self.min_takeover = min_takeover
        self._gaps: dict[int, list[float]] = {}

    def begin_episode(self, env_index: int) -> None:
        super().begin_episode(env_index)
        self._gaps[env_index] = []

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        driving = self._mode(n)
        if step.learner_action is None:
            raise ConfigError("SimulatedSupervisorGate needs a learner to supervise")
        risk = self.risk(step.obs, step.t) if self.risk is not None else np.zeros(n)
        unsafe = ~driving & (risk > 1.0) & step.expert.active
        disagree = np.zeros(n, bool)
        if self.disagreement_threshold is not None:
            expert = step.expert(~driving)  # watching costs one query per learner step
            gap = action_gap(step.learner_action, expert)
            for i in map(int, np.flatnonzero(~driving & step.expert.asked)):
                g = self._gaps.setdefault(i, [])
                g.append(float(gap[i]))
                del g[: -self.window]
                disagree[i] = len(g) == self.window and np.mean(g) > self.disagreement_threshold
        disagree &= ~unsafe
        self._count("takeover_unsafe", unsafe)
        self._count("takeover_disagree", disagree)
        takeover = driving | unsafe | disagree
        self._set_mode(takeover)
        # Decided now, acted on from the next step: the expert drives this step either way.
        steps = np.array([self.steps_in_mode[i] for i in range(n)])
        release = takeover & (steps >= self.min_takeover) & (risk <= self.hand_back)
        for j in map(int, np.flatnonzero(release)):
            self.expert_mode[j] = False
            self.steps_in_mode[j] = 0
            self._gaps[j] = []
        return Decision(expert_acts=takeover, label=takeover.copy())


class EnsembleGate(Gate):
    """EnsembleDAgger (Menda, Driggs-Campbell & Kochenderfer 2019): the novice acts iff its
    ensemble variance ≤ χ (``variance_threshold``) *and* its discrepancy from the expert
    ≤ τ (``discrepancy_threshold``); otherwise the expert acts and labels.

    Cost: the discrepancy test needs the expert's action at *every* step (one query per step,
    as many as DAgger), though only the gated steps are labeled; the paper also stores the
    other queried states (``label_all=True``). With ``discrepancy_threshold=None`` the gate
    tests variance alone and asks the expert only where it acts, like SafeDAgger/Thrifty.
    Units are the learner's :meth:`UncertainLearner.discrepancy` (squared L2, or
    1 − p(expert action) for discrete actions).

    Example:
        >>> gate = EnsembleGate(ensemble, variance_threshold=0.02, discrepancy_threshold=0.5)
    """

    def __init__(
        self,
        learner: UncertainLearner,
        variance_threshold: float,
        discrepancy_threshold: float | None = None,
        label_all: bool = False,
    ):
        self.learner = learner
        self.variance_threshold = variance_threshold
        self.discrepancy_threshold = discrepancy_threshold
        self.label_all = label_all
        self._counts: dict[int, dict[str, int]] = {}

    def begin_episode(self, env_index: int) -> None:
        self._counts[env_index] = {"gated_variance": 0, "gated_discrepancy": 0}

    def episode_extras(self, env_index: int) -> dict[str, float]:
        return {k: float(v) for k, v in self._counts.get(env_index, {}).items()}

    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        novel = self.learner.novelty(step.obs) > self.variance_threshold
        far = np.zeros(n, bool)
        if self.discrepancy_threshold is not None:
            expert = step.expert()
            far = self.learner.discrepancy(step.obs, expert) > self.discrepancy_threshold
            far &= step.expert.asked
        acts = novel | far
        for i in range(n):
            c = self._counts.setdefault(i, {"gated_variance": 0, "gated_discrepancy": 0})
            c["gated_variance"] += int(novel[i])
            c["gated_discrepancy"] += int(far[i] and not novel[i])
        label = step.expert.asked.copy() if self.label_all else acts
        return Decision(expert_acts=acts, label=label | acts)


class ThriftyGate(_Modes):
    """ThriftyDAgger (Hoque, Balakrishna, Novoseller, Wilcox, Brown & Goldberg 2021).

    In robot mode the robot asks for help when its state is *novel* (ensemble action variance
    > δ_h) or *risky* (Q(s, π_r(s)) < β_h, Q the probability of success); the expert then
    drives and labels until the robot's proposal is close to the expert's
    (discrepancy < δ_r, the mean discrepancy on the BC training data) **and** Q > β_r.

    Thresholds follow the user's one knob, the target rate α_h: :meth:`calibrate` sets
    δ_h = the (1−α_h) quantile of novelty, β_h = the α_h quantile of Q and β_r = the median of
    Q over autonomous (robot-mode) states, as the paper's code does after every episode once
    more than ``min_calibration`` states exist. The gate never calibrates itself: its caller
    does, from stored states, so a resumed run calibrates exactly as the interrupted one did
    (:func:`protege.algos.thrifty.run` calls it before every episode, or every batch, from
    the current round's stored autonomous states). Each criterion alone hands control to the
    expert at about α_h of the robot-mode steps, both together at between α_h and 2·α_h.

    The expert is asked only in expert mode: labels = queries = expert steps. Each stored
    episode records its switch counts and the thresholds it ran with
    (:meth:`episode_extras`).

    Example:
        >>> gate = ThriftyGate(ensemble, critic, alpha_h=0.01, switch_back_discrepancy=0.1)
        >>> gate.calibrate(autonomous_obs)
    """

    counters = ("switch_novel", "switch_risk", "switch_back", "robot_steps")
    """Per episode: switches to the expert for novelty and for risk, hand-backs, and the
    robot-mode steps (where the switch rate is measured: switches / robot-mode steps ≈ α_h)."""

    def __init__(
        self,
        learner: UncertainLearner,
        critic: SuccessCritic | None,
        *,
        alpha_h: float = 0.01,
        novelty_threshold: float = float("inf"),
        risk_threshold: float = 0.48,
        switch_back_risk: float = 0.495,
        switch_back_discrepancy: float = 0.0,
        min_calibration: int = 25,
    ):
        if not 0.0 < alpha_h < 1.0:
            raise ConfigError(f"alpha_h must be in (0, 1), got {alpha_h}")
        super().__init__()
        self.learner = learner
        self.critic = critic
        self.alpha_h = alpha_h
        self.novelty_threshold = novelty_threshold
        """δ_h: switch to the expert when novelty exceeds it."""
        self.risk_threshold = risk_threshold
        """β_h: switch to the expert when Q(s, π_r(s)) falls below it (paper's prior 0.48)."""
        self.switch_back_risk = switch_back_risk
        """β_r: hand back only when Q exceeds it (paper's prior 0.495)."""
        self.switch_back_discrepancy = switch_back_discrepancy
        """δ_r: hand back only when the robot's proposal is this close to the expert's."""
        self.min_calibration = min_calibration

    # ------------------------------------------------------------------- calibration
    def calibrate_values(self, novelty: np.ndarray, q: np.ndarray | None) -> bool:
        """Set the thresholds from autonomous-state estimates (the paper code's order
        statistics); returns False (and changes nothing) with ≤ ``min_calibration`` states."""
        novelty = np.sort(np.asarray(novelty, np.float64))
        n = len(novelty)
        if n <= self.min_calibration:
            return False
        k = min(int((1.0 - self.alpha_h) * n), n - 1)
        self.novelty_threshold = float(novelty[k])
        if q is not None and self.critic is not None:
            q_sorted = np.sort(np.asarray(q, np.float64))
            self.risk_threshold = float(q_sorted[::-1][k])
            self.switch_back_risk = float(q_sorted[int(0.5 * n)])
        return True

    def calibrate(self, obs: np.ndarray, actions: np.ndarray | None = None) -> bool:
        """:meth:`calibrate_values` at autonomous states ``obs`` (robot actions recomputed if
        not given)."""
        if n_rows(obs) <= self.min_calibration:
            return False
        novelty = self.learner.novelty(obs)
        q = None
        if self.critic is not None:
            if actions is None:
                actions = self._robot_actions(obs)
            q = self.critic.success(obs, actions)
        return self.calibrate_values(novelty, q)

    def _robot_actions(self, obs: np.ndarray) -> np.ndarray:
        act = getattr(self.learner, "act", None)
        if act is None:
            raise ConfigError("ThriftyGate.calibrate needs the robot's actions or a learner.act")
        return np.asarray(act(obs))

    def episode_extras(self, env_index: int) -> dict[str, float]:
        """Sub-env ``env_index``'s switch counts and the thresholds its episode ran with
        (calibration happens between episodes, so they held for the whole episode)."""
        return {**super().episode_extras(env_index), **self.thresholds()}

    # --------------------------------------------------------------------------- gate
    def decide(self, step: StepView) -> Decision:
        n = n_rows(step.obs)
        human = self._mode(n)
        robot_action = step.learner_action
        if robot_action is None:
            raise ConfigError("ThriftyGate needs a learner (the robot policy)")
        novelty = self.learner.novelty(step.obs)
        q = self.critic.success(step.obs, robot_action) if self.critic is not None else np.ones(n)
        robot = ~human & step.expert.active  # sub-envs past their quota are never handed over
        to_novel = robot & (novelty > self.novelty_threshold)
        to_risk = robot & ~to_novel & (q < self.risk_threshold)
        if self.critic is None:
            to_risk[:] = False  # the novelty-only ablation
        self._count("robot_steps", robot)
        self._count("switch_novel", to_novel)
        self._count("switch_risk", to_risk)
        human = human | to_novel | to_risk
        expert = step.expert(human)
        close = self.learner.discrepancy(step.obs, expert) < self.switch_back_discrepancy
        back = human & close & (q > self.switch_back_risk)
        self._count("switch_back", back)
        self._set_mode(human & ~back)
        return Decision(expert_acts=human, label=human.copy())

    def thresholds(self) -> dict[str, float]:
        """δ_h, β_h, β_r and δ_r as they stand (a round's row reports them)."""
        return {
            "novelty_threshold": self.novelty_threshold,
            "risk_threshold": self.risk_threshold,
            "switch_back_risk": self.switch_back_risk,
            "switch_back_discrepancy": self.switch_back_discrepancy,
        }
