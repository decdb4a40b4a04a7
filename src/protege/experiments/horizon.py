"""The horizon experiment: BC's expected mistakes grow like εT², DAgger's like εT.

On the :class:`~protege.tasks.lane.DriftCorridor` lane-keeping corridor a learner slips with
probability ε on every step it drives (a "trembling hand": one of the two other actions is
executed; the expert never slips). Every arm is protege's own algorithm, run by
:func:`protege.algos.dagger.run` (through :func:`~protege.algos.dagger.run_method`) on the
``lane`` task, so its data come through the one rollout loop and the library's gates; the
learner is the same tabular 1-nearest-neighbour table on (d, Δc) for all arms, trained by
:class:`~protege.experiments.tabular.TabularTrainer` and driving as a
:class:`~protege.experiments.tabular.SlippingTable` (slopes and intervals:
:mod:`protege.experiments.slopes`):

``bc``
    ``rounds=0``: K expert demonstrations of length T through
    :class:`~protege.rollout.gates.ExpertGate` (the expert stays on d = 0, so the data hold
    no recovery: off the centre the nearest neighbour says "follow the road", and an offset
    persists until another slip moves it). Ross & Bagnell 2010: J ≤ J* + εT².
``dagger``, ``dagger-exp``, ``dagger-linear``
    DAgger (Ross, Gordon & Bagnell 2011): round 0 = K demonstrations, then N rounds in which
    :class:`~protege.rollout.gates.BetaMixture` drives (the expert with probability β_i, per
    step; learner steps slip) and the expert labels *every* visited state; the learner is
    refitted on the aggregate. β schedules ``indicator``, ``exponential:0.5`` and
    ``linear:R`` (R = ``linear_rampdown``, default N). Recoverable task, so J ≤ J* + uεT.
``dart``
    DART (Laskey, Lee, Fox, Dragan & Goldberg 2017) by :func:`protege.algos.dart.run`: one
    clean demonstration (``dagger.run``'s round 0), then K − 1 demonstrations through
    :class:`~protege.rollout.gates.NoisyExpertGate`, which executes a uniformly random
    action with probability ε_D (``epsilon_dart``, fixed: ``fit_noise=False``) and stores the
    expert's clean label, so the data contain recoveries; the learner never drives.
``hg-dagger``
    HG-DAgger (Kelly, Sidrane, Driggs-Campbell & Kochenderfer 2019) by
    :func:`protege.algos.hg_dagger.run`: from the K demonstrations, the learner drives;
    :class:`~protege.rollout.gates_interactive.SimulatedSupervisorGate` takes over when
    ``|d| ≥ hg_threshold`` (:class:`~protege.tasks.lane.LaneRisk`), drives until d = 0 and
    only those takeover steps are labelled.

**Exact evaluation (the headline).** Each learned policy is a table over the 3(2W+1) cells
(d, Δc), so the expected mistakes ``E[M] = E Σ_t 𝟙[ã_t ≠ π*(o_t)]`` and cost ``E[C] = E Σ_t
𝟙[d_{t+1} ≠ 0]`` of an episode are computed **exactly** by propagating the distribution of d
through the ε-kernel (:func:`exact_expectations`): no sampling noise. The exponent is the OLS
slope of log E[M] on log T; its confidence interval is the OLS one (standard error from the
residuals, Student t with n_T − 2 degrees of freedom), i.e. how far the exact curve is from a
power law over the horizons used: BC's bends (it saturates), so its interval has a width;
DAgger's E[M] is exactly εT (every mistake is a slip), so its interval is a point.

**Monte Carlo cross-check (through the library).** Replicate 0's policy of every arm is
rolled out by :func:`protege.rollout.loop.rollout` with
:class:`~protege.rollout.gates.LearnerGate` on :class:`~protege.tasks.lane.DriftCorridorVector`,
the learner slipping as in training; an episode's mistakes are the loop's own disagreement
with the expert along the learner's trajectory (``measure_disagreement``), its cost minus its
return. Each cell (arm, T) gets z = (MC − exact) / SE; the test of agreement is
χ² = Σ z² over the cells against χ²(number of cells), passed when its p-value is ≥ 0.001
(:meth:`HorizonResult.agreement`). The MC slopes get a percentile bootstrap over episodes.

**Coverage.** DAgger's εT needs its data to contain the states a slip leads to. At ε = 2.5e-4
a round of a few episodes would rarely see one, so each interactive round runs
``max(episodes_per_round, ⌈slips_per_round / (εT)⌉)`` episodes: about ``slips_per_round``
learner slips per round, e.g. 20,000 steps per round at ε = 2.5e-4.

**Saturation.** When εT ≳ 1 BC's offset random walk fills the corridor and its E[M]
approaches a constant per step, so the fitted slope falls toward 1; ``saturated_epsilon``
(default 1e-2) reruns the sweep in that regime.

**Cost.** Training is the expensive part: ``dagger.run`` collects through a
``SyncVectorEnv`` of single envs (~20k steps/s on one core), and the defaults take about
2.6 million steps per data seed (5 rounds × 20,000 steps × 5 horizons × 4 interactive arms),
about 2 minutes of CPU per seed. The Monte Carlo runs on the numpy vector env at close to a
million steps per second.

Example:
    >>> from protege.experiments.horizon import HorizonConfig, run_horizon
    >>> result = run_horizon(HorizonConfig(seed=0))
    >>> print(result.to_markdown())
    >>> result.plot("horizon.png")
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protege.algos.dagger import DAggerConfig, run_method
from protege.algos.dart import DARTConfig
from protege.algos.hg_dagger import SupervisorConfig
from protege.algos.rounds import derive_seed
from protege.errors import ConfigError
from protege.experiments.slopes import (
    Agreement,
    SlopeFit,
    bootstrap_episodes_slope,
    chi2_sf,
    loglog_slope,
    ols_slope,
    t_quantile,
    z_scores,
)
from protege.experiments.tabular import (
    SlippingTable,
    TabularNearestNeighbor,
    TabularTrainer,
    cell_coords,
)
from protege.rollout.gates import LearnerGate
from protege.rollout.loop import rollout
from protege.rollout.observers import Disagreement
from protege.tasks.base import Task
from protege.tasks.lane import (
    LANE,
    SLIP_SHIFTS,
    WIDTH,
    DriftCorridorVector,
    LaneExpert,
    LaneRisk,
    expert_steer,
    lane_transition,
    road_probs,
)

ARMS: tuple[str, ...] = ("bc", "dagger", "dagger-exp", "dagger-linear", "dart", "hg-dagger")
"""Every arm the experiment knows, in reporting order."""

_DAGGER_BETA = {"dagger": "indicator", "dagger-exp": "exponential:0.5", "dagger-linear": "linear"}
_INTERACTIVE = ("dagger", "dagger-exp", "dagger-linear", "hg-dagger")
_ARM_CODE = {name: i for i, name in enumerate(ARMS)}
_STREAM_TRAIN, _STREAM_MC, _STREAM_BOOT = 1, 3, 4


@dataclass(frozen=True)
class HorizonConfig:
    """Settings of one horizon sweep (every field has the documented default).

    The defaults are the headline setting of the DriftCorridor spec: straight road, W = 5,
    ε = 2.5e-4 (so εT ≤ 0.25), K = 20 demos, 5 DAgger rounds.
    """

    horizons: tuple[int, ...] = (50, 100, 200, 500, 1000)
    epsilon: float = 2.5e-4
    """Learner slip rate at training-time rollouts and at evaluation."""
    epsilon_dart: float = 0.05
    """DART's tremble: the noisy expert executes a uniformly random action this often."""
    n_demos: int = 20
    """K: expert demonstrations (episodes of length T) for BC, DART and round 0."""
    dagger_rounds: int = 5
    episodes_per_round: int = 4
    """Fewest episodes of an interactive round (see ``slips_per_round``)."""
    slips_per_round: float = 5.0
    """Each interactive round runs enough episodes for this many expected learner slips."""
    linear_rampdown: int | None = None
    """R of the linear β schedule; ``None`` means ``dagger_rounds`` (last round β = 0)."""
    hg_threshold: int = 1
    """HG-DAgger's supervisor takes over at ``|d| ≥ hg_threshold`` and returns at d = 0."""
    seeds: int = 2
    """Data replicates: each reruns every arm's training with other draws."""
    mc_episodes: int = 10_000
    """Monte Carlo episodes at the shortest MC horizon; a longer T runs ⌈that · T_min / T⌉,
    the same steps per cell; 0 skips the Monte Carlo."""
    mc_horizons: tuple[int, ...] | None = None
    """Horizons the Monte Carlo runs at (a subset of ``horizons``; None: all of them)."""
    mc_envs: int = 1000
    """Sub-envs of the Monte Carlo's vector env."""
    n_envs: int = 32
    """Episodes collected in parallel while training (``DAggerConfig.n_envs``)."""
    bootstrap: int = 2000
    """Bootstrap resamples (over episodes) of each Monte Carlo slope."""
    ci: float = 0.95
    seed: int = 0
    width: int = WIDTH
    p_turn: float = 0.0
    cliff: bool = False
    cliff_offset: int | None = None
    init_offset_spread: int = 0
    saturated_epsilon: float | None = 1e-2
    """Rerun the sweep at this ε to show saturation; ``None`` skips it."""
    saturated_mc: bool = True
    """Run the Monte Carlo cross-check in the saturated sweep too."""
    arms: tuple[str, ...] = ARMS
    scratch_dir: str | None = None
    """Where the runs' stores go while they train (deleted after each run); default /dev/shm
    when it is writable, else the system's temporary directory."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(int(t) for t in self.horizons))
        object.__setattr__(self, "arms", tuple(self.arms))
        if self.mc_horizons is not None:
            object.__setattr__(self, "mc_horizons", tuple(int(t) for t in self.mc_horizons))
        self._validate()

    def _validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"HorizonConfig: {msg}")

        if len(self.horizons) < 2 or any(t < 1 for t in self.horizons):
            raise bad(f"horizons needs ≥ 2 positive values, got {self.horizons}")
        if len(set(self.horizons)) != len(self.horizons):
            raise bad(f"horizons must be distinct, got {self.horizons}")
        for name in ("epsilon", "epsilon_dart", "p_turn"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise bad(f"{name} must be in [0, 1], got {v}")
        if self.epsilon <= 0.0:
            raise bad("epsilon must be > 0 (with ε = 0 every arm makes no mistake)")
        if self.saturated_epsilon is not None and not 0.0 < self.saturated_epsilon <= 1.0:
            raise bad(f"saturated_epsilon must be in (0, 1], got {self.saturated_epsilon}")
        for name in ("n_demos", "seeds", "width", "mc_envs", "n_envs", "episodes_per_round"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("dagger_rounds", "mc_episodes"):
            if getattr(self, name) < 0:
                raise bad(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.slips_per_round <= 0:
            raise bad(f"slips_per_round must be > 0, got {self.slips_per_round}")
        if self.bootstrap < 1 or not 0.0 < self.ci < 1.0:
            raise bad("bootstrap must be ≥ 1 and ci in (0, 1)")
        if self.linear_rampdown is not None and self.linear_rampdown < 1:
            raise bad(f"linear_rampdown must be ≥ 1, got {self.linear_rampdown}")
        if not 1 <= self.hg_threshold <= self.width:
            raise bad(f"hg_threshold must be in 1..{self.width}, got {self.hg_threshold}")
        if self.cliff_offset is not None and not 1 <= self.cliff_offset <= self.width:
            raise bad(f"cliff_offset must be in 1..{self.width}, got {self.cliff_offset}")
        if not 0 <= self.init_offset_spread <= self.width:
            raise bad(f"init_offset_spread must be in 0..{self.width}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise bad(f"arms must be distinct names from {ARMS}, got {self.arms}")
        mc = self.mc_horizons
        if mc is not None and (
            len(mc) < 2 or len(set(mc)) != len(mc) or set(mc) - set(self.horizons)
        ):
            raise bad(f"mc_horizons must be ≥ 2 distinct values of horizons, got {mc}")

    def episodes_for(self, horizon: int) -> int:
        """Episodes per interactive round at horizon T (about ``slips_per_round`` slips)."""
        slips = math.ceil(self.slips_per_round / (self.epsilon * horizon))
        return max(self.episodes_per_round, slips)

    def beta(self, arm: str) -> str:
        """The β schedule (``DAggerConfig.beta``) of a DAgger arm."""
        spec = _DAGGER_BETA[arm]
        if spec == "linear":
            return f"linear:{self.linear_rampdown or max(self.dagger_rounds, 1)}"
        return spec

    @property
    def mc_at(self) -> tuple[int, ...]:
        """The horizons the Monte Carlo runs at (none when it is off)."""
        if self.mc_episodes == 0:
            return ()
        return self.mc_horizons if self.mc_horizons is not None else self.horizons

    def mc_episodes_for(self, horizon: int) -> int:
        """Monte Carlo episodes at horizon T: the same number of steps at every MC horizon."""
        return max(1, math.ceil(self.mc_episodes * min(self.mc_at) / horizon))


# ------------------------------------------------------------------------------------------
# Training an arm through the library


def lane_task(cfg: HorizonConfig, horizon: int) -> Task:
    """The ``lane`` task as the experiment runs it: horizon T, the config's road, and no
    env-side slips (the learner slips, :class:`SlippingTable`)."""
    kwargs = {
        "width": cfg.width,
        "horizon": horizon,
        "epsilon": 0.0,
        "p_turn": cfg.p_turn,
        "cliff": cfg.cliff,
        "cliff_offset": cfg.cliff_offset,
        "init_offset_spread": cfg.init_offset_spread,
    }
    return dataclasses.replace(LANE, horizon=horizon, env_kwargs=kwargs)


@dataclass(frozen=True)
class Trained:
    """What training one arm at one horizon produced."""

    table: np.ndarray
    """(n_cells,) the final learner's steer per cell."""
    labels: int
    """Expert labels stored (demonstrations included)."""
    queries: int
    """Times the expert was asked (labels, supervision)."""


def arm_setup(
    arm: str, cfg: HorizonConfig, horizon: int, seed: int
) -> tuple[str, Any, DAggerConfig]:
    """``(method, method settings, DAggerConfig)`` that make ``arm`` a run of
    :func:`protege.algos.dagger.run_method` (see the module docstring)."""
    common: dict[str, Any] = {
        "n_envs": cfg.n_envs,
        "seed": seed,
        "eval_episodes": 1,
        "eval_envs": 1,
    }
    if arm == "bc":
        return "dagger", None, DAggerConfig(rounds=0, initial_demos=cfg.n_demos, **common)
    if arm == "dart":
        noisy = max(1, cfg.n_demos - 1)
        dart = DARTConfig(initial_noise=cfg.epsilon_dart, fit_noise=False)
        return (
            "dart",
            dart,
            DAggerConfig(rounds=1, initial_demos=1, episodes_per_round=noisy, **common),
        )
    rounds = DAggerConfig(
        rounds=cfg.dagger_rounds,
        initial_demos=cfg.n_demos,
        episodes_per_round=cfg.episodes_for(horizon),
        **common,
    )
    if arm == "hg-dagger":
        supervisor = SupervisorConfig(
            risk=LaneRisk(cfg.hg_threshold),
            disagreement_threshold=None,
            hand_back=0.0,
            min_takeover=1,
        )
        return "hg-dagger", supervisor, rounds
    return "dagger", None, dataclasses.replace(rounds, beta=cfg.beta(arm))


def train_arm(arm: str, cfg: HorizonConfig, horizon: int, seed: int, scratch: Path) -> Trained:
    """Run ``arm`` at horizon T through :func:`~protege.algos.dagger.run_method` in a store
    under ``scratch`` (deleted afterwards) and return its final learner's table."""
    method, method_config, dcfg = arm_setup(arm, cfg, horizon, seed)
    trainer = TabularTrainer(cfg.epsilon, cfg.width)
    store = scratch / "store"
    try:
        result = run_method(
            method, lane_task(cfg, horizon), store, dcfg, method_config, trainer=trainer
        )
        final = trainer.load(Path(f"{store}.run") / "learners" / f"round_{dcfg.rounds:03d}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    last = result.rows[-1]
    return Trained(final.table, last.labels, last.expert_queries)


def _scratch_root(cfg: HorizonConfig) -> str | None:
    if cfg.scratch_dir is not None:
        return cfg.scratch_dir
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


# ------------------------------------------------------------------------------------------
# Exact evaluation by forward dynamic programming


def exact_expectations(
    tables: np.ndarray,
    horizon: int,
    epsilon: float,
    *,
    width: int = WIDTH,
    p_turn: float = 0.0,
    cliff_offset: int | None = None,
    init_offset_spread: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact E[mistakes] and E[cost] per episode of slipping tabular policies.

    ``tables`` (G, 3(2W+1)) holds steer values per cell; each step executes the table's
    action with probability 1 − ε and each of the two others with ε/2 (the slip of
    :func:`protege.tasks.lane.slip`). Δc is i.i.d., so the distribution over d alone is
    propagated: ``p_{t+1} = p_t P``, ``E[M] = Σ_{t<T} p_t·m``, ``E[C] = Σ_{1≤t≤T} p_t·𝟙[d ≠ 0]``.
    Returns two (G,) arrays.
    """
    tables = np.atleast_2d(np.asarray(tables, dtype=np.int64))
    G = tables.shape[0]
    S = 2 * width + 1
    road = road_probs(p_turn)
    d_cells, dc_cells = cell_coords(width)
    expert = expert_steer(d_cells, dc_cells)  # (n,)
    q = road[dc_cells + 1]  # (n,)
    P = np.zeros((G, S, S))
    m = np.zeros((G, S))
    g_idx = np.arange(G)[:, None]
    src = d_cells + width
    kernel = ((0, 1.0 - epsilon), *((s, epsilon / 2) for s in SLIP_SHIFTS))
    for shift, px in kernel:
        if px == 0.0:
            continue
        executed = (tables + 1 + shift) % 3 - 1  # (G, n) steer
        nxt = lane_transition(d_cells, executed, dc_cells, width, cliff_offset) + width
        w = np.broadcast_to(q * px, executed.shape)
        np.add.at(P, (g_idx, src[None, :], nxt), w)
        np.add.at(m, (g_idx, src[None, :]), w * (executed != expert))
    off = np.ones(S)
    off[width] = 0.0
    c = P @ off  # (G, S): P(off-centre after the step | d)
    p = np.zeros((G, S))
    s = init_offset_spread
    p[:, width - s : width + s + 1] = 1.0 / (2 * s + 1)
    mistakes = np.zeros(G)
    cost = np.zeros(G)
    for _ in range(horizon):
        mistakes += np.einsum("gs,gs->g", p, m)
        cost += np.einsum("gs,gs->g", p, c)
        p = np.einsum("gs,gst->gt", p, P)
    return mistakes, cost


# ------------------------------------------------------------------------------------------
# Monte Carlo through the rollout loop


def monte_carlo_episodes(
    table: np.ndarray, cfg: HorizonConfig, horizon: int, episodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode mistakes and off-centre steps of ``table`` slipping at ε, measured by
    :func:`protege.rollout.loop.rollout` (:class:`LearnerGate`, the expert asked at every
    step to measure disagreement) on a :class:`DriftCorridorVector`."""
    env = DriftCorridorVector(
        min(cfg.mc_envs, episodes),
        width=cfg.width,
        horizon=horizon,
        p_turn=cfg.p_turn,
        cliff=cfg.cliff,
        cliff_offset=cfg.cliff_offset,
        init_offset_spread=cfg.init_offset_spread,
    )
    learner = SlippingTable(table, cfg.epsilon, derive_seed(seed, 1), cfg.width)
    result = rollout(
        env,
        episodes,
        gate=LearnerGate(),
        seed=derive_seed(seed, 2),
        learner=learner,
        expert=LaneExpert(),
        observers=[Disagreement()],
    )
    mistakes = np.array([np.nansum(d) for d in result.disagreement], dtype=np.int64)
    cost = -np.asarray(result.returns).astype(np.int64)
    return mistakes, cost


# ------------------------------------------------------------------------------------------
# Results


@dataclass
class MonteCarlo:
    """One arm's Monte Carlo cross-check (replicate 0's policy) at the MC horizons."""

    horizons: tuple[int, ...]
    episodes: tuple[int, ...]
    mistakes: np.ndarray
    mistakes_se: np.ndarray
    cost: np.ndarray
    cost_se: np.ndarray
    exact_mistakes: np.ndarray
    """The same policy's exact E[mistakes] at these horizons."""
    exact_cost: np.ndarray
    mistakes_slope: SlopeFit
    cost_slope: SlopeFit

    @property
    def z_mistakes(self) -> np.ndarray:
        return z_scores(self.mistakes, self.mistakes_se, self.exact_mistakes)

    @property
    def z_cost(self) -> np.ndarray:
        return z_scores(self.cost, self.cost_se, self.exact_cost)

    @property
    def exact_slope(self) -> float:
        """The exact curve's slope over the same horizons (what the MC slope estimates)."""
        return float(loglog_slope(self.horizons, self.exact_mistakes))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"horizons": list(self.horizons), "episodes": list(self.episodes)}
        for name in ("mistakes", "mistakes_se", "cost", "cost_se", "exact_mistakes", "exact_cost"):
            out[name] = [float(v) for v in getattr(self, name)]
        out["z_mistakes"] = [float(v) for v in self.z_mistakes]
        out["z_cost"] = [float(v) for v in self.z_cost]
        out["mistakes_slope"] = self.mistakes_slope.to_dict()
        out["cost_slope"] = self.cost_slope.to_dict()
        out["exact_slope"] = self.exact_slope
        return out


@dataclass
class ArmResult:
    """Everything measured for one arm. Arrays are indexed ``[seed, horizon]``."""

    name: str
    exact_mistakes: np.ndarray
    """(seeds, n_T) exact E[mistakes per episode] of each replicate's policy."""
    exact_cost: np.ndarray
    """(seeds, n_T) exact E[off-centre steps per episode]."""
    labels: np.ndarray
    """(seeds, n_T) int64 expert labels the arm used (demos included)."""
    queries: np.ndarray
    """(seeds, n_T) int64 times the arm asked the expert."""
    mistakes_slope: SlopeFit
    """OLS fit of the seed-mean exact E[mistakes]."""
    cost_slope: SlopeFit
    seed_slopes: np.ndarray
    """(seeds,) the exact E[mistakes] slope of each replicate alone."""
    mc: MonteCarlo | None = None

    @property
    def mistakes(self) -> np.ndarray:
        """(n_T,) exact E[mistakes] averaged over seeds."""
        return self.exact_mistakes.mean(axis=0)

    @property
    def cost(self) -> np.ndarray:
        return self.exact_cost.mean(axis=0)

    @property
    def mean_labels(self) -> np.ndarray:
        return self.labels.mean(axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exact_mistakes": self.mistakes.tolist(),
            "exact_cost": self.cost.tolist(),
            "exact_mistakes_per_seed": self.exact_mistakes.tolist(),
            "labels": self.mean_labels.tolist(),
            "queries": self.queries.mean(axis=0).tolist(),
            "mistakes_slope": self.mistakes_slope.to_dict(),
            "cost_slope": self.cost_slope.to_dict(),
            "seed_slopes": self.seed_slopes.tolist(),
            "mc": None if self.mc is None else self.mc.to_dict(),
        }


@dataclass
class HorizonResult:
    """Per-arm, per-T exact and Monte Carlo values, labels, slopes and intervals of one sweep."""

    config: HorizonConfig
    arms: dict[str, ArmResult]
    seconds: float
    saturated: HorizonResult | None = None
    episodes_per_round: tuple[int, ...] = field(default_factory=tuple)
    train_seconds: float = 0.0
    mc_seconds: float = 0.0

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.config.horizons

    @property
    def total_seconds(self) -> float:
        """Wall time of this sweep and the saturated one."""
        return self.seconds + (self.saturated.seconds if self.saturated is not None else 0.0)

    def slopes(self) -> dict[str, SlopeFit]:
        """The exact E[mistakes] slope fit of every arm."""
        return {name: arm.mistakes_slope for name, arm in self.arms.items()}

    def agreement(self, quantity: str = "mistakes") -> Agreement | None:
        """χ² over every Monte Carlo cell of ``quantity`` ("mistakes" or "cost"); None
        without Monte Carlo."""
        zs = [getattr(a.mc, f"z_{quantity}") for a in self.arms.values() if a.mc is not None]
        if not zs:
            return None
        z = np.concatenate(zs)
        chi2 = float(np.sum(z**2))
        p = chi2_sf(chi2, len(z)) if np.isfinite(chi2) else 0.0
        return Agreement(quantity, chi2, len(z), p, float(np.max(np.abs(z))))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (lists and floats only)."""
        out: dict[str, Any] = {
            "config": dataclasses.asdict(self.config),
            "seconds": self.seconds,
            "total_seconds": self.total_seconds,
            "train_seconds": self.train_seconds,
            "mc_seconds": self.mc_seconds,
            "episodes_per_round": list(self.episodes_per_round),
            "arms": {name: arm.to_dict() for name, arm in self.arms.items()},
            "agreement": {
                q: None if (a := self.agreement(q)) is None else dataclasses.asdict(a)
                for q in ("mistakes", "cost")
            },
        }
        if self.saturated is not None:
            out["saturated"] = self.saturated.to_dict()
        return out

    def to_markdown(self) -> str:
        """Tables of exact E[mistakes], cost, labels, slopes and the Monte Carlo check."""
        lines = self._exact_tables() + self._mc_table()
        lines += [
            "",
            f"Runtime {self.seconds:.1f} s (training {self.train_seconds:.1f} s, Monte Carlo "
            f"{self.mc_seconds:.1f} s)"
            + (
                f"; {self.total_seconds:.1f} s with the saturated sweep." if self.saturated else "."
            ),
        ]
        text = "\n".join(lines)
        if self.saturated is not None:
            text += "\n\n" + self.saturated.to_markdown()
        return text

    def _title(self) -> str:
        cfg = self.config
        road = f"winding p_turn={cfg.p_turn:g}" if cfg.p_turn > 0 else "straight"
        cliff = f", cliff at |d| ≥ {cfg.cliff_offset or cfg.width}" if cfg.cliff else ""
        seeds = f"{cfg.seeds} data seed" + ("s" if cfg.seeds != 1 else "")
        return (
            f"### Horizon sweep: ε = {cfg.epsilon:g}, {road} road, W = {cfg.width}{cliff}, "
            f"{seeds}, seed {cfg.seed}"
        )

    def _exact_tables(self) -> list[str]:
        hs = self.horizons
        head = "| arm | " + " | ".join(f"T={t}" for t in hs)
        rule = "|---|" + "---:|" * len(hs)
        pct = round(100 * self.config.ci)
        lines = [
            self._title(),
            "",
            "Exact E[mistakes per episode] (mean over seeds), log-log slope with its OLS "
            f"{pct}% CI over T (t, {len(hs) - 2} df), per-seed slopes, and the cost slope:",
            "",
            head + " | slope [CI] | per seed | cost slope [CI] |",
            rule + "---|---|---|",
        ]
        for name, arm in self.arms.items():
            vals = " | ".join(_fmt(v) for v in arm.mistakes)
            lo, hi = arm.seed_slopes.min(), arm.seed_slopes.max()
            seeds = f"{lo:.3f}–{hi:.3f}" if len(arm.seed_slopes) > 1 else "–"
            lines.append(f"| {name} | {vals} | {arm.mistakes_slope} | {seeds} | {arm.cost_slope} |")
        lines += ["", "Exact E[off-centre steps per episode]:", "", head + " |", rule]
        for name, arm in self.arms.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in arm.cost) + " |")
        lines += ["", "Expert labels used (mean over seeds, demos included):", "", head + " |"]
        lines.append(rule)
        for name, arm in self.arms.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in arm.mean_labels) + " |")
        return lines

    def _mc_table(self) -> list[str]:
        with_mc = [a for a in self.arms.values() if a.mc is not None]
        if not with_mc:
            return []
        first = with_mc[0].mc
        assert first is not None
        hs = first.horizons
        episodes = ", ".join(f"{n:,}" for n in first.episodes)
        pct = round(100 * self.config.ci)
        lines = [
            "",
            f"Monte Carlo through `protege.rollout.loop.rollout` (replicate 0's policies; "
            f"{episodes} episodes at T = {', '.join(map(str, hs))}): mean ± SE of mistakes, "
            f"z = (MC − exact) / SE, and the slope with its {pct}% bootstrap CI over episodes "
            "against the exact slope over the same T:",
            "",
            "| arm | " + " | ".join(f"T={t}" for t in hs) + " | MC slope [CI] | exact slope |",
            "|---|" + "---:|" * len(hs) + "---|---:|",
        ]
        for arm in with_mc:
            mc = arm.mc
            assert mc is not None
            cells = [
                f"{_fmt(m)} ± {_fmt(se)} (z={z:+.1f})"
                for m, se, z in zip(mc.mistakes, mc.mistakes_se, mc.z_mistakes, strict=True)
            ]
            row = f"| {arm.name} | " + " | ".join(cells)
            lines.append(row + f" | {mc.mistakes_slope} | {mc.exact_slope:.3f} |")
        lines.append("")
        for q in ("mistakes", "cost"):
            ag = self.agreement(q)
            if ag is not None:
                lines.append(f"- Agreement, {ag}")
        return lines

    def plot(self, path: str | Path) -> Path:
        """Save log-log E[mistakes] vs T per arm with T² and T guides (PNG, matplotlib Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        results = [self] if self.saturated is None else [self, self.saturated]
        fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 4.8), squeeze=False)
        for ax, res in zip(axes[0], results, strict=True):
            res._plot_axes(ax)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return out

    def _plot_axes(self, ax: Any) -> None:
        hs = np.asarray(self.horizons, dtype=float)
        styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
        markers = ["o", "s", "^", "v", "D", "x"]
        for k, (name, arm) in enumerate(self.arms.items()):
            (line,) = ax.plot(
                hs,
                arm.mistakes,
                linestyle=styles[k % len(styles)],
                marker=markers[k % len(markers)],
                markersize=7 - 0.8 * (k % len(markers)),
                fillstyle="none",
                label=f"{name} (slope {arm.mistakes_slope.slope:.2f})",
            )
            if arm.mc is not None:
                ax.errorbar(
                    np.asarray(arm.mc.horizons, dtype=float),
                    arm.mc.mistakes,
                    yerr=2 * arm.mc.mistakes_se,
                    fmt="none",
                    ecolor=line.get_color(),
                    alpha=0.6,
                    capsize=2,
                )
        ys = np.concatenate([a.mistakes for a in self.arms.values()])
        top, bottom = float(ys.max()), float(ys.min())
        ax.plot(hs, top * (hs / hs[-1]) ** 2, "k--", lw=1, alpha=0.5, label="∝ T²")
        ax.plot(hs, bottom * (hs / hs[0]), "k:", lw=1, alpha=0.7, label="∝ T")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("horizon T")
        ax.set_ylabel("E[mistakes per episode]")
        ax.set_title(
            f"DriftCorridor, ε = {self.config.epsilon:g}: exact, Monte Carlo ± 2 SE", fontsize=10
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


# ------------------------------------------------------------------------------------------
# The sweep


def _log(progress: bool, cfg: HorizonConfig, text: str) -> None:
    if progress:
        print(f"[horizon ε={cfg.epsilon:g}] {text}", file=sys.stderr)


def _train_all(cfg: HorizonConfig, progress: bool) -> dict[str, list[list[Trained]]]:
    """``out[arm][seed][j]``: every arm trained at every horizon and replicate."""
    out: dict[str, list[list[Trained]]] = {a: [[] for _ in range(cfg.seeds)] for a in cfg.arms}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="protege-horizon-", dir=_scratch_root(cfg)) as tmp:
        for T in cfg.horizons:
            for arm in cfg.arms:
                for rep in range(cfg.seeds):
                    seed = derive_seed(cfg.seed, _STREAM_TRAIN, _ARM_CODE[arm], T, rep)
                    where = Path(tmp) / f"{arm}-T{T}-s{rep}"
                    out[arm][rep].append(train_arm(arm, cfg, T, seed, where))
            _log(progress, cfg, f"T={T} trained ({time.perf_counter() - t0:.1f} s)")
    return out


def _exact(cfg: HorizonConfig, tables: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    cliff = (cfg.cliff_offset or cfg.width) if cfg.cliff else None
    return exact_expectations(
        tables,
        horizon,
        cfg.epsilon,
        width=cfg.width,
        p_turn=cfg.p_turn,
        cliff_offset=cliff,
        init_offset_spread=cfg.init_offset_spread,
    )


def _monte_carlo(
    cfg: HorizonConfig, arm: str, tables: list[np.ndarray], progress: bool
) -> MonteCarlo:
    """The MC cross-check of ``arm``'s replicate-0 ``tables`` (one per horizon)."""
    hs = cfg.mc_at
    samples: dict[str, list[np.ndarray]] = {"mistakes": [], "cost": []}
    exact_m, exact_c = [], []
    for T in hs:
        table = tables[cfg.horizons.index(T)]
        seed = derive_seed(cfg.seed, _STREAM_MC, _ARM_CODE[arm], T)
        m, c = monte_carlo_episodes(table, cfg, T, cfg.mc_episodes_for(T), seed)
        samples["mistakes"].append(m)
        samples["cost"].append(c)
        em, ec = _exact(cfg, table[None], T)
        exact_m.append(em[0])
        exact_c.append(ec[0])
    _log(progress, cfg, f"Monte Carlo of {arm} done")
    boot = [np.random.default_rng([cfg.seed, _STREAM_BOOT, _ARM_CODE[arm], k]) for k in (0, 1)]

    def stats(key: str) -> tuple[np.ndarray, np.ndarray]:
        vals = samples[key]
        mean = np.array([v.mean() for v in vals])
        se = np.array([v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in vals])
        return mean, se

    (mm, mse), (cm, cse) = stats("mistakes"), stats("cost")
    return MonteCarlo(
        horizons=hs,
        episodes=tuple(len(v) for v in samples["mistakes"]),
        mistakes=mm,
        mistakes_se=mse,
        cost=cm,
        cost_se=cse,
        exact_mistakes=np.array(exact_m),
        exact_cost=np.array(exact_c),
        mistakes_slope=bootstrap_episodes_slope(
            hs, samples["mistakes"], cfg.bootstrap, cfg.ci, boot[0]
        ),
        cost_slope=bootstrap_episodes_slope(hs, samples["cost"], cfg.bootstrap, cfg.ci, boot[1]),
    )


def _slope(cfg: HorizonConfig, horizons: Sequence[int], values: np.ndarray) -> SlopeFit:
    if np.any(values <= 0):
        nan = float("nan")
        return SlopeFit(nan, nan, nan, nan, cfg.ci, "ols")
    return ols_slope(horizons, values, cfg.ci)


def _arm_result(cfg: HorizonConfig, arm: str, runs: list[list[Trained]]) -> ArmResult:
    """Exact values and slopes of one arm from its trained tables."""
    R, nT = cfg.seeds, len(cfg.horizons)
    em, ec = np.zeros((R, nT)), np.zeros((R, nT))
    for j, T in enumerate(cfg.horizons):
        stacked = np.stack([runs[rep][j].table for rep in range(R)])
        em[:, j], ec[:, j] = _exact(cfg, stacked, T)
    labels = np.array([[t.labels for t in row] for row in runs], dtype=np.int64)
    queries = np.array([[t.queries for t in row] for row in runs], dtype=np.int64)
    seed_slopes = np.array([_slope(cfg, cfg.horizons, em[r]).slope for r in range(R)])
    return ArmResult(
        name=arm,
        exact_mistakes=em,
        exact_cost=ec,
        labels=labels,
        queries=queries,
        mistakes_slope=_slope(cfg, cfg.horizons, em.mean(axis=0)),
        cost_slope=_slope(cfg, cfg.horizons, ec.mean(axis=0)),
        seed_slopes=seed_slopes,
    )


def _run_setting(cfg: HorizonConfig, progress: bool) -> HorizonResult:
    t0 = time.perf_counter()
    trained = _train_all(cfg, progress)
    train_s = time.perf_counter() - t0
    arms = {a: _arm_result(cfg, a, trained[a]) for a in cfg.arms}
    t1 = time.perf_counter()
    if cfg.mc_at:
        for a in cfg.arms:
            arms[a].mc = _monte_carlo(cfg, a, [t.table for t in trained[a][0]], progress)
    return HorizonResult(
        config=cfg,
        arms=arms,
        seconds=time.perf_counter() - t0,
        episodes_per_round=tuple(cfg.episodes_for(t) for t in cfg.horizons),
        train_seconds=train_s,
        mc_seconds=time.perf_counter() - t1,
    )


def run_horizon(config: HorizonConfig | None = None, progress: bool = False) -> HorizonResult:
    """Run the horizon sweep (and, if ``config.saturated_epsilon`` is set, the saturated one).

    Deterministic: the same config (including ``seed``) gives identical numbers. The
    saturated rerun uses the same config with ``epsilon = saturated_epsilon`` (and no Monte
    Carlo unless ``saturated_mc``); it is
    ``result.saturated`` (``result.total_seconds`` covers both sweeps).
    """
    cfg = config or HorizonConfig()
    result = _run_setting(cfg, progress)
    if cfg.saturated_epsilon is not None:
        sat_cfg = dataclasses.replace(
            cfg,
            epsilon=cfg.saturated_epsilon,
            saturated_epsilon=None,
            mc_episodes=cfg.mc_episodes if cfg.saturated_mc else 0,
        )
        result.saturated = _run_setting(sat_cfg, progress)
    return result


__all__ = [
    "ARMS",
    "Agreement",
    "ArmResult",
    "HorizonConfig",
    "HorizonResult",
    "MonteCarlo",
    "SlippingTable",
    "SlopeFit",
    "TabularNearestNeighbor",
    "TabularTrainer",
    "arm_setup",
    "bootstrap_episodes_slope",
    "chi2_sf",
    "exact_expectations",
    "lane_task",
    "loglog_slope",
    "monte_carlo_episodes",
    "ols_slope",
    "run_horizon",
    "t_quantile",
    "train_arm",
]
