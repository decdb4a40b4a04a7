"""PNG figures for reports: loss curves, return distributions, disagreement against time step.

Every function takes plain arrays (no protege objects beyond dicts of them), writes one PNG and
returns its path, so a demo or experiment composes the figures it needs. Matplotlib runs on the
Agg backend: no display is needed.

Example:
    >>> plot_returns({"expert": ev_expert.returns, "BC": ev_bc.returns}, "out/returns.png")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# One colour per method, stable across figures: the expert is always grey-black.
EXPERT_COLOR = "#444444"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
DPI = 110
# boxplot's ``vert`` is deprecated from matplotlib 3.10 (which added ``orientation``).
_HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"}
    if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)


def method_colors(names: Sequence[str]) -> dict[str, str]:
    """A colour per method name; "expert" gets :data:`EXPERT_COLOR`, the rest the palette."""
    colors, i = {}, 0
    for name in names:
        if name.lower() == "expert":
            colors[name] = EXPERT_COLOR
        else:
            colors[name] = PALETTE[i % len(PALETTE)]
            i += 1
    return colors


def plot_losses(
    history: Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    title: str = "BC loss",
    kept_step: int | None = None,
) -> Path:
    """Training and validation loss against gradient step (rows of ``BCResult.history``).

    The lowest validation loss is starred; ``kept_step``, when given, is the step whose
    weights the run kept (the last one, unless ``BCConfig.restore_best``), drawn as a dotted
    line so the figure never suggests the starred weights were kept when they were not. The
    loss can be negative (a Gaussian's NLL), so the y axis is linear, not log.
    """
    steps = np.array([row["step"] for row in history], float)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for key, label, style in (
        ("train_loss", "training (mean over the steps since the last point)", "-o"),
        ("val_loss", "validation (held-out episodes)", "-s"),
    ):
        values = np.array([row.get(key, np.nan) for row in history], float)
        if np.isfinite(values).any():
            ax.plot(steps, values, style, ms=3, lw=1.6, label=label)
    validated = [r for r in history if np.isfinite(r.get("val_loss", np.nan))]
    if validated:
        row = min(validated, key=lambda r: r["val_loss"])
        kept = " (these weights are kept)" if kept_step == row["step"] else ""
        ax.plot(
            [row["step"]],
            [row["val_loss"]],
            "*",
            ms=13,
            color="#ff7f0e",
            mec="black",
            mew=0.6,
            label=f"lowest validation {row['val_loss']:.3g} at step {int(row['step'])}{kept}",
        )
    if kept_step is not None:
        ax.axvline(
            kept_step, color="#444444", ls=":", lw=1.2, label=f"weights kept: step {kept_step}"
        )
    ax.set_xlabel("gradient step")
    ax.set_ylabel("loss (the head's objective)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8.5)
    return _save(fig, path)


def plot_returns(
    returns: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    title: str = "Episode return on the same seeded episodes",
    reference: str | None = "expert",
) -> Path:
    """Each method's per-episode returns: a box, the episodes as dots, the mean as a diamond.

    One row per method (top to bottom in the mapping's order). With ``reference`` naming a
    method, each other row's mean is also written as a percentage of the reference's mean.
    """
    names = list(returns)
    colors = method_colors(names)
    fig, ax = plt.subplots(figsize=(7.2, 1.0 + 0.85 * len(names)))
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    ref = returns.get(reference) if reference is not None else None
    ref_mean = float(np.mean(ref)) if ref is not None and len(ref) else None
    for row, name in enumerate(names):
        y = len(names) - 1 - row
        r = np.asarray(returns[name], float)
        if r.size == 0:
            continue
        ax.boxplot(
            r,
            positions=[y],
            **_HORIZONTAL,
            widths=0.5,
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": colors[name], "alpha": 0.15, "edgecolor": colors[name]},
            medianprops={"color": colors[name], "lw": 1.2},
            whiskerprops={"color": colors[name]},
            capprops={"color": colors[name]},
        )
        jitter = rng.uniform(-0.17, 0.17, r.size)
        ax.scatter(r, y + jitter, s=12, color=colors[name], alpha=0.65, lw=0, zorder=3)
        mean = float(r.mean())
        ax.scatter([mean], [y], marker="D", s=60, color=colors[name], ec="white", zorder=4)
        label = f"mean {mean:.1f}"
        if ref_mean is not None and name != reference and ref_mean != 0:
            label += f"  ({100 * mean / ref_mean:.0f}% of {reference})"
        ax.annotate(
            label, (mean, y + 0.3), ha="center", va="bottom", fontsize=8.5, color=colors[name]
        )
    if ref_mean is not None:
        ax.axvline(ref_mean, color=EXPERT_COLOR, ls="--", lw=0.9, alpha=0.6, zorder=1)
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_ylim(-0.6, len(names) - 0.2)
    ax.set_xlabel(
        "episode return (dots: episodes; ◆: mean; box: quartiles"
        + (f"; dashed: {reference}'s mean)" if ref_mean is not None else ")")
    )
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_disagreement(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str = "Disagreement with the expert along the learner's own trajectories",
    discrete: bool = True,
    smooth: int = 15,
) -> Path:
    """Per-step disagreement (top) and how many episodes reach each step (bottom).

    ``series`` maps a method to ``(disagreement_by_step, episodes_by_step)`` as in
    :class:`protege.rollout.Evaluation`. The top curve is a centred moving average over
    ``smooth`` steps (weighted by the episodes contributing), drawn only where at least 3
    episodes contribute: later steps rest on fewer episodes, and the bottom panel says how few.
    """
    colors = method_colors(list(series))
    fig, (ax, ax_n) = plt.subplots(
        2, 1, figsize=(7.2, 5.0), sharex=True, gridspec_kw={"height_ratios": [2.6, 1]}
    )
    for name, (by_step, counts) in series.items():
        by_step = np.asarray(by_step, float)
        counts = np.asarray(counts, float)
        if by_step.size == 0:
            continue
        steps = np.arange(by_step.size)
        total = np.where(counts > 0, np.nan_to_num(by_step) * counts, 0.0)
        kernel = np.ones(max(1, min(smooth, by_step.size)))  # "same" needs kernel ≤ series
        num = np.convolve(total, kernel, mode="same")
        den = np.convolve(counts, kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            smoothed = np.where(den > 0, num / den, np.nan)
        smoothed[counts < 3] = np.nan
        raw = np.where(counts >= 3, by_step, np.nan)
        ax.plot(steps, raw, color=colors[name], alpha=0.18, lw=0.8)
        overall = float(np.nansum(total) / max(counts.sum(), 1))
        ax.plot(steps, smoothed, color=colors[name], lw=1.8, label=f"{name} (mean {overall:.3f})")
        ax_n.plot(steps, counts, color=colors[name], lw=1.5)
    ax.set_ylabel("P(action ≠ expert's)" if discrete else "‖action − expert's action‖")
    if discrete:
        ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(
        frameon=False,
        fontsize=9,
        title=f"{smooth}-step moving average,\nwhere ≥ 3 episodes reach the step",
        title_fontsize=8,
        loc="upper left",
    )
    ax_n.set_ylabel("episodes\nreaching step")
    ax_n.set_xlabel("time step t")
    ax_n.set_ylim(bottom=0)
    ax_n.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_return_vs_labels(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    expert_return: float | None = None,
    target_fraction: float | None = 0.95,
    title: str = "Return against expert labels",
    ylabel: str = "mean return ± std",
) -> Path:
    """One line per method through its (labels, mean return, std) points, labels on a log axis.

    The expert's mean return and ``target_fraction`` of it are drawn as horizontal lines.
    """
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    colors = method_colors(["expert", *curves])
    if expert_return is not None:
        ax.axhline(expert_return, color=EXPERT_COLOR, ls="--", lw=1, label="expert")
        if target_fraction is not None:
            target = expert_return - (1 - target_fraction) * abs(expert_return)
            ax.axhline(
                target, color=EXPERT_COLOR, ls=":", lw=1, label=f"{target_fraction:.0%} of expert"
            )
    for name, (labels, means, stds) in curves.items():
        x, y, e = (np.asarray(v, float) for v in (labels, means, stds))
        ax.plot(x, y, "-o", ms=4, color=colors[name], label=name)
        ax.fill_between(x, y - e, y + e, color=colors[name], alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("expert labels trained on (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=True, framealpha=0.85, fontsize=8.5, loc="lower right")
    return _save(fig, path)
