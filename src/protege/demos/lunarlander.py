"""The main job: expert demonstrations → BC → interactive methods → rollouts → a report.

``run_demo`` is a sequence of small steps sharing one :class:`DemoRun`: collect, train BC,
BC's learning curve (BC on the first 1, 2, 4, ... demonstrations), the interactive methods
(DAgger, HG-DAgger with a simulated supervisor, ThriftyDAgger; each from one demonstration,
a few rounds), evaluate (expert and every final learner on the same seeded episodes), record
GIFs, write the report. A method joins the comparison with one step, run before
``evaluate_methods``, that puts its learner in ``run.policies``, the expert labels it cost in
``run.labels`` and, if it has one, its return against labels in ``run.curves``; evaluation,
the table and the figures then take every learner there.

Example:
    >>> result = run_demo("lunarlander", out="reports/demo-lunarlander", seed=0)
    >>> result.fraction_of_expert("BC")
    0.91
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege import tasks
from protege.algos import bc, engine, registry
from protege.algos.results import DAggerResult, RoundRow
from protege.configs.demos import EVAL_SEED_OFFSET, INTERACTIVE
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.errors import ConfigError
from protege.policies import Policy, PolicyConfig
from protege.report import page as pg
from protege.report import plots
from protege.report.video import record_gif
from protege.rollout.collect import collect
from protege.rollout.evaluate import Evaluation, evaluate, evaluate_expert
from protege.rollout.loop import Actor
from protege.tasks.base import Task, is_discrete

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

    task: Task
    out: Path
    seed: int
    eval_episodes: int
    n_envs: int
    progress: bool
    store: Store | None = None
    policies: dict[str, Actor] = field(default_factory=dict)
    """Trained learners by method name, in table order."""
    labels: dict[str, int] = field(default_factory=dict)
    """Expert labels each trained policy cost."""
    methods: dict[str, Method] = field(default_factory=dict)
    """Evaluated methods in table order; "expert" first."""
    bc_result: bc.BCResult | None = None
    bc_config: bc.BCConfig | None = None
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
    def eval_seed(self) -> int:
        return self.seed + EVAL_SEED_OFFSET

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
    task: str = "lunarlander",
    out: str | os.PathLike = "reports/demo-lunarlander",
    seed: int = 0,
    episodes: int = 100,
    n_envs: int = 8,
    steps: int = 4000,
    batch_size: int = 256,
    hidden_sizes: tuple[int, ...] = (256, 256),
    eval_episodes: int = 50,
    val_fraction: float = 0.1,
    gif: bool = True,
    progress: bool = True,
    methods: tuple[str, ...] = INTERACTIVE,
    rounds: int = 4,
    round_bc_steps: int = 1500,
    round_eval_episodes: int = 20,
) -> DemoRun:
    """Collect ``episodes`` expert demonstrations, train BC, run the interactive ``methods``,
    evaluate them all, write a report.

    Defaults fit LunarLander in under 5 minutes on 2 CPU cores: 100 demonstrations (about
    25,000 labels), 4000 steps of batch 256 on a 2×256 MLP; BC on the first 1-16 of them;
    DAgger, HG-DAgger and ThriftyDAgger from one demonstration, ``rounds`` rounds of two
    episodes each, every round's learner (BC of ``round_bc_steps`` steps at batch 64) scored on
    ``round_eval_episodes`` seeded episodes; then every final learner and the expert on the same
    ``eval_episodes`` seeded episodes. ``methods=()`` runs BC alone. The report folder holds
    ``index.html`` and ``report.md`` with the figures, GIFs of BC and DAgger, ``results.json``,
    the demonstrations (``demos/``), the BC policy (``policy/``) and each interactive run's
    store and per-round learners (``interactive/METHOD/``).

    ``val_fraction`` of the demonstrations (10 of 100 by default) are held out of BC's
    training to draw its validation loss curve next to the training loss. BC keeps its final
    weights, not the lowest-validation-loss ones: on LunarLander the held-out cross-entropy
    bottoms out after a few hundred steps while the return keeps improving for thousands
    (keeping the lowest-loss weights reached 69–97% of the expert's return, the final ones
    95–100%, seeds 0–2). ``val_fraction=0`` trains on every demonstration, without the curve.
    """
    run = DemoRun(
        task=tasks.make(task),
        out=Path(out),
        seed=seed,
        eval_episodes=eval_episodes,
        n_envs=n_envs,
        progress=progress,
    )
    collect_demonstrations(run, episodes)
    # 20 validation points draw the loss curve; validation is cheap next to training.
    config = bc.BCConfig(
        steps=steps,
        batch_size=batch_size,
        val_fraction=val_fraction,
        eval_every=max(1, steps // 20),
        seed=seed,
        progress=progress,
    )
    train_bc(run, config, hidden_sizes)
    if methods:
        round_bc = dataclasses.replace(DAggerConfig().bc, steps=round_bc_steps)
        bc_learning_curve(run, round_bc, hidden_sizes, round_eval_episodes)
        for method in methods:
            run_interactive(run, method, rounds, round_bc, hidden_sizes, round_eval_episodes)
    evaluate_methods(run)
    if gif:
        record_gifs(run)
    write_report(run)
    return run


# --------------------------------------------------------------------------------- steps
def seeded_policy(config: PolicyConfig, seed: int) -> Policy:
    """A new policy whose initial weights depend on ``seed`` only, not on torch's global RNG.

    ``Policy.__init__`` draws from the global RNG (``bc.fit`` seeds it only after the policy
    exists); this fixes the draw and leaves the global state as it was.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Policy(config)


@contextmanager
def timed(run: DemoRun, step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        run.timings[step] = run.timings.get(step, 0.0) + time.perf_counter() - t0


def collect_demonstrations(run: DemoRun, episodes: int) -> None:
    """Expert episodes into ``out/demos`` (a fresh store: an earlier demo's is replaced)."""
    path = run.out / "demos"
    if path.exists():
        if not (path / "meta.json").exists():
            raise ConfigError(f"{path}: exists and is not a protege store; not overwriting it")
        shutil.rmtree(path)
    with timed(run, "collect"):
        res = collect(
            run.task,
            path,
            episodes,
            n_envs=run.n_envs,
            seed=run.seed,
            progress="collect" if run.progress else False,
        )
    run.store = Store.open(path)
    run.notes["demonstrations"] = (
        f"{len(run.store)} expert episodes, {run.store.n_transitions:,} transitions, "
        f"{res.labels:,} labels (seed {run.seed})"
    )


def train_bc(run: DemoRun, config: bc.BCConfig, hidden_sizes: tuple[int, ...]) -> None:
    """Behavioral cloning on every demonstration; the policy is saved to ``out/policy``."""
    assert run.store is not None, "collect_demonstrations first"
    obs_space, act_space = run.task.spaces
    policy_config = PolicyConfig.for_spaces(obs_space, act_space, hidden_sizes=hidden_sizes)
    policy = seeded_policy(policy_config, config.seed)
    with timed(run, "train BC"):
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
    run: DemoRun, config: bc.BCConfig, hidden_sizes: tuple[int, ...], eval_episodes: int
) -> None:
    """BC on the first k demonstrations (k in :data:`BC_CURVE_DEMOS`), trained as every
    interactive round's learner is, scored on the first ``eval_episodes`` evaluation episodes."""
    assert run.store is not None, "collect_demonstrations first"
    data = run.store.transitions()
    n = len(data.episode_lengths)
    policy_config = PolicyConfig.for_spaces(*run.task.spaces, hidden_sizes=hidden_sizes)
    curve = Curve()
    with timed(run, "BC curve"):
        for k in (k for k in BC_CURVE_DEMOS if k < n):
            first_k = data.select_episodes(np.arange(n) < k)
            policy = seeded_policy(policy_config, run.seed)
            bc.fit(policy, first_k, dataclasses.replace(config, seed=run.seed))
            ev = evaluate(
                policy,
                run.task,
                episodes=eval_episodes,
                n_envs=min(run.n_envs, eval_episodes),
                seed=run.eval_seed,
                measure_disagreement=False,
            )
            curve.add(first_k.n_labels, ev)
    run.curves["BC"] = curve


def run_interactive(
    run: DemoRun,
    method: str,
    rounds: int,
    config: bc.BCConfig,
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
        eval_envs=min(run.n_envs, eval_episodes),
        eval_seed=run.eval_seed,
    )
    with timed(run, name):
        result = registry.run_method(
            method,
            run.task,
            path / "store",
            cfg,
            make_policy=engine.policy_factory(run.task, hidden_sizes=hidden_sizes),
            run_dir=path / "run",
            progress=run.progress,
        )
    final = result.rows[-1].round
    run.policies[name] = registry.load_learner(path / "run" / "learners" / f"round_{final:03d}")
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
        "episodes": run.eval_episodes,
        "n_envs": run.n_envs,
        "seed": run.eval_seed,
    }
    with timed(run, "evaluate"):
        expert = evaluate_expert(run.task, progress="eval expert" if run.progress else False, **kw)
        run.methods = {"expert": Method(expert, 0)}
        for name, policy in run.policies.items():
            ev = evaluate(
                policy, run.task, progress=f"eval {name}" if run.progress else False, **kw
            )
            run.methods[name] = Method(ev, run.labels[name])


GIF_METHODS = ("BC", "DAgger")


def record_gifs(run: DemoRun) -> None:
    """One episode of BC and of DAgger (the first evaluation episode's start)."""
    with timed(run, "GIF"):
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


def write_report(run: DemoRun) -> None:
    """Figures, ``report.md``, ``index.html`` and ``results.json`` into ``out``."""
    t0 = time.perf_counter()
    run.out.mkdir(parents=True, exist_ok=True)
    figures = [
        pg.Figure(
            plots.plot_returns(
                {k: m.evaluation.returns for k, m in run.methods.items()},
                run.out / "returns.png",
                title=f"Return on {run.eval_episodes} seeded {run.task.name} episodes",
            ).name,
            "Return distributions",
            "Each dot is one evaluation episode; every method ran on the same seeded starts.",
        ),
        pg.Figure(
            plots.plot_disagreement(
                {
                    k: (m.evaluation.disagreement_by_step, m.evaluation.episodes_by_step)
                    for k, m in run.methods.items()
                    if k != "expert"
                },
                run.out / "disagreement.png",
                discrete=is_discrete(run.task.spaces[1]),
            ).name,
            "Disagreement with the expert against time step",
            "The expert is asked, at every state the learner reaches, what it would do. Fewer "
            "episodes reach later steps (bottom), so the right end of the curve rests on few.",
        ),
    ]
    if len(run.curves) > 1:
        figures.insert(0, _labels_figure(run))
    bc_policy = run.policies.get("BC")
    if run.bc_result is not None and run.bc_result.history and isinstance(bc_policy, Policy):
        figures.append(_loss_figure(run, run.bc_result, bc_policy))
    figures += list(run.gifs.values())
    page = pg.Page(
        title=f"protege demo: behavioral cloning on {run.task.name}",
        headline=run.headline("BC") if "BC" in run.methods else "",
        intro=(
            f"The task's scripted expert was recorded, a policy was trained to imitate it, and "
            f"both were run on the same {run.eval_episodes} seeded episodes (seed "
            f"{run.eval_seed}, none of them a training start)."
            + (" " + labels_summary(run) if len(run.curves) > 1 else "")
        ),
        table=results_table(run),
        figures=figures,
    )
    run.timings["report"] = time.perf_counter() - t0
    page.run = run_facts(run)
    run.page_paths = pg.write_page(page, run.out)
    results = json.dumps(_no_nan(results_dict(run)), indent=2, allow_nan=False)
    (run.out / "results.json").write_text(results)


# ------------------------------------------------------------------------------- content
def labels_summary(run: DemoRun, fraction: float = 0.95) -> str:
    """Which methods reached ``fraction`` of the expert's return, and at how many labels."""
    expert = run.methods["expert"].evaluation.mean_return
    target = expert - (1 - fraction) * abs(expert)
    parts = []
    for name, curve in run.curves.items():
        n = curve.labels_to_reach(target)
        parts.append(
            f"{name} at {n:,} labels"
            if n is not None
            else f"{name} not within {curve.labels[-1]:,}"
        )
    return (
        f"Reaching {fraction:.0%} of the expert's return ({target:.1f}) on the per-round "
        f"evaluation episodes: {'; '.join(parts)}."
    )


def _loss_figure(run: DemoRun, result: bc.BCResult, policy: Policy) -> pg.Figure:
    """BC's training loss and, with held-out episodes, its validation loss, marking whose
    weights were kept (the final ones unless ``BCConfig.restore_best``)."""
    best = bool(run.bc_config and run.bc_config.restore_best and result.n_val)
    path = plots.plot_losses(
        result.history,
        run.out / "loss.png",
        title=f"BC on {run.task.name}: the {policy.config.head} head's loss",
        kept_step=result.best_step if best else result.steps,
    )
    kept = (
        "the weights of the lowest validation loss are kept"
        if best
        else "the final weights are kept, not those of the lowest validation loss"
    )
    caption = (
        f"Validation is on held-out episodes ({result.n_val:,} labelled steps, not trained "
        f"on); {kept}."
        if result.n_val
        else "Trained on every demonstration (no episodes held out for validation)."
    )
    return pg.Figure(
        path.name,
        "BC training and validation loss" if result.n_val else "BC training loss",
        caption + " A low loss does not promise a good rollout: judge by the figures above.",
    )


def _labels_figure(run: DemoRun) -> pg.Figure:
    curves: dict[str, tuple[list[float], list[float], list[float]]] = {
        k: ([float(n) for n in c.labels], c.mean_return, c.std_return)
        for k, c in run.curves.items()
    }
    if "BC" in run.methods and "BC" in curves:  # the main BC policy: every demonstration
        ev = run.methods["BC"].evaluation
        x, y, e = curves["BC"]
        curves["BC"] = ([*x, run.labels["BC"]], [*y, ev.mean_return], [*e, ev.std_return])
    path = plots.plot_return_vs_labels(
        curves,
        run.out / "return_vs_labels.png",
        expert_return=run.methods["expert"].evaluation.mean_return,
        title=f"{run.task.name}: return against expert labels",
    )
    return pg.Figure(
        path.name,
        "Return against expert labels",
        "BC: trained on the first 1, 2, 4, ... demonstrations (its last point: all of them). "
        "Interactive methods: one point per round, from one demonstration; DAgger labels every "
        "state its learner visits, HG-DAgger only where the (simulated) supervisor takes over, "
        "ThriftyDAgger only where its novelty or risk estimate asks. Per-round points are "
        "scored on the first evaluation episodes; the table scores the final learners on all.",
    )


def results_table(run: DemoRun) -> pg.Table:
    expert_mean = run.methods["expert"].evaluation.mean_return
    rows = []
    for name, m in run.methods.items():
        ev = m.evaluation
        rows.append(
            [
                name,
                f"{ev.mean_return:.1f} ± {ev.std_return:.1f}",
                f"{100 * ev.mean_return / expert_mean:.0f}%" if expert_mean else "–",
                f"{100 * ev.success_rate:.0f}%",
                f"{ev.mean_length:.0f}",
                "–" if name == "expert" else f"{ev.disagreement:.3f}",
                "–" if name == "expert" else f"{m.labels:,}",
                f"{ev.wall_seconds:.1f} s",
            ]
        )
    return pg.Table(
        [
            "method",
            "return (mean ± std)",
            "% of expert",
            "success",
            "length",
            "disagreement",
            "expert labels",
            "eval wall time",
        ],
        rows,
        notes=[
            "disagreement: fraction of the learner's steps where its action differs from the "
            "expert's (L2 distance for continuous actions), on the learner's own states.",
            "success: share of episodes that pass the task's success test.",
        ],
    )


def run_facts(run: DemoRun) -> dict[str, str]:
    facts = {"task": run.task.name, "seed": f"{run.seed} (evaluation: {run.eval_seed})"}
    facts.update(run.notes)
    for step, s in run.timings.items():
        facts[f"wall time: {step}"] = pg.seconds(s)
    facts["wall time: total"] = pg.seconds(run.wall_seconds)
    facts["command"] = pg.command_line()
    facts["machine"] = pg.machine()
    return facts


def results_dict(run: DemoRun) -> dict[str, Any]:
    return {
        "task": run.task.name,
        "seed": run.seed,
        "eval_seed": run.eval_seed,
        "methods": {
            name: {
                **m.evaluation.summary(),
                "labels": m.labels,
                "returns": m.evaluation.returns.tolist(),
                "lengths": m.evaluation.lengths.tolist(),
                "disagreement_by_step": m.evaluation.disagreement_by_step.tolist(),
                "episodes_by_step": m.evaluation.episodes_by_step.tolist(),
            }
            for name, m in run.methods.items()
        },
        "bc": run.bc_result.to_dict() if run.bc_result else None,
        "curves": {k: dataclasses.asdict(c) for k, c in run.curves.items()},
        "interactive": {k: r.to_dict() for k, r in run.interactive.items()},
        "timings": run.timings,
        "wall_seconds": run.wall_seconds,
        "command": pg.command_line(),
        "machine": pg.machine(),
    }


def _no_nan(value: Any) -> Any:
    """NaN (no disagreement for the expert, no validation loss...) as JSON null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value
