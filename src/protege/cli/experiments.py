"""protege experiment ...: protege's own experiments."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from protege.cli import output, results_json
from protege.cli.flags import add_config_flags, config_values, json_flag, progress_flag, seed_flag
from protege.cli.registry import command
from protege.configs.horizon import HorizonConfig

if TYPE_CHECKING:  # imported when the command runs: --help stays free of torch
    from protege.experiments.horizon_results import HorizonResult
    from protege.experiments.slopes import SlopeFit


def _horizon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="reports/horizon", metavar="DIR", help="where the table and plot go"
    )
    add_config_flags(p, HorizonConfig, skip=("seed",))
    seed_flag(p)
    progress_flag(p)
    json_flag(p)


def _fit_cells(fit: SlopeFit | None) -> list[str]:
    """``[slope, "[low, high]"]`` of a fit, or dashes when there is none."""
    if fit is None:
        return ["–", "–"]
    return [f"{fit.slope:.3f}", f"[{fit.low:.3f}, {fit.high:.3f}]"]


def _slope_rows(result: HorizonResult) -> list[list[str]]:
    """One row per arm: exact slope and OLS CI, Monte Carlo slope and bootstrap CI, labels."""
    rows = []
    for name, arm in result.arms.items():
        mc_fit = arm.mc.mistakes_slope if arm.mc is not None else None
        cells = _fit_cells(arm.mistakes_slope) + _fit_cells(mc_fit)
        rows.append([name, *cells, f"{arm.mean_labels[-1]:,.0f}"])
    return rows


def _print_sweep(result: HorizonResult) -> None:
    cfg = result.config
    output.print_table(
        f"Slope of log E(mistakes) against log T (ε = {cfg.epsilon:g}, seed {cfg.seed})",
        [
            "arm",
            "exact",
            f"{cfg.ci:.0%} CI, OLS",
            "MC",
            f"{cfg.ci:.0%} CI, bootstrap",
            f"labels T={cfg.horizons[-1]}",
        ],
        _slope_rows(result),
    )
    for quantity in ("mistakes", "cost"):
        agreement = result.agreement(quantity)
        if agreement is not None:
            output.line(f"Monte Carlo vs exact, {agreement}")


@command(
    "experiment horizon",
    _horizon_flags,
    interrupted="nothing was written to {out}; run the experiment again",
)
def horizon(args: argparse.Namespace) -> None:
    """Compounding error against horizon: BC's εT² against DAgger's, DART's and HG-DAgger's εT.

    Trains every arm with protege's own algorithms (engine.run with the β-mixture, DART's
    noisy expert and HG-DAgger's simulated supervisor, through the one rollout loop) on the
    lane-keeping corridor (`lane`) for T in --horizons, with a tabular learner that slips
    with probability --epsilon. Expected mistakes per episode are computed exactly by
    dynamic programming (no sampling noise; slope CI from the OLS fit over T) and
    cross-checked by Monte Carlo through the rollout loop (a χ² test of agreement; slope CI
    by bootstrap over episodes). Writes horizon.md, horizon.json and horizon.png to --out.
    A second sweep at --saturated-epsilon shows BC's slope falling toward 1 once εT is large.

    Example: protege experiment horizon --epsilon 2.5e-4 --seeds 2 --out reports/horizon
    """
    output.announce(args)
    from protege.experiments.horizon import run_horizon

    config = HorizonConfig(**{**config_values(HorizonConfig, args), "seed": args.seed})
    result = run_horizon(config, progress=args.progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "horizon.md").write_text(result.to_markdown() + "\n")
    saved = result.to_dict()
    (out / "horizon.json").write_text(json.dumps(saved, indent=2))
    result.plot(out / "horizon.png")
    for sweep in (result, result.saturated):
        if sweep is not None:
            _print_sweep(sweep)
    output.facts(
        "Output",
        {
            "table": out / "horizon.md",
            "plot": out / "horizon.png",
            "seconds": f"{result.total_seconds:.1f}",
        },
    )
    results_json.write(args, {"out": str(out), **dataclasses.asdict(config)}, saved)
