"""The horizon experiment's arms: each one a run of protege's own algorithms on the ``lane``
task (:func:`protege.algos.registry.run_method`), learning a slipping tabular policy.

Which algorithm and settings make each arm: :func:`arm_setup` (and the docstring of
:mod:`protege.experiments.horizon`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protege.algos.registry import run_method
from protege.algos.rounds import derive_seed
from protege.configs.horizon import HorizonConfig
from protege.configs.interactive import DAggerConfig
from protege.configs.methods import AggreVaTeConfig, DARTConfig, SmileConfig, SupervisorConfig
from protege.experiments.tabular import SlippingTable, TabularTrainer
from protege.policies.mixture import MixturePolicy
from protege.tasks.base import Task
from protege.tasks.lane import LANE, LaneRisk


def lane_task(cfg: HorizonConfig, horizon: int) -> Task:
    """The ``lane`` task as the experiment runs it: horizon T, the config's road, and no
    env-side slips (the learner slips: :class:`~protege.experiments.tabular.SlippingTable`)."""
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
    """(n_cells,) the final learner's steer per cell; for a mixture (SMILe), (n_cells, 3)
    the probability of each action index per cell."""
    labels: int
    """Expert labels stored (demonstrations included)."""
    queries: int
    """Times the expert was asked (labels, supervision, cost-to-go completions)."""
    components: np.ndarray | None = None
    """A mixture's (K, n_cells) component tables (None for one table)."""
    weights: np.ndarray | None = None
    """A mixture's (K,) component probabilities."""

    def actor(self, epsilon: float, seed: int, width: int) -> SlippingTable | MixturePolicy:
        """The learner as it drives: one slipping table, or the per-step mixture of them."""
        if self.components is None:
            return SlippingTable(self.table, epsilon, seed, width)
        tables = [
            SlippingTable(t, epsilon, derive_seed(seed, k), width)
            for k, t in enumerate(self.components)
        ]
        assert self.weights is not None
        return MixturePolicy(tables, self.weights, derive_seed(seed, len(tables)))


def mixture_probabilities(tables: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_cells, 3): the probability that a per-step mixture of ``tables`` (K, n_cells)
    with probabilities ``weights`` (K,) intends each action index in each cell."""
    onehot = np.eye(3)[np.asarray(tables, np.int64) + 1]  # (K, n, 3)
    return np.einsum("k,kna->na", np.asarray(weights, np.float64), onehot)


def arm_setup(
    arm: str, cfg: HorizonConfig, horizon: int, seed: int
) -> tuple[str, Any, DAggerConfig]:
    """``(method, method settings, DAggerConfig)`` that make ``arm`` a run of
    :func:`protege.algos.registry.run_method` (see the module docstring)."""
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
    if arm == "smile":
        return "smile", SmileConfig(alpha=cfg.smile_alpha), rounds
    if arm == "aggrevate":
        return (
            "aggrevate",
            AggreVaTeConfig(),
            dataclasses.replace(rounds, episodes_per_round=cfg.rollins_for(horizon)),
        )
    return "dagger", None, dataclasses.replace(rounds, beta=cfg.beta(arm))


def train_arm(arm: str, cfg: HorizonConfig, horizon: int, seed: int, scratch: Path) -> Trained:
    """Run ``arm`` at horizon T through :func:`~protege.algos.registry.run_method` in a store
    under ``scratch`` (deleted afterwards) and return its final learner's table."""
    method, method_config, dcfg = arm_setup(arm, cfg, horizon, seed)
    trainer = TabularTrainer(cfg.epsilon, cfg.width)
    store = scratch / "store"
    try:
        result = run_method(
            method, lane_task(cfg, horizon), store, dcfg, method_config, trainer=trainer
        )
        path = Path(f"{store}.run") / "learners" / f"round_{dcfg.rounds:03d}"
        if method == "smile":
            mix = MixturePolicy.load(path, trainer.load)
            components = np.stack([c.table for c in mix.components])
        else:
            final = trainer.load(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    last = result.rows[-1]
    if method == "smile":
        probs = mixture_probabilities(components, mix.probabilities)
        return Trained(
            probs, last.labels, last.expert_queries, components, mix.probabilities.copy()
        )
    return Trained(final.table, last.labels, last.expert_queries)


def scratch_root(cfg: HorizonConfig) -> str | None:
    """Where training stores go: ``cfg.scratch_dir``, else /dev/shm when writable, else
    None (the system's temporary directory)."""
    if cfg.scratch_dir is not None:
        return cfg.scratch_dir
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
