"""protege experiment ...: protege's own experiments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from protege.cli.core import _announce, _facts, _table, add_config_flags, command, config_values
from protege.experiments.horizon import HorizonConfig, run_horizon


def _horizon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="reports/horizon", metavar="DIR", help="where the table and plot go"
    )
    add_config_flags(p, HorizonConfig, skip=("seed",))
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default: 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="quiet")


@command("experiment horizon", _horizon_flags)
def horizon(args: argparse.Namespace) -> None:
    """Compounding error against horizon: BC's εT² against DAgger's, DART's and HG-DAgger's εT.

    Runs every arm on the lane-keeping corridor (`lane`) for T in --horizons with a learner
    that slips with probability --epsilon, computes expected mistakes per episode exactly by
    dynamic programming over the state distribution (no sampling noise) with a Monte Carlo
    cross-check, fits the log-log slope against T with a bootstrap CI over data seeds, and
    writes horizon.md, horizon.json and horizon.png to --out. A second run at
    --saturated-epsilon shows BC's slope falling toward 1 once εT is large.

    Example: protege experiment horizon --epsilon 2.5e-4 --seeds 5 --out reports/horizon
    """
    _announce(args)
    config = HorizonConfig(**{**config_values(HorizonConfig, args), "seed": args.seed})
    result = run_horizon(config, progress=args.progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "horizon.md").write_text(result.to_markdown())
    (out / "horizon.json").write_text(json.dumps(result.to_dict(), indent=2))
    result.plot(out / "horizon.png")
    rows = []
    for name, arm in result.arms.items():
        fit = arm.mistakes_slope
        rows.append(
            [
                name,
                f"{fit.slope:.3f}",
                f"[{fit.low:.3f}, {fit.high:.3f}]",
                f"{arm.mean_labels[-1]:,.0f}",
            ]
        )
    _table(
        f"Slope of log E(mistakes) against log T (ε = {config.epsilon:g}, seed {config.seed})",
        ["arm", "slope", f"{config.ci:.0%} CI", f"labels at T={config.horizons[-1]}"],
        rows,
    )
    _facts(
        "Output",
        {
            "table": out / "horizon.md",
            "plot": out / "horizon.png",
            "seconds": f"{result.seconds:.1f}",
        },
    )
