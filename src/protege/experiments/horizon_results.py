"""The horizon experiment's results: per-arm exact and Monte Carlo values, slopes, the χ²
agreement, and their report (markdown tables, JSON, a log-log plot)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protege.configs.horizon import HorizonConfig
from protege.experiments.slopes import Agreement, SlopeFit, chi2_sf, loglog_slope, z_scores


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
