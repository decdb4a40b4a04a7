"""The horizon experiment's Monte Carlo cross-check: the learned tables rolled out through
protege's own rollout loop, compared cell by cell with the exact values."""

from __future__ import annotations

import math

import numpy as np

from protege.algos.rounds import derive_seed
from protege.configs.horizon import (
    ARM_CODE,
    STREAM_BOOT,
    STREAM_MC,
    HorizonConfig,
)
from protege.experiments.horizon_arms import Trained
from protege.experiments.horizon_exact import exact_for
from protege.experiments.horizon_results import MonteCarlo
from protege.experiments.slopes import bootstrap_episodes_slope
from protege.rollout.gates import LearnerGate
from protege.rollout.loop import rollout
from protege.rollout.observers import Disagreement
from protege.tasks.lane import LaneExpert
from protege.tasks.lane_env import DriftCorridorVector


def monte_carlo_episodes(
    table: np.ndarray | Trained,
    cfg: HorizonConfig,
    horizon: int,
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode mistakes and off-centre steps of ``table`` (or a trained arm's learner,
    e.g. SMILe's mixture of tables) slipping at ε, measured by
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
    trained = table if isinstance(table, Trained) else Trained(table, 0, 0)
    learner = trained.actor(cfg.epsilon, derive_seed(seed, 1), cfg.width)
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


def cross_check(cfg: HorizonConfig, arm: str, runs: list[Trained]) -> MonteCarlo:
    """The MC cross-check of ``arm``'s replicate-0 learners ``runs`` (one per horizon)."""
    hs = cfg.mc_at
    samples: dict[str, list[np.ndarray]] = {"mistakes": [], "cost": []}
    exact_m, exact_c = [], []
    for T in hs:
        run = runs[cfg.horizons.index(T)]
        seed = derive_seed(cfg.seed, STREAM_MC, ARM_CODE[arm], T)
        m, c = monte_carlo_episodes(run, cfg, T, cfg.mc_episodes_for(T), seed)
        samples["mistakes"].append(m)
        samples["cost"].append(c)
        em, ec = exact_for(cfg, run.table[None], T)
        exact_m.append(em[0])
        exact_c.append(ec[0])
    boot = [np.random.default_rng([cfg.seed, STREAM_BOOT, ARM_CODE[arm], k]) for k in (0, 1)]

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
