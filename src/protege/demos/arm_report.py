"""The arm demo's report: success per round, disagreement with the expert, GIFs, the table,
``report.md``, ``index.html`` and ``results.json`` (:func:`write_report`, called by
:func:`protege.demos.arm.run_arm_demo`)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protege.demos.arm_settings import SETTINGS
from protege.demos.common import write_json
from protege.report import page as pg
from protege.report import plots

if TYPE_CHECKING:
    from protege.demos.arm import ArmDemo


def _titles(run: ArmDemo) -> dict[str, str]:
    return {name: SETTINGS[name].title for name in run.results}


def _plot_rounds(run: ArmDemo, path: Path, what: str) -> Path:
    import matplotlib.pyplot as plt

    titles = _titles(run)
    colors = plots.method_colors(list(titles.values()))
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    for name, res in run.results.items():
        rounds = [r.round for r in res.rows]
        if what == "success":
            y = [100 * r.success_rate for r in res.rows]
        else:
            y = run.disagreement[name][: len(rounds)]
        ax.plot(rounds, y, "-o", ms=5, color=colors[titles[name]], label=titles[name])
    if what == "success":
        expert = [100 * res.expert_success for res in run.results.values()]
        ax.axhline(float(np.mean(expert)), color=plots.EXPERT_COLOR, ls="--", lw=1, label="expert")
        ax.set_ylabel(f"success on {run.config.eval_episodes} evaluation rollouts (%)")
        ax.set_ylim(-3, 103)
        ax.set_title("Success of BC (round 0) and of each DAgger round")
    else:
        ax.set_ylabel("mean ‖learner action − expert's‖")
        ax.set_ylim(bottom=0)
        ax.set_title("Disagreement with the expert on the learner's own states")
    ax.set_xlabel("DAgger round (0 = BC on the demonstrations)")
    ax.set_xticks(range(run.config.rounds + 1))
    ax.grid(alpha=0.3)
    ax.legend(frameon=True, framealpha=0.85, fontsize=8.5, loc="best")
    return plots._save(fig, path)


def results_table(run: ArmDemo, short: bool = False) -> pg.Table:
    """One row per setting and round: labels, success, disagreement, wall time (settings by
    their key with ``short``, for a terminal)."""
    rows = []
    for name, title in _titles(run).items():
        title = name if short else title
        res = run.results[name]
        for r in res.rows:
            d = run.disagreement[name][r.round] if r.round < len(run.disagreement[name]) else None
            rows.append(
                [
                    title,
                    "BC" if r.round == 0 else f"DAgger {r.round}",
                    f"{r.labels:,}",
                    f"{r.success_rate:.0%}",
                    "–" if d is None or not math.isfinite(d) else f"{d:.3f}",
                    pg.seconds(r.wall_seconds),
                ]
            )
    return pg.Table(
        ["setting", "learner", "expert labels", "success", "disagreement", "wall (cumulative)"],
        rows,
        notes=[
            f"Success: the share of the {run.config.eval_episodes} evaluation rollouts (seeds "
            f"{run.config.eval_seed}+, the same for every learner) in which Meta-World's "
            "info['success'] was reached. Expert labels: every label trained on, the "
            "demonstrations included.",
            "Disagreement: the mean distance between the learner's action and the expert's on "
            "the states the learner itself reached (for round r < last, the next round's "
            "rollouts, which the expert labelled; for the last, the evaluation rollouts).",
        ],
    )


def write_report(run: ArmDemo) -> None:
    """Figures, the page (``report.md``, ``index.html``) and ``results.json`` into
    ``run.out``."""
    titles = _titles(run)
    figures = [
        pg.Figure(
            _plot_rounds(run, run.out / "success.png", "success").name,
            "Success per round",
            "Round 0 is BC on the demonstrations; each later point is the learner trained on "
            "every label so far, on the same evaluation rollouts.",
        ),
        pg.Figure(
            _plot_rounds(run, run.out / "disagreement.png", "disagreement").name,
            "Disagreement with the expert",
            "How far each round's learner acts from the expert on the states it reaches: "
            "what DAgger's labels correct.",
        ),
    ]
    if run.by_step:
        last = run.config.rounds
        series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for k, v in run.by_step.items():
            series[f"{k}: BC"] = v
            ev = run.final[k]
            series[f"{k}: DAgger {last}"] = (ev.disagreement_by_step, ev.episodes_by_step)
        figures.append(
            pg.Figure(
                plots.plot_disagreement(
                    series,
                    run.out / "disagreement_by_step.png",
                    title="Disagreement with the expert along the learner's own rollouts",
                    discrete=False,
                ).name,
                "Disagreement by time step",
                "BC on its DAgger round-1 rollouts (every state labelled by the expert) and the "
                "last DAgger learner on the evaluation rollouts: where along the episode the "
                "learner's actions leave the expert's. Episodes end at success, so late steps "
                "rest on the episodes that have not succeeded yet.",
            )
        )
    figures += list(run.gifs.values())
    headline = ""
    if "main" in run.results:
        s = run.success("main")
        headline = (
            f"Pick-place from the state: BC on {run.config.demos} demonstrations succeeds "
            f"{s[0]:.0%}; after {len(s) - 1} DAgger rounds {s[-1]:.0%}."
        )
    if "few" in run.results:
        s = run.success("few")
        headline += (
            f" From {run.config.few_demos} demonstrations BC succeeds {s[0]:.0%} and DAgger "
            + " → ".join(f"{v:.0%}" for v in s[1:])
            + "."
        )
    if "hidden" in run.results:
        s = run.success("hidden")
        headline += f" With the goal hidden: BC {s[0]:.0%}, DAgger {s[-1]:.0%}."
    page = pg.Page(
        title="protege demo: the weekend arm project (pick-place, BC then DAgger)",
        headline=headline.strip(),
        intro=(
            "A simulated Sawyer arm (Meta-World pick-place, MuJoCo) learns to pick up a block "
            "and place it at a goal by imitating Meta-World's scripted policy: expert "
            "demonstrations, behavioral cloning, evaluation rollouts, then DAgger rounds in "
            "which the learner drives and the expert labels every state it reaches. "
            + " ".join(f"{t}: {_lesson(k)}" for k, t in titles.items())
        ),
        table=results_table(run),
        figures=figures,
    )
    facts = {"seed": f"{run.config.seed} (evaluation rollouts: seeds {run.config.eval_seed}+)"}
    facts.update(run.notes)
    for step, seconds in run.timings.items():
        cpu = run.cpu_timings.get(step, 0.0)
        facts[f"wall time: {step}"] = f"{pg.seconds(seconds)} ({pg.seconds(cpu)} CPU)"
    load = os.getloadavg()
    facts["wall time: total"] = (
        f"{pg.seconds(run.wall_seconds)} ({pg.seconds(run.cpu_seconds)} of CPU time in this "
        f"process; load average {load[0]:.1f} / {load[2]:.1f} over 1 / 15 min at the end)"
    )
    if "camera" not in run.results:
        facts["camera + proprioception"] = (
            "not run (opt-in: protege demo arm --settings camera; a CNN on a camera on the "
            "table and the arm's proprioception, several minutes more)"
        )
    facts["command"] = pg.command_line()
    facts["machine"] = pg.machine()
    page.run = facts
    run.page_paths = pg.write_page(page, run.out)
    write_json(run.out / "results.json", run.to_dict())


def _lesson(name: str) -> str:
    return SETTINGS[name].lesson
