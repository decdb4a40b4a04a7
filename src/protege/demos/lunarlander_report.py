"""The lunarlander demo's report: figures, tables, ``report.md``, ``index.html``,
``results.json`` (:func:`write_report`, called by :func:`protege.demos.lunarlander.run_demo`)."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from protege.algos import bc
from protege.demos.common import write_json
from protege.policies import Policy
from protege.report import page as pg
from protege.report import plots
from protege.tasks.base import is_discrete

if TYPE_CHECKING:
    from protege.demos.lunarlander import DemoRun


def write_report(run: DemoRun) -> None:
    """Figures, ``report.md``, ``index.html`` and ``results.json`` into ``out``."""
    t0 = time.perf_counter()
    run.out.mkdir(parents=True, exist_ok=True)
    figures = [
        pg.Figure(
            plots.plot_returns(
                {k: m.evaluation.returns for k, m in run.methods.items()},
                run.out / "returns.png",
                title=f"Return on {run.config.eval_episodes} seeded {run.task.name} episodes",
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
            f"both were run on the same {run.config.eval_episodes} seeded episodes (seed "
            f"{run.eval_seed}, none of them a training start)."
            + (" " + labels_summary(run) if len(run.curves) > 1 else "")
        ),
        table=results_table(run),
        figures=figures,
    )
    run.timings["report"] = time.perf_counter() - t0
    page.run = run_facts(run)
    run.page_paths = pg.write_page(page, run.out)
    write_json(run.out / "results.json", results_dict(run))


def labels_summary(run: DemoRun, fraction: float = 0.95) -> str:
    """Which methods reached ``fraction`` of the expert's return, and at how many labels,
    then the lesson those numbers teach (:func:`lesson`)."""
    target = _target(run, fraction)
    parts = []
    for name, curve in _curves_with_final_bc(run).items():
        n = curve.labels_to_reach(target)
        parts.append(
            f"{name} at {n:,} labels"
            if n is not None
            else f"{name} not within {curve.labels[-1]:,}"
        )
    return (
        f"Reaching {fraction:.0%} of the expert's return ({target:.1f}) on the per-round "
        f"evaluation episodes: {'; '.join(parts)}. {lesson(run, fraction)}"
    )


def lesson(run: DemoRun, fraction: float = 0.95) -> str:
    """One sentence with this run's numbers: how many labels the best interactive method
    needed to reach ``fraction`` of the expert's return against BC on demonstrations (its
    curve: the first 1, 2, 4, ... demonstrations, then all of them)."""
    target = _target(run, fraction)
    curves = _curves_with_final_bc(run)
    bc_curve = curves.get("BC")
    reached = {
        name: n
        for name, c in curves.items()
        if name != "BC" and (n := c.labels_to_reach(target)) is not None
    }
    if bc_curve is None or not reached:
        return (
            f"No interactive method reached {fraction:.0%} of the expert's return within its "
            "budget here, so this run does not show which costs fewer labels."
        )
    best = min(reached, key=lambda k: reached[k])
    n = reached[best]
    final = run.methods.get(best)  # a round can cross on a lucky evaluation: say where it ended
    held = (
        f" (its final learner: {final.evaluation.mean_return:.1f} with {final.labels:,} labels)"
        if final is not None
        else ""
    )
    bc_n = bc_curve.labels_to_reach(target)
    below = [r for lab, r in zip(bc_curve.labels, bc_curve.mean_return, strict=True) if lab <= n]
    at_budget = (
        f"; with at most {n:,} labels of demonstrations BC scored {max(below):.1f} at best"
        if below
        else ""
    )
    if bc_n is None:
        return (
            f"{best} reached {fraction:.0%} of the expert's return with {n:,} expert "
            f"labels{held}; "
            f"BC on demonstrations did not reach it with up to {bc_curve.labels[-1]:,} "
            f"({bc_curve.labels[-1] / n:.1f}× as many){at_budget}: labels on the states the "
            "learner drifts into were worth more than more demonstrations."
        )
    if bc_n > n:
        # BC's curve is coarse (1, 2, 4 … demonstrations, then all): say between which points
        short = [lab for lab in bc_curve.labels if lab < bc_n]
        needed = (
            f"more than {max(short):,} and at most {bc_n:,} "
            f"({max(short) / n:.1f}–{bc_n / n:.1f}× as many; its curve has no point between)"
            if short
            else f"{bc_n:,} ({bc_n / n:.1f}× as many)"
        )
        return (
            f"{best} reached {fraction:.0%} of the expert's return with {n:,} expert "
            f"labels{held}, "
            f"BC on demonstrations needed {needed}{at_budget}: labels on the states the "
            "learner drifts into were worth more than more demonstrations."
        )
    return (
        f"BC on demonstrations reached {fraction:.0%} of the expert's return with {bc_n:,} "
        f"labels, no more than the best interactive method ({best}, {n:,}): on this run "
        "compounding error cost BC nothing that interactive labels bought back."
    )


def _target(run: DemoRun, fraction: float) -> float:
    expert = run.methods["expert"].evaluation.mean_return
    return expert - (1 - fraction) * abs(expert)


def _curves_with_final_bc(run: DemoRun) -> dict[str, Any]:
    """The return-against-labels curves, BC's extended by the main BC policy (every
    demonstration, scored on the full evaluation)."""
    curves: dict[str, Any] = dict(run.curves)
    if "BC" in curves and "BC" in run.methods:
        ev, c = run.methods["BC"].evaluation, curves["BC"]
        curves["BC"] = dataclasses.replace(
            c,
            labels=[*c.labels, run.labels["BC"]],
            mean_return=[*c.mean_return, float(ev.mean_return)],
            std_return=[*c.std_return, float(ev.std_return)],
        )
    return curves


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
