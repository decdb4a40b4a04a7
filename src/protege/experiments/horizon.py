"""The horizon experiment: BC's expected mistakes grow like εT², DAgger's like εT.

On the :class:`~protege.tasks.lane.DriftCorridor` lane-keeping corridor a learner slips with
probability ε on every step it controls (a "trembling hand"; the expert never slips). The
arms train the same tabular 1-nearest-neighbour learner on (d, Δc) from different data:

``bc``
    K clean expert demonstrations of length T (the expert stays on d = 0, so the data hold
    no recovery: off the centre the nearest neighbour says "follow the road", and an offset
    persists until another slip moves it). Ross & Bagnell 2010: J ≤ J* + εT².
``dagger``, ``dagger-exp``, ``dagger-linear``
    DAgger (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning and Structured
    Prediction to No-Regret Online Learning"): round 0 = the BC demos, then N rounds in which
    the mixture ``β_i π* + (1 − β_i) π̂_i`` drives (a per-step coin; learner steps slip) and the
    expert labels *every* visited state; the learner is refitted on the aggregate. β schedules:
    indicator (β_i = 0 for i ≥ 1), exponential (β_i = 0.5^i) and linear
    (β_i = max(0, 1 − i/R), R = ``linear_rampdown``). Recoverable task, so J ≤ J* + uεT.
``dart``
    DART (Laskey, Lee, Fox, Dragan & Goldberg 2017, "DART: Noise Injection for Robust
    Imitation Learning"): the K demonstrations are *executed* with slip rate ε_D and the
    expert's clean labels are stored, so the data contain recoveries; no interaction.
``hg-dagger``
    HG-DAgger (Kelly, Sidrane, Driggs-Campbell & Kochenderfer 2019, "HG-DAgger: Interactive
    Imitation Learning with Human Experts") with a scripted supervisor: starting from the BC
    demos, the learner drives; the supervisor takes over when ``|d| ≥ hg_threshold``, drives
    until d = 0, and only those takeover steps are labelled.

**Evaluation.** Each learned policy is a table over the 3(2W+1) cells (d, Δc), so the
expected mistakes ``E[M] = E Σ_t 𝟙[ã_t ≠ π*(o_t)]`` and cost ``E[C] = E Σ_t 𝟙[d_{t+1} ≠ 0]``
over an episode are computed **exactly** by propagating the distribution of d forward
through the ε-kernel (no sampling noise), and cross-checked by **Monte Carlo** with
vectorised numpy episodes that use the env's own transition function
(:func:`~protege.tasks.lane.lane_transition`). The exponent is the OLS slope of
log E[M] on log T; a percentile bootstrap over data seeds gives its confidence interval.

**Coverage.** DAgger's εT needs its data to contain the states a slip leads to. At ε = 2.5e-4
and T = 50, K = 20 learner episodes slip 0.25 times per round on average, so each DAgger and
HG-DAgger round runs ``max(episodes_per_round, ⌈min_steps_per_round / T⌉)`` episodes
(set ``min_steps_per_round=0`` to see DAgger fall back to BC's behaviour at short horizons).

**Saturation.** When εT ≳ 1 BC's offset random walk fills the corridor and its E[M]
approaches a constant per step, so the fitted slope falls toward 1; ``saturated_epsilon``
(default 1e-2) reruns the sweep in that regime.

Example:
    >>> from protege.experiments.horizon import HorizonConfig, run_horizon
    >>> result = run_horizon(HorizonConfig(seed=0))
    >>> print(result.to_markdown())
    >>> result.plot("horizon.png")
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from protege.errors import ConfigError
from protege.tasks.lane import WIDTH, expert_steer, lane_transition, road_probs

ARMS: tuple[str, ...] = ("bc", "dagger", "dagger-exp", "dagger-linear", "dart", "hg-dagger")
"""Every arm the experiment knows, in reporting order."""

_SCHEDULES = {
    "dagger": "indicator",
    "dagger-exp": "exponential",
    "dagger-linear": "linear",
    "hg-dagger": "gated",
}
_ARM_CODE = {name: i for i, name in enumerate(ARMS)}
_STREAM_DEMOS, _STREAM_ROUND, _STREAM_MC, _STREAM_BOOT = 1, 2, 3, 4
_CHUNK = 32  # steps of random draws generated at once


@dataclass(frozen=True)
class HorizonConfig:
    """Settings of one horizon sweep (every field has the documented default).

    The defaults are the headline setting of the DriftCorridor spec: straight road, W = 5,
    ε = 2.5e-4 (so εT ≤ 0.25), K = 20 demos, 5 DAgger rounds, 5 data seeds.
    """

    horizons: tuple[int, ...] = (50, 100, 200, 500, 1000)
    epsilon: float = 2.5e-4
    """Learner slip rate at training-time rollouts and at evaluation."""
    epsilon_dart: float = 0.05
    """DART's slip rate ε_D while the expert demonstrates."""
    n_demos: int = 20
    """K: expert demonstrations (episodes of length T) for BC, DART and round 0."""
    dagger_rounds: int = 5
    episodes_per_round: int = 20
    min_steps_per_round: int = 20_000
    """Each interactive round runs at least this many steps (see the module docstring)."""
    linear_rampdown: int | None = None
    """R of the linear β schedule; ``None`` means ``dagger_rounds`` (last round β = 0)."""
    hg_threshold: int = 1
    """HG-DAgger's supervisor takes over at ``|d| ≥ hg_threshold`` and returns at d = 0."""
    seeds: int = 5
    """Data replicates; each changes the data collected (never the evaluation, which is exact)."""
    mc_episodes: int = 10_000
    """Monte Carlo episodes per (arm, T) for the first replicate's policies; 0 skips MC."""
    bootstrap: int = 2000
    ci: float = 0.95
    seed: int = 0
    width: int = WIDTH
    p_turn: float = 0.0
    cliff: bool = False
    cliff_offset: int | None = None
    init_offset_spread: int = 0
    saturated_epsilon: float | None = 1e-2
    """Rerun the sweep (exact only) at this ε to show saturation; ``None`` skips it."""
    arms: tuple[str, ...] = ARMS

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(int(t) for t in self.horizons))
        object.__setattr__(self, "arms", tuple(self.arms))

        def bad(msg: str) -> ConfigError:
            return ConfigError(f"HorizonConfig: {msg}")

        if len(self.horizons) < 2 or any(int(t) < 1 for t in self.horizons):
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
        for name in ("n_demos", "seeds", "width"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("dagger_rounds", "episodes_per_round", "min_steps_per_round", "mc_episodes"):
            if getattr(self, name) < 0:
                raise bad(f"{name} must be ≥ 0, got {getattr(self, name)}")
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

    def episodes_for(self, horizon: int) -> int:
        """Episodes per interactive round at horizon T."""
        return max(self.episodes_per_round, math.ceil(self.min_steps_per_round / horizon))

    def beta(self, arm: str, round_index: int) -> float:
        """β_i of a DAgger arm at round i ≥ 1 (round 0 is the expert's demos, β = 1)."""
        schedule = _SCHEDULES[arm]
        if schedule == "exponential":
            return 0.5**round_index
        if schedule == "linear":
            r = self.linear_rampdown or max(self.dagger_rounds, 1)
            return max(0.0, 1.0 - round_index / r)
        return 0.0


@dataclass(frozen=True)
class SlopeFit:
    """OLS slope of log y on log T, with a percentile-bootstrap interval over seeds."""

    slope: float
    low: float
    high: float
    level: float

    def __str__(self) -> str:
        return f"{self.slope:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass
class ArmResult:
    """Everything measured for one arm. Arrays are indexed ``[seed, horizon]`` or ``[horizon]``."""

    name: str
    exact_mistakes: np.ndarray
    """(seeds, n_T) exact E[mistakes per episode] of each replicate's policy."""
    exact_cost: np.ndarray
    """(seeds, n_T) exact E[off-centre steps per episode]."""
    labels: np.ndarray
    """(seeds, n_T) int64 expert labels the arm used (demos included)."""
    mistakes_slope: SlopeFit
    cost_slope: SlopeFit
    mc_mistakes: np.ndarray | None = None
    """(n_T,) Monte Carlo mean mistakes of replicate 0's policy (None when MC is off)."""
    mc_mistakes_se: np.ndarray | None = None
    mc_cost: np.ndarray | None = None
    mc_cost_se: np.ndarray | None = None

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


@dataclass
class HorizonResult:
    """Per-arm, per-T exact and Monte Carlo values, labels, slopes and CIs of one sweep."""

    config: HorizonConfig
    arms: dict[str, ArmResult]
    seconds: float
    saturated: HorizonResult | None = None
    episodes_per_round: tuple[int, ...] = field(default_factory=tuple)

    @property
    def horizons(self) -> tuple[int, ...]:
        return tuple(int(t) for t in self.config.horizons)

    def slopes(self) -> dict[str, SlopeFit]:
        """The E[mistakes] slope fit of every arm."""
        return {name: arm.mistakes_slope for name, arm in self.arms.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (lists and floats only)."""

        def fit(s: SlopeFit) -> dict[str, float]:
            return {"slope": s.slope, "low": s.low, "high": s.high, "level": s.level}

        def opt(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(x) for x in a]

        out: dict[str, Any] = {
            "config": dataclasses.asdict(self.config),
            "seconds": self.seconds,
            "episodes_per_round": list(self.episodes_per_round),
            "arms": {
                name: {
                    "exact_mistakes": arm.mistakes.tolist(),
                    "exact_cost": arm.cost.tolist(),
                    "labels": arm.mean_labels.tolist(),
                    "mistakes_slope": fit(arm.mistakes_slope),
                    "cost_slope": fit(arm.cost_slope),
                    "mc_mistakes": opt(arm.mc_mistakes),
                    "mc_mistakes_se": opt(arm.mc_mistakes_se),
                    "mc_cost": opt(arm.mc_cost),
                    "mc_cost_se": opt(arm.mc_cost_se),
                }
                for name, arm in self.arms.items()
            },
        }
        if self.saturated is not None:
            out["saturated"] = self.saturated.to_dict()
        return out

    def to_markdown(self) -> str:
        """Tables of exact E[mistakes], cost, labels, slopes and the MC cross-check."""
        cfg = self.config
        hs = self.horizons
        road = f"winding p_turn={cfg.p_turn:g}" if cfg.p_turn > 0 else "straight"
        head = "| arm | " + " | ".join(f"T={t}" for t in hs)
        rule = "|---|" + "---:|" * len(hs)
        pct = round(100 * cfg.ci)
        lines = [
            f"### Horizon sweep: ε = {cfg.epsilon:g}, {road} road, W = {cfg.width}"
            + (f", cliff at |d| ≥ {cfg.cliff_offset or cfg.width}" if cfg.cliff else "")
            + f", {cfg.seeds} data seeds, seed {cfg.seed}",
            "",
            f"Exact E[mistakes per episode] (mean over seeds) and log-log slope [{pct}% CI]:",
            "",
            head + " | slope | cost slope |",
            rule + "---|---|",
        ]
        for name, arm in self.arms.items():
            vals = " | ".join(_fmt(v) for v in arm.mistakes)
            lines.append(f"| {name} | {vals} | {arm.mistakes_slope} | {arm.cost_slope} |")
        lines += ["", "Exact E[off-centre steps per episode]:", "", head + " |", rule]
        for name, arm in self.arms.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in arm.cost) + " |")
        lines += [
            "",
            "Expert labels used (mean over seeds, demos included):",
            "",
            head + " |",
            rule,
        ]
        for name, arm in self.arms.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in arm.mean_labels) + " |")
        with_mc = [a for a in self.arms.values() if a.mc_mistakes is not None]
        if with_mc:
            lines += [
                "",
                f"Monte Carlo cross-check ({cfg.mc_episodes:,} episodes per cell, seed-0 "
                "policies): MC mean ± SE of mistakes, and z = (MC − exact) / SE:",
                "",
                head + " |",
                rule,
            ]
            for arm in with_mc:
                assert arm.mc_mistakes is not None and arm.mc_mistakes_se is not None
                cells = []
                for j in range(len(hs)):
                    m, se = arm.mc_mistakes[j], arm.mc_mistakes_se[j]
                    z = (m - arm.exact_mistakes[0, j]) / se if se > 0 else 0.0
                    cells.append(f"{_fmt(m)} ± {_fmt(se)} (z={z:+.1f})")
                lines.append(f"| {arm.name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Runtime {self.seconds:.2f} s" + (" (whole run)." if self.saturated else "."),
        ]
        text = "\n".join(lines)
        if self.saturated is not None:
            text += "\n\n" + self.saturated.to_markdown()
        return text

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
            if arm.mc_mistakes is not None and arm.mc_mistakes_se is not None:
                ax.errorbar(
                    hs,
                    arm.mc_mistakes,
                    yerr=2 * arm.mc_mistakes_se,
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
        ax.set_ylabel("E[mistakes per episode] (exact)")
        ax.set_title(f"DriftCorridor, ε = {self.config.epsilon:g}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


# ------------------------------------------------------------------------------------------
# The tabular 1-NN learner


class _Lane(NamedTuple):
    width: int
    road: np.ndarray  # P(Δc = −1, 0, +1)
    cliff_offset: int | None
    init_spread: int

    @property
    def n_offsets(self) -> int:
        return 2 * self.width + 1

    @property
    def n_cells(self) -> int:
        return 3 * self.n_offsets


def _cell_coords(width: int) -> tuple[np.ndarray, np.ndarray]:
    """(d, Δc) of every cell, cell = (d + W)·3 + (Δc + 1)."""
    d = np.repeat(np.arange(-width, width + 1), 3)
    dc = np.tile(np.arange(-1, 2), 2 * width + 1)
    return d, dc


@functools.lru_cache(maxsize=8)
def _preference_order(width: int) -> np.ndarray:
    """(n_cells, n_cells): for each query cell, all cells from most to least preferred.

    Nearest by Euclidean distance in (d, Δc); ties go to the candidate nearer the centre
    (smaller |d|, then smaller |Δc|), then to smaller d, then smaller Δc.
    """
    d, dc = _cell_coords(width)
    order = np.empty((d.size, d.size), dtype=np.int64)
    for q in range(d.size):
        dist = (d - d[q]) ** 2 + (dc - dc[q]) ** 2
        order[q] = np.lexsort((dc, d, np.abs(dc), np.abs(d), dist))
    order.flags.writeable = False  # cached and shared
    return order


class TabularNearestNeighbor:
    """The spec's tabular 1-NN learner on (d, Δc), batched over G independent datasets.

    ``counts[g, cell, a]`` holds how often action index ``a`` was labelled at ``cell`` in
    dataset g. Each labelled cell predicts its majority label; any other cell copies the
    nearest labelled cell (ties: see :func:`_preference_order`). With no data it steers 0.
    ``tables`` (G, n_cells) holds steer values −1..1.
    """

    def __init__(self, counts: np.ndarray, width: int = WIDTH) -> None:
        counts = np.asarray(counts)
        if counts.ndim == 2:
            counts = counts[None]
        self.width = width
        self.counts = counts
        labelled = counts.sum(axis=2) > 0  # (G, n)
        majority = counts.argmax(axis=2)  # (G, n) action index
        order = _preference_order(width)  # (n, n)
        hit = labelled[:, order]  # (G, n, n)
        first = hit.argmax(axis=2)  # (G, n) position of first labelled candidate
        source = np.take_along_axis(np.broadcast_to(order, hit.shape), first[..., None], 2)[..., 0]
        steer = np.take_along_axis(majority, source, axis=1) - 1
        steer[~labelled.any(axis=1)] = 0
        self.tables = steer.astype(np.int64)

    @classmethod
    def fit(
        cls, obs: np.ndarray, actions: np.ndarray, width: int = WIDTH
    ) -> TabularNearestNeighbor:
        """Fit one table on ``(N, 2)`` observations and ``(N,)`` action indices."""
        o = np.rint(np.asarray(obs, dtype=np.float64)).astype(np.int64).reshape(-1, 2)
        cell = (np.clip(o[:, 0], -width, width) + width) * 3 + np.clip(o[:, 1], -1, 1) + 1
        n = 3 * (2 * width + 1)
        counts = np.bincount(cell * 3 + np.asarray(actions, dtype=np.int64), minlength=3 * n)
        return cls(counts.reshape(1, n, 3), width)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """Action indices of the first table for ``(N, 2)`` observations (Expert protocol)."""
        o = np.rint(np.atleast_2d(np.asarray(obs, dtype=np.float64))).astype(np.int64)
        w = self.width
        cell = (np.clip(o[:, 0], -w, w) + w) * 3 + np.clip(o[:, 1], -1, 1) + 1
        return self.tables[0, cell] + 1

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""


# ------------------------------------------------------------------------------------------
# Batched episodes (data collection and Monte Carlo)


def _rngs(cfg_seed: int, stream: int, keys: Sequence[tuple[int, ...]]) -> list[np.random.Generator]:
    return [np.random.default_rng([cfg_seed, stream, *k]) for k in keys]


def _bernoulli_positions(rng: np.random.Generator, rate: float, length: int) -> np.ndarray:
    """Sorted indices in [0, length) of a Bernoulli(rate) process, drawn via geometric gaps.

    Exact, and O(number of events) rather than O(length): slips are rare.
    """
    if rate <= 0.0 or length <= 0:
        return np.zeros(0, dtype=np.int64)
    if rate >= 1.0:
        return np.arange(length, dtype=np.int64)
    mean = length * rate
    chunks: list[np.ndarray] = []
    last = -1
    while last < length:
        size = int(mean + 6.0 * math.sqrt(mean) + 16)
        pos = last + np.cumsum(rng.geometric(rate, size=size))
        chunks.append(pos)
        last = int(pos[-1])
    out = np.concatenate(chunks)
    return out[out < length]


class _Events(NamedTuple):
    """Candidate slip events of all rows, sorted by step: ``rows[ptr[s]:ptr[s+1]]`` at step s."""

    ptr: np.ndarray
    rows: np.ndarray
    sign: np.ndarray  # uniforms choosing ξ = −1 (< 0.5) or +1
    thin: np.ndarray  # uniforms for thinning to the row's actual rate


def _slip_events(
    rngs: Sequence[np.random.Generator], rates: np.ndarray, n_rows: int, horizon: int
) -> _Events:
    """Candidate events at each group's rate ``rates[g]`` over its (horizon × n_rows) grid."""
    steps, rows, sign, thin = [], [], [], []
    for g, (rng, rate) in enumerate(zip(rngs, rates, strict=True)):
        pos = _bernoulli_positions(rng, float(rate), horizon * n_rows)
        u = rng.random((pos.size, 2))
        steps.append(pos // n_rows)
        rows.append(pos % n_rows + g * n_rows)
        sign.append(u[:, 0])
        thin.append(u[:, 1])
    step = np.concatenate(steps)
    order = np.argsort(step, kind="stable")
    ptr = np.searchsorted(step[order], np.arange(horizon + 1))
    return _Events(
        ptr, np.concatenate(rows)[order], np.concatenate(sign)[order], np.concatenate(thin)[order]
    )


def _dense(
    rngs: Sequence[np.random.Generator], active: np.ndarray, n_rows: int, steps: int
) -> np.ndarray:
    """(steps, G·n_rows) uniforms for groups with ``active[g]``; 0.5 elsewhere (never drawn)."""
    blocks = [
        rng.random((steps, n_rows)) if act else np.full((steps, n_rows), 0.5)
        for rng, act in zip(rngs, active, strict=True)
    ]
    return np.concatenate(blocks, axis=1)


def _road_from(u: np.ndarray, road: np.ndarray) -> np.ndarray:
    return (u >= road[0]).astype(np.int64) + (u >= road[0] + road[1]) - 1


class _Sim(NamedTuple):
    counts: np.ndarray  # (G, n_cells, 3) expert labels per cell and action index
    labels: np.ndarray  # (G,) number of expert labels
    mistakes: np.ndarray  # (G, n) per-episode mistakes ã ≠ π*(o)
    cost: np.ndarray  # (G, n) per-episode off-centre steps


def _simulate(
    lane: _Lane,
    tables: np.ndarray,
    rngs: Sequence[np.random.Generator],
    n_episodes: int,
    horizon: int,
    *,
    beta: np.ndarray,
    slip_learner: np.ndarray,
    slip_expert: np.ndarray,
    gated: np.ndarray,
    hg_threshold: int = 1,
    record: bool = True,
) -> _Sim:
    """Run ``n_episodes`` vectorised episodes per group g with learner ``tables[g]``.

    Who drives a step: in non-gated groups the expert with probability ``beta[g]`` (a
    per-step coin; BC/DART demos have β = 1, DAgger round i has β_i, evaluation β = 0) and
    every step is labelled. In gated groups (HG-DAgger) the expert drives while the gate is
    open (it opens at ``|d| ≥ hg_threshold`` and closes at d = 0) and only those steps are
    labelled. Learner steps slip at ``slip_learner[g]``, expert steps at ``slip_expert[g]``
    (DART's noisy demonstrator). Labels are always the expert's clean action. The dynamics
    are :func:`~protege.tasks.lane.lane_transition`, as in the env.
    """
    G = len(rngs)
    n = n_episodes
    N = G * n
    w = lane.width
    row_group = np.repeat(np.arange(G), n)
    gated_r = gated[row_group]
    any_gated = bool(gated.any())
    coin = (beta > 0.0) & (beta < 1.0)
    always_expert = (beta >= 1.0)[row_group] & ~gated_r
    expert_possible = any_gated or bool((beta > 0.0).any())
    cand_rate = np.where(expert_possible, np.maximum(slip_learner, slip_expert), slip_learner)
    cand_r = cand_rate[row_group]
    slip_l, slip_e = slip_learner[row_group], slip_expert[row_group]
    table_flat = np.ascontiguousarray(tables, dtype=np.int64).reshape(-1)
    table_base = row_group * lane.n_cells + (3 * w + 1)
    d_cells, dc_cells = _cell_coords(w)
    expert_table = expert_steer(d_cells, dc_cells)
    code_base = row_group * (lane.n_cells * 3) + 1
    winding = lane.road[1] < 1.0
    # Initial state, then slip candidates, then per-chunk coins and road: a fixed draw order.
    if lane.init_spread > 0:
        s0 = lane.init_spread
        u0 = _dense(rngs, np.ones(G, dtype=bool), n, 1)[0]
        d = np.minimum((u0 * (2 * s0 + 1)).astype(np.int64), 2 * s0) - s0
    else:
        d = np.zeros(N, dtype=np.int64)
    dc = (
        _road_from(_dense(rngs, np.ones(G, dtype=bool), n, 1)[0], lane.road)
        if winding
        else np.zeros(N, dtype=np.int64)
    )
    events = _slip_events(rngs, cand_rate, n, horizon)
    gate = np.zeros(N, dtype=bool)
    expert_ctrl = always_expert
    codes = np.empty((horizon, N), dtype=np.int64) if record else None
    mistakes = np.zeros(N, dtype=np.int64)
    cost = np.zeros(N, dtype=np.int64)
    beta_r = beta[row_group]
    for start in range(0, horizon, _CHUNK):
        steps = min(_CHUNK, horizon - start)
        coins = _dense(rngs, coin, n, steps) if coin.any() else None
        roads = _dense(rngs, np.ones(G, dtype=bool), n, steps) if winding else None
        for s in range(steps):
            t = start + s
            cell = d * 3 + dc  # + (3W + 1) is folded into table_base / expert offsets
            e = expert_table[cell + (3 * w + 1)]
            a = table_flat[table_base + cell]
            if expert_possible:
                expert_ctrl = always_expert
                if coins is not None:
                    expert_ctrl = expert_ctrl | (coins[s] < beta_r)
                if any_gated:
                    gate = gated_r & (gate | (np.abs(d) >= hg_threshold)) & (d != 0)
                    expert_ctrl = expert_ctrl | gate
                a = np.where(expert_ctrl, e, a)
            lo, hi = events.ptr[t], events.ptr[t + 1]
            if hi > lo:
                rows = events.rows[lo:hi]
                rate = (
                    np.where(expert_ctrl[rows], slip_e[rows], slip_l[rows])
                    if expert_possible
                    else slip_l[rows]
                )
                keep = events.thin[lo:hi] * cand_r[rows] < rate
                a[rows[keep]] += np.where(events.sign[lo:hi][keep] < 0.5, -1, 1)
            if codes is not None:
                code = code_base + (cell + (3 * w + 1)) * 3 + e
                if any_gated:
                    code = np.where(expert_ctrl | ~gated_r, code, -1)
                codes[t] = code
            mistakes += a != e
            d = lane_transition(d, a, dc, w, lane.cliff_offset)
            cost += d != 0
            if roads is not None:
                dc = _road_from(roads[s], lane.road)
    if codes is not None:
        flat = codes.reshape(-1)
        flat = flat[flat >= 0]
        counts = np.bincount(flat, minlength=G * lane.n_cells * 3).reshape(G, lane.n_cells, 3)
    else:
        counts = np.zeros((G, lane.n_cells, 3), dtype=np.int64)
    return _Sim(counts, counts.sum(axis=(1, 2)), mistakes.reshape(G, n), cost.reshape(G, n))


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
    """Exact E[mistakes] and E[cost] per episode of deterministic tabular policies.

    ``tables`` (G, 3(2W+1)) holds steer values per cell. Δc is i.i.d., so the state
    distribution over d alone is propagated through the learner's ε-kernel:
    ``p_{t+1} = p_t P``, ``E[M] = Σ_{t<T} p_t·m``, ``E[C] = Σ_{1≤t≤T} p_t·𝟙[d ≠ 0]``.
    Returns two (G,) arrays.
    """
    tables = np.atleast_2d(np.asarray(tables, dtype=np.int64))
    G = tables.shape[0]
    S = 2 * width + 1
    road = road_probs(p_turn)
    d_cells, dc_cells = _cell_coords(width)
    expert = expert_steer(d_cells, dc_cells)  # (n,)
    q = road[dc_cells + 1]  # (n,)
    P = np.zeros((G, S, S))
    m = np.zeros((G, S))
    g_idx = np.arange(G)[:, None]
    src = d_cells + width
    for xi, px in ((0, 1.0 - epsilon), (-1, epsilon / 2), (1, epsilon / 2)):
        if px == 0.0:
            continue
        executed = tables + xi  # (G, n)
        nxt = lane_transition(d_cells, executed, dc_cells, width, cliff_offset) + width
        w = q * px  # (n,)
        np.add.at(P, (g_idx, src[None, :], nxt), np.broadcast_to(w, executed.shape))
        np.add.at(
            m, (g_idx, src[None, :]), np.broadcast_to(w, executed.shape) * (executed != expert)
        )
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
# Slopes


def loglog_slope(horizons: Sequence[float], values: np.ndarray) -> np.ndarray:
    """OLS slope of log(values) on log(horizons) along the last axis (any leading shape)."""
    x = np.log(np.asarray(horizons, dtype=float))
    x = x - x.mean()
    y = np.log(np.asarray(values, dtype=float))
    y = y - y.mean(axis=-1, keepdims=True)
    return (y @ x) / float(x @ x)


def bootstrap_slope(
    horizons: Sequence[float],
    per_seed: np.ndarray,
    n_boot: int,
    level: float,
    rng: np.random.Generator,
) -> SlopeFit:
    """Slope of the seed-mean curve, with a percentile bootstrap CI resampling seeds."""
    per_seed = np.asarray(per_seed, dtype=float)
    point = float(loglog_slope(horizons, per_seed.mean(axis=0)))
    n = per_seed.shape[0]
    idx = rng.integers(0, n, size=(n_boot, n))
    boot = loglog_slope(horizons, per_seed[idx].mean(axis=1))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return SlopeFit(point, float(min(lo, point)), float(max(hi, point)), level)


# ------------------------------------------------------------------------------------------
# The sweep


def _lane(cfg: HorizonConfig) -> _Lane:
    cliff = (cfg.cliff_offset or cfg.width) if cfg.cliff else None
    return _Lane(cfg.width, road_probs(cfg.p_turn), cliff, cfg.init_offset_spread)


def _run_setting(cfg: HorizonConfig, progress: bool) -> HorizonResult:
    t0 = time.perf_counter()
    lane = _lane(cfg)
    R = cfg.seeds
    nT = len(cfg.horizons)
    arms = cfg.arms
    exact_m = {a: np.zeros((R, nT)) for a in arms}
    exact_c = {a: np.zeros((R, nT)) for a in arms}
    labels = {a: np.zeros((R, nT), dtype=np.int64) for a in arms}
    mc: dict[str, list[np.ndarray]] = {a: [np.zeros(nT) for _ in range(4)] for a in arms}
    interactive = [a for a in arms if a in _SCHEDULES]
    need_bc = any(a == "bc" or a in _SCHEDULES for a in arms)
    zeros_tables = np.zeros((1, lane.n_cells), dtype=np.int64)
    for j, T in enumerate(cfg.horizons):
        T = int(T)
        tables: dict[str, np.ndarray] = {}
        # Round 0: BC demos (clean) and DART demos (slipping expert, clean labels).
        demo_arms = (["bc"] if need_bc else []) + (["dart"] if "dart" in arms else [])
        keys: list[tuple[int, ...]] = [
            (_ARM_CODE[a], rep, T) for a in demo_arms for rep in range(R)
        ]
        G = len(keys)
        demos = _simulate(
            lane,
            np.repeat(zeros_tables, G, axis=0),
            _rngs(cfg.seed, _STREAM_DEMOS, keys),
            cfg.n_demos,
            T,
            beta=np.ones(G),
            slip_learner=np.zeros(G),
            slip_expert=np.array(
                [cfg.epsilon_dart if a == "dart" else 0.0 for a in demo_arms for _ in range(R)]
            ),
            gated=np.zeros(G, dtype=bool),
        )
        bc_counts = demos.counts[:R] if need_bc else None
        bc_labels = demos.labels[:R] if need_bc else None
        if "bc" in arms:
            tables["bc"] = TabularNearestNeighbor(demos.counts[:R], cfg.width).tables
            labels["bc"][:, j] = demos.labels[:R]
        if "dart" in arms:
            k = R if need_bc else 0
            tables["dart"] = TabularNearestNeighbor(demos.counts[k : k + R], cfg.width).tables
            labels["dart"][:, j] = demos.labels[k : k + R]
        # Interactive rounds (DAgger schedules and HG-DAgger), batched over arms × seeds.
        if interactive:
            assert bc_counts is not None and bc_labels is not None
            counts = np.concatenate([bc_counts] * len(interactive), axis=0)
            n_labels = np.concatenate([bc_labels] * len(interactive), axis=0)
            gated = np.repeat([_SCHEDULES[a] == "gated" for a in interactive], R)
            G = counts.shape[0]
            for i in range(1, cfg.dagger_rounds + 1):
                learner = TabularNearestNeighbor(counts, cfg.width).tables
                beta = np.repeat(
                    [0.0 if _SCHEDULES[a] == "gated" else cfg.beta(a, i) for a in interactive], R
                )
                keys = [(_ARM_CODE[a], rep, T, i) for a in interactive for rep in range(R)]
                new = _simulate(
                    lane,
                    learner,
                    _rngs(cfg.seed, _STREAM_ROUND, keys),
                    cfg.episodes_for(T),
                    T,
                    beta=beta,
                    slip_learner=np.full(G, cfg.epsilon),
                    slip_expert=np.zeros(G),
                    gated=gated,
                    hg_threshold=cfg.hg_threshold,
                )
                counts = counts + new.counts
                n_labels = n_labels + new.labels
            final = TabularNearestNeighbor(counts, cfg.width).tables
            for k, a in enumerate(interactive):
                tables[a] = final[k * R : (k + 1) * R]
                labels[a][:, j] = n_labels[k * R : (k + 1) * R]
        # Exact evaluation of every (arm, seed) policy.
        stacked = np.concatenate([tables[a] for a in arms], axis=0)
        em, ec = exact_expectations(
            stacked,
            T,
            cfg.epsilon,
            width=cfg.width,
            p_turn=cfg.p_turn,
            cliff_offset=lane.cliff_offset,
            init_offset_spread=cfg.init_offset_spread,
        )
        for k, a in enumerate(arms):
            exact_m[a][:, j] = em[k * R : (k + 1) * R]
            exact_c[a][:, j] = ec[k * R : (k + 1) * R]
        # Monte Carlo cross-check of seed 0's policies.
        if cfg.mc_episodes > 0:
            first = np.stack([tables[a][0] for a in arms])
            keys = [(_ARM_CODE[a], T) for a in arms]
            n_arms = len(arms)
            sim = _simulate(
                lane,
                first,
                _rngs(cfg.seed, _STREAM_MC, keys),
                cfg.mc_episodes,
                T,
                beta=np.zeros(n_arms),
                slip_learner=np.full(n_arms, cfg.epsilon),
                slip_expert=np.zeros(n_arms),
                gated=np.zeros(n_arms, dtype=bool),
                record=False,
            )
            mm, cc = sim.mistakes, sim.cost
            sq = math.sqrt(cfg.mc_episodes)
            for k, a in enumerate(arms):
                mc[a][0][j] = mm[k].mean()
                mc[a][1][j] = mm[k].std(ddof=1) / sq if cfg.mc_episodes > 1 else 0.0
                mc[a][2][j] = cc[k].mean()
                mc[a][3][j] = cc[k].std(ddof=1) / sq if cfg.mc_episodes > 1 else 0.0
        if progress:
            print(
                f"[horizon ε={cfg.epsilon:g}] T={T} done ({time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
    results: dict[str, ArmResult] = {}
    for a in arms:
        boot = [np.random.default_rng([cfg.seed, _STREAM_BOOT, _ARM_CODE[a], m]) for m in (0, 1)]
        results[a] = ArmResult(
            name=a,
            exact_mistakes=exact_m[a],
            exact_cost=exact_c[a],
            labels=labels[a],
            mistakes_slope=_slope(cfg, exact_m[a], boot[0]),
            cost_slope=_slope(cfg, exact_c[a], boot[1]),
            mc_mistakes=mc[a][0] if cfg.mc_episodes else None,
            mc_mistakes_se=mc[a][1] if cfg.mc_episodes else None,
            mc_cost=mc[a][2] if cfg.mc_episodes else None,
            mc_cost_se=mc[a][3] if cfg.mc_episodes else None,
        )
    return HorizonResult(
        config=cfg,
        arms=results,
        seconds=time.perf_counter() - t0,
        episodes_per_round=tuple(cfg.episodes_for(int(t)) for t in cfg.horizons),
    )


def _slope(cfg: HorizonConfig, values: np.ndarray, rng: np.random.Generator) -> SlopeFit:
    if np.any(values <= 0):
        nan = float("nan")
        return SlopeFit(nan, nan, nan, cfg.ci)
    return bootstrap_slope(cfg.horizons, values, cfg.bootstrap, cfg.ci, rng)


def run_horizon(config: HorizonConfig | None = None, progress: bool = False) -> HorizonResult:
    """Run the horizon sweep (and, if ``config.saturated_epsilon`` is set, the saturated one).

    Deterministic: the same config (including ``seed``) gives identical numbers. The
    saturated rerun uses the same config with ``epsilon = saturated_epsilon`` and no Monte
    Carlo; it is ``result.saturated``.
    """
    cfg = config or HorizonConfig()
    t0 = time.perf_counter()
    result = _run_setting(cfg, progress)
    if cfg.saturated_epsilon is not None:
        sat_cfg = dataclasses.replace(
            cfg, epsilon=cfg.saturated_epsilon, saturated_epsilon=None, mc_episodes=0
        )
        result.saturated = _run_setting(sat_cfg, progress)
    result.seconds = time.perf_counter() - t0
    return result


__all__ = [
    "ARMS",
    "ArmResult",
    "HorizonConfig",
    "HorizonResult",
    "SlopeFit",
    "TabularNearestNeighbor",
    "bootstrap_slope",
    "exact_expectations",
    "loglog_slope",
    "run_horizon",
]
