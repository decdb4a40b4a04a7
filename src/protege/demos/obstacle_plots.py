"""The obstacle demo's figures: sampled chunks and first actions at the obstacle, and success
against sampling steps (:mod:`protege.demos.obstacle` draws them into its report)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from protege.data.store import Transitions
from protege.policies import Policy
from protege.tasks.obstacle import COURSE, LEFT, RIGHT, ObstacleExpert, clip_command

PROBE = np.array([0.24, 0.0], np.float32)
"""Where the chunk-8 policies plan their second chunk when they start on the centre line:
just past the point where demonstrators split, 0.11 before the obstacle's surface."""


def chunk_paths(policy: Policy, n: int, seed: int) -> np.ndarray:
    """(n, H+1, 2) positions the sampled chunks at PROBE would drive through, open loop."""
    chunks = policy.predict_chunk(
        np.repeat(PROBE[None], n, 0),
        deterministic=False,
        generator=torch.Generator().manual_seed(seed),
    )
    steps = COURSE.max_speed * clip_command(chunks, COURSE.min_forward)
    return np.concatenate([np.repeat(PROBE[None, None], n, 0), PROBE + steps.cumsum(1)], 1)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def plot_chunks(policies: dict[str, Policy], demos: Transitions, path: Path, seed: int) -> Path:
    import matplotlib.pyplot as plt

    rows, cols = _grid(len(policies))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.8 * rows), sharex=True, sharey=True, squeeze=False
    )
    starts = demos.episode_starts
    for ax in axes.flat[len(policies) :]:
        ax.axis("off")
    for ax, (head, policy) in zip(axes.flat, policies.items(), strict=False):
        for s, n in zip(starts[:60], demos.episode_lengths[:60], strict=True):
            ax.plot(demos.obs[s : s + n, 0], demos.obs[s : s + n, 1], c="0.85", lw=0.6)
        ax.add_patch(
            plt.Circle(COURSE.obstacle, COURSE.obstacle_radius, color="tab:red", alpha=0.5)
        )
        gx, gy = COURSE.goal
        ax.plot([gx, gx], [gy - COURSE.goal_half_width, gy + COURSE.goal_half_width], c="g", lw=3)
        paths = chunk_paths(policy, 200, seed)
        lat = paths[:, -1, 1] - PROBE[1]
        for p, d in zip(paths, lat, strict=True):
            color = "tab:blue" if d > 0.05 else "tab:orange" if d < -0.05 else "k"
            ax.plot(p[:, 0], p[:, 1], c=color, lw=0.7, alpha=0.35)
        ax.plot(*PROBE, "k*", ms=9)
        frac = [(lat > 0.05).mean(), (lat < -0.05).mean()]
        ax.set_title(
            f"{head}: {frac[0]:.0%} left, {frac[1]:.0%} right, {1 - sum(frac):.0%} between"
        )
        ax.set_xlim(-0.02, 1.05)
        ax.set_ylim(-0.45, 0.45)
        ax.set_aspect("equal")
    chunk = next(iter(policies.values())).config.chunk_size
    fig.suptitle(
        f"200 sampled {chunk}-step chunks at ★ (0.24, 0), driven open loop; "
        "grey: expert demonstrations"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_actions(policies: dict[str, Policy], path: Path, seed: int) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(policies), figsize=(3.2 * len(policies), 3.4), sharey=True, squeeze=False
    )
    probe = np.repeat(np.array([[0.21, 0.0]], np.float32), 200, 0)
    expert = ObstacleExpert().act(probe[:2], {"side": np.array([LEFT, RIGHT])})
    for ax, (head, policy) in zip(axes[0], policies.items(), strict=True):
        a = policy.predict_chunk(
            probe, deterministic=False, generator=torch.Generator().manual_seed(seed)
        )[:, 0]
        ax.scatter(a[:, 0], a[:, 1], s=8, alpha=0.5)
        ax.scatter(expert[:, 0], expert[:, 1], marker="x", s=60, c="r")
        ax.set_title(head)
        ax.set_xlabel("forward command")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
    axes[0, 0].set_ylabel("lateral command (+ = left)")
    fig.suptitle("200 sampled actions at (0.21, 0), chunk-1 policies; ×: the expert's two actions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_steps(sweep: dict[str, dict[int, float]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    labels = {"diffusion": "diffusion (DDIM steps)", "flow": "flow matching (Euler steps)"}
    for head, by_steps in sweep.items():
        ks = list(by_steps)
        ax.plot(ks, [100 * by_steps[k] for k in ks], "o-", label=labels.get(head, head))
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps per call")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Obstacle course, chunk-8 policies: quality against sampling steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
