"""The horizon experiment: BC's expected mistakes grow like εT², DAgger's like εT.

On the :class:`~protege.tasks.lane_env.DriftCorridor` lane-keeping corridor a learner slips with
probability ε on every step it drives (a "trembling hand": one of the two other actions is
executed; the expert never slips). Every arm is protege's own algorithm, run by
:func:`protege.algos.dagger.run` (through :func:`~protege.algos.registry.run_method`) on the
``lane`` task, so its data come through the one rollout loop and the library's gates; the
learner is the same tabular 1-nearest-neighbour table on (d, Δc) for all arms, trained by
:class:`~protege.experiments.tabular.TabularTrainer` and driving as a
:class:`~protege.experiments.tabular.SlippingTable` (slopes and intervals:
:mod:`protege.experiments.slopes`). This module runs the sweep; the parts live by job in
``horizon_config`` (settings), ``horizon_arms`` (training each arm), ``horizon_exact``
(dynamic programming), ``horizon_mc`` (Monte Carlo) and ``horizon_results`` (the report).

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
``smile``
    SMILe (Ross & Bagnell 2010) by :func:`protege.algos.smile.run`: round 0 = K
    demonstrations, then N rounds (as DAgger's) driven by π_{n} = (1 − α)^n π* + α Σ_j
    (1 − α)^(j−1) π̂_j mixed per step (α = ``smile_alpha``), every visited state labelled; each
    π̂_j is a table fitted on its own round only. The evaluated learner is the mixture without
    the expert, a *stochastic* table: its exact values propagate the per-cell action
    probabilities Σ_j w_j 𝟙[π̂_j(cell) = a] through the same ε-kernel
    (:func:`~protege.experiments.horizon_exact.exact_expectations_mixed`), and its Monte Carlo
    drives the :class:`~protege.policies.mixture.MixturePolicy` of slipping tables.
``aggrevate``
    AggreVaTe (Ross & Bagnell 2014) by :func:`protege.algos.aggrevate.run`: round 0 = K
    demonstrations, then N rounds of :meth:`~protege.configs.horizon.HorizonConfig.rollins_for`
    roll-ins by the slipping learner; at a uniformly drawn step of each, restored by replay,
    all three actions are completed by the expert to T, and the table is fitted on each
    sampled cell's action of highest return (with the demonstrations). Its labels count every
    expert step of the completions.

**Exact evaluation (the headline).** Each learned policy is a table over the 3(2W+1) cells
(d, Δc), so the expected mistakes ``E[M] = E Σ_t 𝟙[ã_t ≠ π*(o_t)]`` and cost ``E[C] = E Σ_t
𝟙[d_{t+1} ≠ 0]`` of an episode are computed **exactly** by propagating the distribution of d
through the ε-kernel (:func:`~protege.experiments.horizon_exact.exact_expectations`): no
sampling noise. The exponent is the OLS slope of log E[M] on log T; its confidence interval
is the OLS one (standard error from the residuals, Student t with n_T − 2 degrees of
freedom), i.e. how far the exact curve is from a power law over the horizons used: BC's
bends (it saturates), so its interval has a width; DAgger's E[M] is exactly εT (every
mistake is a slip), so its interval is a point.

**Monte Carlo cross-check (through the library).** Replicate 0's policy of every arm is
rolled out by :func:`protege.rollout.loop.rollout` with
:class:`~protege.rollout.gates.LearnerGate` on :class:`~protege.tasks.lane_env.DriftCorridorVector`,
the learner slipping as in training; an episode's mistakes are the loop's own disagreement
with the expert along the learner's trajectory (``measure_disagreement``), its cost minus its
return. Each cell (arm, T) gets z = (MC − exact) / SE; the test of agreement is
χ² = Σ z² over the cells against χ²(number of cells), passed when its p-value is ≥ 0.001
(:meth:`~protege.experiments.horizon_results.HorizonResult.agreement`). The MC slopes get a
percentile bootstrap over episodes.

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
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from protege.algos.rounds import derive_seed
from protege.configs.horizon import ARM_CODE, STREAM_TRAIN, HorizonConfig
from protege.experiments.horizon_arms import Trained, scratch_root, train_arm
from protege.experiments.horizon_exact import exact_for
from protege.experiments.horizon_mc import cross_check
from protege.experiments.horizon_results import ArmResult, HorizonResult
from protege.experiments.slopes import SlopeFit, ols_slope


def _log(progress: bool, cfg: HorizonConfig, text: str) -> None:
    if progress:
        print(f"[horizon ε={cfg.epsilon:g}] {text}", file=sys.stderr)


def _train_all(cfg: HorizonConfig, progress: bool) -> dict[str, list[list[Trained]]]:
    """``out[arm][seed][j]``: every arm trained at every horizon and replicate."""
    out: dict[str, list[list[Trained]]] = {a: [[] for _ in range(cfg.seeds)] for a in cfg.arms}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="protege-horizon-", dir=scratch_root(cfg)) as tmp:
        for T in cfg.horizons:
            for arm in cfg.arms:
                for rep in range(cfg.seeds):
                    seed = derive_seed(cfg.seed, STREAM_TRAIN, ARM_CODE[arm], T, rep)
                    where = Path(tmp) / f"{arm}-T{T}-s{rep}"
                    out[arm][rep].append(train_arm(arm, cfg, T, seed, where))
            _log(progress, cfg, f"T={T} trained ({time.perf_counter() - t0:.1f} s)")
    return out


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
        em[:, j], ec[:, j] = exact_for(cfg, stacked, T)
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
            arms[a].mc = cross_check(cfg, a, trained[a][0])
            _log(progress, cfg, f"Monte Carlo of {a} done")
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


__all__ = ["HorizonConfig", "HorizonResult", "run_horizon"]
