"""A learned reward against the true one, along trajectories: numbers and a figure.

:func:`trace_rewards` runs an actor on a task (one env, seeded episodes) and records, at
every step, the task's reward and the learned one; :func:`correlations` reports how well they
agree (Pearson correlation of the per-step rewards and of the episodes' returns);
:func:`plot_reward_vs_true` draws both along each trajectory and their scatter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from protege.rewards.artefact import LearnedRewardWrapper
from protege.tasks.base import Task


@dataclass
class RewardTrace:
    """One episode's per-step rewards: the task's (``true``) and the learned one."""

    true: np.ndarray
    learned: np.ndarray
    label: str = ""


def trace_rewards(
    reward: nn.Module,
    task: Task,
    act: Callable[[np.ndarray], Any],
    episodes: int,
    seed: int,
    label: str = "",
) -> list[RewardTrace]:
    """``episodes`` episodes of ``act`` (a function of one observation, returning one
    action) on ``task`` through :class:`LearnedRewardWrapper`, env seeds ``seed + i``."""
    env = LearnedRewardWrapper(task.make_env(), reward)
    out = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            true, learned = [], []
            for _ in range(task.horizon):
                obs, r, terminated, truncated, info = env.step(act(obs))
                learned.append(r)
                true.append(info["true_reward"])
                if terminated or truncated:
                    break
            out.append(RewardTrace(np.asarray(true), np.asarray(learned), label))
    finally:
        env.close()
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def correlations(traces: list[RewardTrace]) -> dict[str, float]:
    """``step``: Pearson correlation of learned and true per-step rewards over all steps;
    ``episode_return``: of the episodes' learned and true returns (NaN where either side is
    constant, e.g. CartPole's reward of 1 per step)."""
    true = np.concatenate([t.true for t in traces])
    learned = np.concatenate([t.learned for t in traces])
    return {
        "step": _pearson(true, learned),
        "episode_return": _pearson(
            np.array([t.true.sum() for t in traces]), np.array([t.learned.sum() for t in traces])
        ),
        "steps": float(len(true)),
        "episodes": float(len(traces)),
    }


def plot_reward_vs_true(
    traces: list[RewardTrace], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """A PNG: per-step true and learned reward (standardized) along each trajectory, and the
    scatter of learned against true, with the correlations in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from protege.report.plots import DPI, PALETTE

    corr = correlations(traces)
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
    true_all = np.concatenate([t.true for t in traces])
    learned_all = np.concatenate([t.learned for t in traces])

    def z(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
        sd = ref.std()
        return (x - ref.mean()) / (sd if sd > 0 else 1.0)

    start = 0
    for i, t in enumerate(traces[:4]):
        steps = np.arange(start, start + len(t.true))
        c = PALETTE[i % len(PALETTE)]
        ax_t.plot(steps, z(t.true, true_all), color=c, lw=1.2, label="true" if i == 0 else None)
        ax_t.plot(
            steps,
            z(t.learned, learned_all),
            color=c,
            lw=1.0,
            ls="--",
            label="learned" if i == 0 else None,
        )
        start += len(t.true) + 5
    ax_t.set_xlabel("step (episodes one after another)")
    ax_t.set_ylabel("reward (standardized)")
    ax_t.legend(loc="best", fontsize=8)
    ax_s.scatter(true_all, learned_all, s=4, alpha=0.4, color=PALETTE[0])
    ax_s.set_xlabel("true reward")
    ax_s.set_ylabel("learned reward")
    fig.suptitle(
        f"{title}  step correlation {corr['step']:.2f}, "
        f"return correlation {corr['episode_return']:.2f} ({len(traces)} episodes)".strip()
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
