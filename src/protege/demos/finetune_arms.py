"""The pieces ``protege demo finetune`` and ``benchmarks/finetune.py`` share: a deliberately
degraded demonstrator, BC from a few demonstrations, one fine-tuning arm, and what to read off
its evaluations (env steps to a level, the unlearning dip).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.algos import bc
from protege.algos.finetune import FinetuneResult, finetune
from protege.configs.bc import BCConfig
from protege.configs.policy import PolicyConfig
from protege.configs.rl import FinetuneConfig, PPOConfig, SACConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.classic import CartPoleExpert
from protege.policies.policy import Policy
from protege.rollout.collect import collect
from protege.tasks.base import Task


class DriftingCartPoleExpert(CartPoleExpert):
    """CartPole's expert with its position feedback reversed: it balances the pole but steers
    the cart *away* from the centre, so most episodes end when the cart leaves the track
    (mean return ≈ 140 over seeds, against the expert's 500). A deterministic law of the
    observation, so BC can match it exactly; only reward shows it how to do better."""

    name = "the drifting demonstrator"
    gains = np.array([-3.0, -3.0, 10.0, 2.0])


DEMONSTRATORS = ("expert", "drifting")
"""Who demonstrates: the task's expert, or (CartPole only) :class:`DriftingCartPoleExpert`."""


def demonstrator(task: Task, kind: str) -> Any:
    """The task's expert, or the degraded one."""
    if kind == "expert":
        return task.make_expert()
    if kind == "drifting" and task.env_id == "CartPole-v1":
        return DriftingCartPoleExpert()
    raise ConfigError(f"demonstrator {kind!r}: choose from {DEMONSTRATORS} (drifting: CartPole)")


def bc_from_demos(
    task: Task,
    out: Path,
    episodes: int,
    kind: str,
    seed: int,
    steps: int,
    hidden_sizes: tuple[int, ...],
    head: str | None = None,
) -> tuple[Policy, Path]:
    """Collect ``episodes`` demonstrations by ``kind`` (seeded by ``seed``) into ``out/demos``
    and train BC on them; returns the policy and the store's path."""
    store = out / "demos"
    shutil.rmtree(store, ignore_errors=True)
    collect(task, store, episodes, n_envs=episodes, seed=seed, expert=demonstrator(task, kind))
    kw: dict[str, Any] = {"head": head} if head else {}
    config = PolicyConfig.for_spaces(*task.spaces, hidden_sizes=hidden_sizes, **kw)
    policy = Policy(config, seed=seed)
    bc.fit(
        policy, Store.open(store), BCConfig(steps=steps, batch_size=64, seed=seed, progress=False)
    )
    return policy, store


@dataclass(frozen=True)
class Arm:
    """One way to run RL: from the BC policy (with its KL, warm-up, BC-term, critic pre-fit,
    self-imitation settings) or from scratch (a freshly initialized policy, no anchor)."""

    name: str
    kl: float = 0.0
    kl_decay: float = 1.0
    value_warmup: int = 0
    temperature: float = 1.0
    bc_weight: float = 0.0
    bc_decay: float = 0.95
    critic_prefit: int = 0
    critic_prefit_own: int = 0
    self_imitation: float = 0.0
    self_imitation_episodes: int = 10
    scratch: bool = False
    algo: str = "ppo"
    """The learner: ``ppo``, or ``sac`` (:class:`~protege.algos.sac.SAC`, its defaults; ``kl``
    its KL weight; from scratch, KL to the fresh policy and no demonstrations)."""
    replay_demos: bool = True
    """SAC: draw the demonstrations into its minibatches."""


def run_arm(
    arm: Arm,
    task: Task,
    start: Policy,
    demos: Path | None,
    out: Path,
    steps: int,
    ppo: PPOConfig,
    eval_every: int,
    eval_episodes: int,
    progress: bool | str = False,
    eval_sampled: bool = False,
    stop_return: float | None = None,
    eval_envs: int = 0,
) -> FinetuneResult:
    """Run ``arm`` for ``steps`` env steps into ``out`` (replaced) and return its result
    (``eval_sampled``, ``stop_return``, ``eval_envs``: :class:`FinetuneConfig`'s)."""
    shutil.rmtree(out, ignore_errors=True)
    if arm.scratch:
        policy = Policy(start.config, seed=ppo.seed)
    else:
        policy = Policy.load(start.save(out.parent / f"{out.name}-start"))
        shutil.rmtree(out.parent / f"{out.name}-start")
    cfg = FinetuneConfig(
        steps=steps,
        kl=arm.kl,
        kl_decay=arm.kl_decay,
        value_warmup=arm.value_warmup,
        temperature=arm.temperature,
        bc_weight=arm.bc_weight,
        bc_decay=arm.bc_decay,
        critic_prefit=arm.critic_prefit,
        critic_prefit_own=arm.critic_prefit_own,
        self_imitation=arm.self_imitation,
        self_imitation_episodes=arm.self_imitation_episodes,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        eval_envs=eval_envs,
        eval_sampled=eval_sampled,
        stop_return=stop_return,
    )
    sac_demos = arm.algo == "sac" and arm.replay_demos and not arm.scratch
    uses_demos = arm.bc_weight > 0 or arm.critic_prefit > 0 or sac_demos
    data = Store.open(demos).transitions() if demos is not None and uses_demos else None
    return finetune(
        policy,
        task,
        out,
        cfg,
        ppo,
        sac=SACConfig(seed=ppo.seed) if arm.algo == "sac" else None,
        demos=data,
        progress=progress,
        tensorboard=False,
        extra={"task": task.name},
    )


def steps_to(
    result: FinetuneResult, level: float, key: str = "mean_return"
) -> tuple[int, float] | None:
    """(env steps, training seconds) at the first evaluation whose ``key`` (``mean_return``:
    deterministic actions, ``sampled_return``: sampled) reaches ``level``; None if none."""
    for e in result.evals:
        if e[key] >= level:
            return int(e["env_steps"]), float(e["wall_seconds"])
    return None


def dip(result: FinetuneResult, start_return: float, tolerance: float = 0.1) -> dict[str, float]:
    """The unlearning dip below the starting policy's return ``start_return``: how far the
    worst evaluation falls (a fraction of ``|start_return|``, 0 if never below), how many
    evaluations fall more than ``tolerance`` below it, and the env steps from the first such
    evaluation to the first one after it back above that line (to the end if never)."""
    scale = abs(start_return) or 1.0
    line = start_return - tolerance * scale
    worst = min(e["mean_return"] for e in result.evals)
    below = [e for e in result.evals if e["mean_return"] < line]
    span = 0
    if below:
        first = below[0]["env_steps"]
        back = [
            e["env_steps"]
            for e in result.evals
            if e["env_steps"] > first and e["mean_return"] >= line
        ]
        span = int((back[0] if back else result.evals[-1]["env_steps"]) - first)
    return {
        "depth": max(0.0, (start_return - worst) / scale),
        "evals_below": float(len(below)),
        "steps_below": float(span),
    }
