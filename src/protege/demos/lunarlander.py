"""The main job: expert demonstrations → BC → interactive methods → rollouts → a report.

``run_demo`` is a sequence of small steps sharing one :class:`DemoRun`: collect, train BC,
BC's learning curve (BC on the first 1, 2, 4, ... demonstrations), the interactive methods
(DAgger, HG-DAgger with a simulated supervisor, ThriftyDAgger; each from one demonstration,
a few rounds), evaluate (expert and every final learner on the same seeded episodes), record
GIFs, write the report (:mod:`protege.demos.lunarlander_report`). A method joins the
comparison with one step, run before ``evaluate_methods``, that puts its learner in
``run.policies``, the expert labels it cost in ``run.labels`` and, if it has one, its return
against labels in ``run.curves``; evaluation, the table and the figures then take every learner
there. The budgets are a :class:`~protege.configs.demos.LunarDemoConfig`.

Example:
    >>> result = run_demo("reports/demo-lunarlander", LunarDemoConfig(seed=0))
    >>> result.fraction_of_expert("BC")
    0.91
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protege import tasks
from protege.algos import bc, engine, registry
from protege.algos.results import DAggerResult, RoundRow
from protege.configs.bc import BCConfig
from protege.configs.demos import LunarDemoConfig
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.demos.common import timed
from protege.demos.lunarlander_report import write_report
from protege.errors import ConfigError
from protege.policies import Policy, PolicyConfig
from protege.report import page as pg
from protege.report.video import record_gif
from protege.rollout.collect import collect
from protege.rollout.evaluate import Evaluation, evaluate, evaluate_expert
from protege.rollout.loop import Actor
from protege.tasks.base import Task

BC_CURVE_DEMOS = (1, 2, 4, 8, 16)
"""BC's learning curve: BC trained on the first k demonstrations, for each k."""


@dataclass
class Method:
    """One row of the comparison: an evaluation and what it cost in expert labels."""

    evaluation: Evaluation
    labels: int
    """Expert labels the method trained on (0 for the expert itself)."""


@dataclass
class Curve:
    """Return against expert labels: one point per round (or per data size for BC)."""

    labels: list[int] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    std_return: list[float] = field(default_factory=list)

    def add(self, labels: int, ev: Evaluation | RoundRow) -> None:
        self.labels.append(int(labels))
        self.mean_return.append(float(ev.mean_return))
        self.std_return.append(float(ev.std_return))

    def labels_to_reach(self, target: float) -> int | None:
        """Labels at the first point whose mean return reaches ``target``."""
        points = zip(self.labels, self.mean_return, strict=True)
        return next((n for n, r in points if r >= target), None)


@dataclass
class DemoRun:
    """What the steps of a demo share and produce."""

    config: LunarDemoConfig
    task: Task
    out: Path
    store: Store | None = None
    policies: dict[str, Actor] = field(default_factory=dict)
    """Trained learners by method name, in table order."""
    labels: dict[str, int] = field(default_factory=dict)
    """Expert labels each trained policy cost."""
    methods: dict[str, Method] = field(default_factory=dict)
    """Evaluated methods in table order; "expert" first."""
    bc_result: bc.BCResult | None = None
    bc_config: BCConfig | None = None
    curves: dict[str, Curve] = field(default_factory=dict)
    """Return against expert labels per method (BC's learning curve, each method's rounds)."""
    interactive: dict[str, DAggerResult] = field(default_factory=dict)
    gifs: dict[str, pg.Figure] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Wall seconds per step."""
    notes: dict[str, str] = field(default_factory=dict)
    """Facts shown in the report's run table (data size, BC settings...)."""
    page_paths: tuple[Path, Path] | None = None

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def eval_seed(self) -> int:
        return self.config.eval_seed

    @property
    def wall_seconds(self) -> float:
        return sum(self.timings.values())

    def fraction_of_expert(self, name: str) -> float:
        """A method's mean return divided by the expert's (on the same seeded episodes)."""
        expert = self.methods["expert"].evaluation
        return self.methods[name].evaluation.mean_return / expert.mean_return

    def headline(self, name: str = "BC") -> str:
        ev, ex = self.methods[name].evaluation, self.methods["expert"].evaluation
        labels = f"{self.methods[name].labels:,} expert labels"
        r = self.bc_result
        if name == "BC" and r is not None and r.n_val:
            labels = f"{r.n_train:,} of the {labels} ({r.n_val:,} held out for validation)"
        return (
            f"{name} reaches {100 * self.fraction_of_expert(name):.0f}% of the expert's mean "
            f"return on {self.task.name}: {ev.mean_return:.1f} ± {ev.std_return:.1f} against "
            f"{ex.mean_return:.1f} ± {ex.std_return:.1f} over {len(ev.returns)} episodes, "
            f"trained on {labels}."
        )


def run_demo(
    out: str | os.PathLike[str] | None = None, config: LunarDemoConfig | None = None
) -> DemoRun:
    """Collect ``config.episodes`` expert demonstrations, train BC, run the interactive
    ``config.methods``, evaluate them all, write a report into ``out``.

    ``out`` defaults to ``reports/demo-TASK``. ``config.methods=()`` runs BC alone. The report
    folder holds ``index.html`` and ``report.md`` with the figures, GIFs of BC and DAgger,
    ``results.json``, the demonstrations (``demos/``), the BC policy (``policy/``) and each
    interactive run's store and per-round learners (``interactive/METHOD/``).

    ``val_fraction`` of the demonstrations (10 of 100 by default) are held out of BC's
    training to draw its validation loss curve next to the training loss. BC keeps its final
    weights, not the lowest-validation-loss ones: on LunarLander the held-out cross-entropy
    bottoms out after a few hundred steps while the return keeps improving for thousands
    (keeping the lowest-loss weights reached 69–97% of the expert's return, the final ones
    95–100%, seeds 0–2). ``val_fraction=0`` trains on every demonstration, without the curve.
    """
    cfg = config or LunarDemoConfig()
    run = DemoRun(
        config=cfg,
        task=tasks.make(cfg.task),
        out=Path(out if out is not None else f"reports/demo-{cfg.task}"),
    )
    collect_demonstrations(run, cfg.episodes)
    # 20 validation points draw the loss curve; validation is cheap next to training.
    bc_config = BCConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        eval_every=max(1, cfg.steps // 20),
        seed=cfg.seed,
        progress=cfg.progress,
        device=cfg.device,
    )
    train_bc(run, bc_config, cfg.hidden_sizes)
    if cfg.methods:
        round_bc = dataclasses.replace(
            DAggerConfig().bc, steps=cfg.round_bc_steps, device=cfg.device
        )
        bc_learning_curve(run, round_bc, cfg.hidden_sizes, cfg.round_eval_episodes)
        for method in cfg.methods:
            run_interactive(
                run, method, cfg.rounds, round_bc, cfg.hidden_sizes, cfg.round_eval_episodes
            )
    evaluate_methods(run)
    if cfg.gif:
        record_gifs(run)
    write_report(run)
    return run


# --------------------------------------------------------------------------------- steps
def collect_demonstrations(run: DemoRun, episodes: int) -> None:
    """Expert episodes into ``out/demos`` (a fresh store: an earlier demo's is replaced)."""
    path = run.out / "demos"
    if path.exists():
        if not (path / "meta.json").exists():
            raise ConfigError(f"{path}: exists and is not a protege store; not overwriting it")
        shutil.rmtree(path)
    with timed(run.timings, "collect"):
        res = collect(
            run.task,
            path,
            episodes,
            n_envs=run.config.n_envs,
            seed=run.seed,
            progress="collect" if run.config.progress else False,
        )
    run.store = Store.open(path)
    run.notes["demonstrations"] = (
        f"{len(run.store)} expert episodes, {run.store.n_transitions:,} transitions, "
        f"{res.labels:,} labels (seed {run.seed})"
    )


def train_bc(run: DemoRun, config: BCConfig, hidden_sizes: tuple[int, ...]) -> None:
    """Behavioral cloning on every demonstration; the policy is saved to ``out/policy``."""
    assert run.store is not None, "collect_demonstrations first"
    obs_space, act_space = run.task.spaces
    policy_config = PolicyConfig.for_spaces(obs_space, act_space, hidden_sizes=hidden_sizes)
    policy = Policy(policy_config, seed=config.seed)
    with timed(run.timings, "train BC"):
        run.bc_result = bc.fit(policy, run.store, config)
    run.bc_config = config
    policy.save(run.out / "policy", extra={"task": run.task.name})
    run.policies["BC"] = policy
    run.labels["BC"] = run.store.n_labels
    r = run.bc_result
    run.notes["BC"] = (
        f"{policy.config.head} head, MLP {'×'.join(map(str, hidden_sizes))}, {r.steps} steps of "
        f"batch {config.batch_size}, lr {config.lr} ({config.lr_schedule}); "
        f"{r.n_train:,} train / {r.n_val:,} validation steps; {r.samples_per_s:,.0f} samples/s"
    )


def bc_learning_curve(
    run: DemoRun, config: BCConfig, hidden_sizes: tuple[int, ...], eval_episodes: int
) -> None:
    """BC on the first k demonstrations (k in :data:`BC_CURVE_DEMOS`), trained as every
    interactive round's learner is, scored on the first ``eval_episodes`` evaluation episodes."""
    assert run.store is not None, "collect_demonstrations first"
    data = run.store.transitions()
    n = len(data.episode_lengths)
    policy_config = PolicyConfig.for_spaces(*run.task.spaces, hidden_sizes=hidden_sizes)
    curve = Curve()
    with timed(run.timings, "BC curve"):
        for k in (k for k in BC_CURVE_DEMOS if k < n):
            first_k = data.select_episodes(np.arange(n) < k)
            policy = Policy(policy_config, seed=run.seed)
            bc.fit(policy, first_k, dataclasses.replace(config, seed=run.seed))
            ev = evaluate(
                policy,
                run.task,
                episodes=eval_episodes,
                n_envs=min(run.config.n_envs, eval_episodes),
                seed=run.eval_seed,
                measure_disagreement=False,
            )
            curve.add(first_k.n_labels, ev)
    run.curves["BC"] = curve


def run_interactive(
    run: DemoRun,
    method: str,
    rounds: int,
    config: BCConfig,
    hidden_sizes: tuple[int, ...],
    eval_episodes: int,
) -> None:
    """``method`` (a registered name, :func:`protege.algos.registry.names`) from one
    demonstration, two episodes per round; its store and per-round learners go to
    ``out/interactive/METHOD``."""
    name = registry.entry(method).title
    path = run.out / "interactive" / method
    shutil.rmtree(path, ignore_errors=True)
    cfg = DAggerConfig(
        rounds=rounds,
        episodes_per_round=2,
        initial_demos=1,
        bc=config,
        n_envs=2,  # ThriftyDAgger collects one episode at a time (ThriftyConfig.calibrate_every)
        seed=run.seed,
        eval_episodes=eval_episodes,
        eval_envs=min(run.config.n_envs, eval_episodes),
        eval_seed=run.eval_seed,
    )
    with timed(run.timings, name):
        result = registry.run_method(
            method,
            run.task,
            path / "store",
            cfg,
            make_policy=engine.policy_factory(run.task, hidden_sizes=hidden_sizes),
            run_dir=path / "run",
            progress=run.config.progress,
        )
    final = result.rows[-1].round
    run.policies[name] = registry.load_learner(
        path / "run" / "learners" / f"round_{final:03d}", run.config.device
    )
    run.labels[name] = result.totals["labels"]
    run.interactive[name] = result
    curve = Curve()
    for row in result.rows:
        curve.add(row.labels, row)
    run.curves[name] = curve
    t = result.totals
    run.notes[name] = (
        f"{rounds} rounds × 2 episodes after 1 demonstration; {t['labels']:,} labels, "
        f"{t['expert_steps']:,} expert-driven steps, {t['learner_steps']:,} learner-driven "
        f"steps, {t['interventions']} interventions, {t['expert_queries']:,} expert queries"
    )


def evaluate_methods(run: DemoRun) -> None:
    """The expert, then every trained policy, on the same seeded evaluation episodes."""
    kw: dict[str, Any] = {
        "episodes": run.config.eval_episodes,
        "n_envs": run.config.n_envs,
        "seed": run.eval_seed,
    }
    with timed(run.timings, "evaluate"):
        expert = evaluate_expert(
            run.task, progress="eval expert" if run.config.progress else False, **kw
        )
        run.methods = {"expert": Method(expert, 0)}
        for name, policy in run.policies.items():
            ev = evaluate(
                policy, run.task, progress=f"eval {name}" if run.config.progress else False, **kw
            )
            run.methods[name] = Method(ev, run.labels[name])


GIF_METHODS = ("BC", "DAgger")


def record_gifs(run: DemoRun) -> None:
    """One episode of BC and of DAgger (the first evaluation episode's start)."""
    with timed(run.timings, "GIF"):
        for name, policy in run.policies.items():
            if name not in GIF_METHODS:
                continue
            file = f"{name.lower().replace(' ', '-')}.gif"
            clip = record_gif(policy, run.task, run.out / file, seed=run.eval_seed)
            run.gifs[name] = pg.Figure(
                file,
                f"One {name} episode",
                f"{name} on {run.task.name}, evaluation seed {run.eval_seed}: return "
                f"{clip.episode_return:.1f} in {clip.length} steps (every 2nd frame, real time).",
            )
