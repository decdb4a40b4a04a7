"""The CarRacing demo's report: figures, the results table, ``report.md``, ``index.html``,
``results.json`` (:func:`write_report`, called by
:func:`protege.demos.carracing.run_carracing_demo`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protege.demos.carracing_driving import CONTROL, OFF_TRACK
from protege.demos.common import write_json
from protege.report import page as pg
from protege.report import plots

if TYPE_CHECKING:
    from protege.demos.carracing import CarRacingDemo


def _plot_return_vs_labels(run: CarRacingDemo, path: Path) -> Path:
    import matplotlib.pyplot as plt

    colors = plots.method_colors(list(run.rows) or ["expert", "BC", *run.curves])
    fig, ax = plt.subplots(figsize=(6.8, 4.0))
    expert = run.rows.get("expert")
    if expert is not None:
        ax.axhline(expert.mean_return, color=colors["expert"], ls="--", lw=1, label="expert")
    for name, res in run.curves.items():
        x = [r.labels for r in res.rows]
        y = [r.mean_return for r in res.rows]
        e = [r.std_return for r in res.rows]
        ax.errorbar(x, y, yerr=e, fmt="-o", ms=4, capsize=3, color=colors[name], label=name)
    for name, label, marker in (("BC", "BC (round 0 of both)", "s"), (CONTROL, CONTROL, "^")):
        if name in run.rows:
            b = run.rows[name]
            ax.errorbar(
                [b.labels],
                [b.mean_return],
                yerr=[b.std_return],
                fmt=marker,
                ms=8,
                capsize=3,
                color=plots.method_colors(list(run.rows))[name],
                label=label,
                zorder=5,
            )
    ax.set_xlabel("expert labels trained on")
    ax.set_ylabel(f"return on {run.config.eval_episodes} fresh tracks (mean ± std)")
    ax.set_title("Return against expert labels")
    ax.grid(alpha=0.3)
    ax.legend(frameon=True, framealpha=0.85, fontsize=8.5, loc="best")
    return plots._save(fig, path)


def _plot_off_track(run: CarRacingDemo, path: Path) -> Path:
    import matplotlib.pyplot as plt

    names = list(run.rows)
    colors = plots.method_colors(names)
    horizon = max((int(d.lengths.max()) for d in run.rows.values()), default=1)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(7.2, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1.3]}
    )
    t = np.arange(horizon)
    for name in names:
        frac = run.rows[name].off_by_step(horizon)
        # 20-step moving average, averaged over the steps inside the episode window only
        # (no dip at the ends from zero padding).
        box = np.ones(min(20, horizon))
        smooth = np.convolve(frac, box, "same") / np.convolve(np.ones(horizon), box, "same")
        ax.plot(t, smooth, color=colors[name], lw=1.6, label=name)
    ax.set_ylabel("episodes off the road")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("When the car leaves the road (same tracks for every method)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8.5, ncol=len(names))
    for row, name in enumerate(names):
        for events in run.rows[name].events():
            ax2.scatter(events, np.full(len(events), row), marker="|", s=80, color=colors[name])
    ax2.set_yticks(range(len(names)), names)
    ax2.set_ylim(-0.6, len(names) - 0.4)
    ax2.invert_yaxis()
    ax2.set_xlabel("step of the episode")
    ax2.set_title("off-track events (the step the car's centre left the road)", fontsize=9)
    ax2.grid(axis="x", alpha=0.3)
    return plots._save(fig, path)


def results_table(run: CarRacingDemo) -> pg.Table:
    expert = run.rows["expert"].mean_return
    bc_row = run.rows.get("BC")
    rows = []
    for name, d in run.rows.items():
        events = d.events()
        first = d.first_off
        vs_bc = "–"
        if bc_row is not None and name not in ("expert", "BC"):
            mean, se = d.paired_difference(bc_row)
            vs_bc = f"{mean:+.1f} ± {se:.1f}"
        rows.append(
            [
                name,
                "–" if name == "expert" else f"{d.labels:,}",
                f"{d.mean_return:.1f} ± {d.std_return:.1f}",
                vs_bc,
                f"{100 * d.mean_return / expert:.0f}%" if expert else "–",
                f"{100 * np.mean(d.tiles):.0f}%",
                f"{sum(len(e) for e in events)} in {sum(len(e) > 0 for e in events)}/{len(events)}",
                "–" if np.isnan(first).all() else f"{np.nanmedian(first):.0f}",
                f"{100 * d.off_fraction:.1f}%",
            ]
        )
    return pg.Table(
        [
            "method",
            "expert labels",
            "return (mean ± std)",
            "vs BC, same tracks (mean ± s.e.)",
            "% of expert",
            "tiles visited",
            "off-track events (episodes)",
            "first off-track step (median)",
            "steps off the road",
        ],
        rows,
        notes=[
            f"Every method drove the same {run.config.eval_episodes} fresh tracks (seeds "
            f"{run.config.eval_seed}+), none of which it was trained on.",
            "off-track event: the car's centre farther than the road's half-width "
            f"({OFF_TRACK:.2f}) from the centreline (``info['track_offset']``), counted each "
            "time it leaves the road.",
            "vs BC: the mean over tracks of (method's return − BC's return) on the same track, "
            "± its standard error; a difference within about two standard errors of 0 is not "
            "distinguishable from track-to-track luck at this number of tracks.",
            "DAgger and DART start from the BC policy and add labels each round; compare them "
            "with BC in the figure of return against labels, and with BC + steps (as many "
            "gradient steps, no new labels).",
        ],
    )


def write_report(run: CarRacingDemo) -> None:
    """Figures, ``report.md``, ``index.html`` and ``results.json`` into ``run.out``."""
    t0 = time.perf_counter()
    figures = [
        pg.Figure(
            _plot_return_vs_labels(run, run.out / "return_vs_labels.png").name,
            "Return against expert labels",
            "Each DAgger and DART point is one round's policy on the evaluation tracks; round 0 "
            "is the BC policy both start from. Error bars: std over tracks.",
        ),
        pg.Figure(
            plots.plot_returns(
                {k: v.returns for k, v in run.rows.items()},
                run.out / "returns.png",
                title=f"Return on {run.config.eval_episodes} fresh tracks",
            ).name,
            "Return per track",
            "Each dot is one evaluation track; every method drove the same tracks.",
        ),
        pg.Figure(
            _plot_off_track(run, run.out / "off_track.png").name,
            "Off-track events over time",
            "Top: fraction of episodes whose car is off the road at each step (20-step moving "
            "average). Bottom: every event, one row per method.",
        ),
    ]
    figures += list(run.gifs.values())
    bc_row, rows = run.rows.get("BC"), run.rows
    headline = ""
    if bc_row is not None and "DAgger" in rows and "DART" in rows:
        headline = (
            f"From pixels, BC drives {bc_row.mean_return:.0f} ± {bc_row.std_return:.0f} "
            f"({100 * np.mean(bc_row.tiles):.0f}% of the tiles) on "
            f"{bc_row.labels:,} expert labels; DAgger "
            f"{rows['DAgger'].mean_return:.0f} ± {rows['DAgger'].std_return:.0f} "
            f"({100 * np.mean(rows['DAgger'].tiles):.0f}%) on {rows['DAgger'].labels:,}; "
            f"DART {rows['DART'].mean_return:.0f} ± {rows['DART'].std_return:.0f} "
            f"({100 * np.mean(rows['DART'].tiles):.0f}%) on {rows['DART'].labels:,}; the "
            f"expert {rows['expert'].mean_return:.0f}."
        )
    page = pg.Page(
        title="protege demo: learning to drive CarRacing from pixels (BC, DAgger, DART)",
        headline=headline,
        intro=(
            "A CNN learns to drive from 96×96 camera frames by imitating a driving expert that "
            "reads the car's pose and the track from the simulator (the learner never sees "
            "them). BC learns from the expert's laps only; DAgger lets the BC policy drive and "
            "has the expert label the frames it reached; DART has the expert drive with noise "
            "in its actions and stores its clean actions."
        ),
        table=results_table(run),
        figures=figures,
    )
    run.timings["report"] = time.perf_counter() - t0
    run.cpu_timings["report"] = 0.0
    facts = {"seed": f"{run.config.seed} (evaluation tracks: {run.config.eval_seed}+)"}
    facts.update(run.notes)
    for name, res in run.curves.items():
        facts[f"{name} rounds"] = ", ".join(
            f"r{r.round}: {r.labels:,} labels → {r.mean_return:.0f}" for r in res.rows
        )
    for step, s in run.timings.items():
        facts[f"wall time: {step}"] = (
            f"{pg.seconds(s)} ({pg.seconds(run.cpu_timings.get(step, 0.0))} CPU)"
        )
    load = os.getloadavg()
    facts["wall time: total"] = (
        f"{pg.seconds(run.wall_seconds)} ({pg.seconds(run.cpu_seconds)} of CPU time in this "
        f"process; load average {load[0]:.1f} / {load[2]:.1f} over 1 / 15 min at the end)"
    )
    facts["command"] = pg.command_line()
    facts["machine"] = pg.machine()
    page.run = facts
    run.page_paths = pg.write_page(page, run.out)
    write_json(run.out / "results.json", run.to_dict())
