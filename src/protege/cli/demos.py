"""protege demo ...: end-to-end runs that write a report folder."""

from __future__ import annotations

import argparse
from typing import Any

from protege.algos import registry
from protege.cli import output
from protege.cli.flags import add_config_flags, config_fields, config_values, run_flags
from protege.cli.registry import command
from protege.configs.demos import (
    ARM_SETTINGS,
    INTERACTIVE,
    OBSTACLE_HEADS,
    ArmDemoConfig,
    CarRacingDemoConfig,
    LunarDemoConfig,
    ObstacleDemoConfig,
)


def _config(cls: type, args: argparse.Namespace, skip: tuple[str, ...]) -> dict[str, Any]:
    """The fields of the demo config ``cls`` given as flags, lists as tuples."""
    values = config_values(cls, args, skip=skip)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


# ---------------------------------------------------------------------------- lunarlander
_LUNAR_SKIP = ("seed", "progress", "methods")


def _demo_lunarlander_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports/demo-TASK)")
    add_config_flags(p, LunarDemoConfig, skip=_LUNAR_SKIP)
    # --methods with nothing after it means none (BC alone): nargs="*", not a derived flag's "+"
    methods = list(registry.names())
    spec = next(f for f in config_fields(LunarDemoConfig) if f.name == "methods")
    p.add_argument(
        "--methods",
        nargs="*",
        default=None,
        choices=methods,
        metavar="METHOD",
        help=spec.help(
            f"{' '.join(INTERACTIVE)}; also: "
            f"{', '.join(m for m in methods if m not in INTERACTIVE)}"
        ),
    )
    run_flags(p)


@command("demo lunarlander", _demo_lunarlander_flags)
def demo_lunarlander(args: argparse.Namespace) -> None:
    """Expert demonstrations → BC → DAgger, HG-DAgger, ThriftyDAgger → rollouts → a report.

    Collects expert episodes and trains BC (a 2×256 MLP); runs BC on 1-16 demonstrations and
    the interactive methods from one demonstration for a few rounds (every expert label
    counted); evaluates the expert and every final learner on the same seeded episodes; and
    writes index.html and report.md with return against expert labels, return distributions,
    disagreement with the expert against time step, BC's training and validation loss
    (10% of the demonstrations held out) and GIFs of BC and DAgger.
    About 3-4 minutes on 2 CPU cores (under a minute with --methods and nothing after it).

    Example: protege demo        protege demo lunarlander --seed 1 --out reports/seed1
    """
    from protege.demos.lunarlander import run_demo
    from protege.demos.lunarlander_report import labels_summary

    output.announce(args)
    values = _config(LunarDemoConfig, args, _LUNAR_SKIP)
    if args.methods is not None:
        values["methods"] = tuple(args.methods)
    cfg = LunarDemoConfig(seed=args.seed, progress=args.progress, **values)
    run = run_demo(args.out, cfg)
    output.evaluation_table(
        f"{run.task.name}: {cfg.eval_episodes} evaluation episodes, seed {run.eval_seed}",
        {k: m.evaluation for k, m in run.methods.items()},
        {k: m.labels for k, m in run.methods.items()},
    )
    output.facts(
        "Wall time",
        {**{k: f"{v:.1f} s" for k, v in run.timings.items()}, "total": f"{run.wall_seconds:.1f} s"},
    )
    if "BC" in run.methods:
        output.console.print(f"[bold]{run.headline('BC')}[/]")
    if len(run.curves) > 1:
        output.console.print(labels_summary(run))
    assert run.page_paths is not None
    output.console.print(
        f"report: {run.page_paths[1]}  (and {run.page_paths[0].name}), seed={args.seed}",
        soft_wrap=True,  # a path to copy, not to break
    )


# ------------------------------------------------------------------------------- obstacle
_OBSTACLE_SKIP = ("seed", "progress")


def _demo_obstacle_flags(p: argparse.ArgumentParser) -> None:
    heads = list(OBSTACLE_HEADS)
    p.add_argument("--out", default="reports/demo-obstacle", metavar="DIR", help="report folder")
    add_config_flags(
        p,
        ObstacleDemoConfig,
        skip=_OBSTACLE_SKIP,
        choices={"heads": heads},
    )
    run_flags(p)


@command("demo obstacle", _demo_obstacle_flags)
def demo_obstacle(args: argparse.Namespace) -> None:
    """Demonstrators who disagree: which output heads get past the obstacle.

    The expert passes an obstacle on the left in 60% of episodes and on the right in 40%.
    Trains BC with every continuous head (mse, gaussian, mog, binned, diffusion, flow) on the
    same demonstrations, with chunks of 8 executed open loop and with one action per step,
    rolls each out on the same seeded episodes, sweeps diffusion's and flow's sampling steps,
    and writes a report with the sampled chunks at the obstacle. About 10 minutes on 2 cores.

    Example: protege demo obstacle        protege demo obstacle --steps 1000 --episodes 50
    """
    from protege.demos.obstacle import run_obstacle_demo

    output.announce(args)
    values = _config(ObstacleDemoConfig, args, _OBSTACLE_SKIP)
    cfg = ObstacleDemoConfig(seed=args.seed, progress=args.progress, **values)
    run = run_obstacle_demo(args.out, cfg)
    rows = [["–", "expert", f"{run.expert['success']:.0%}", f"{run.expert['crash']:.0%}", "–"]]
    for key, r in run.rows.items():
        chunk, head = key.removeprefix("chunk").split("/")
        rows.append(
            [chunk, head, f"{r['success']:.0%}", f"{r['crash']:.0%}", f"{r['train_seconds']:.0f}"]
        )
    output.table(
        f"obstacle: {cfg.episodes} evaluation episodes, seed {cfg.eval_seed}",
        ["chunk", "head", "success", "crash", "train s"],
        rows,
    )
    for head, by_steps in run.sweep.items():
        output.table(
            f"{head}: success against sampling steps (chunk {max(cfg.chunks)})",
            ["steps", *map(str, by_steps)],
            [["success", *(f"{v:.0%}" for v in by_steps.values())]],
        )
    output.console.print(f"wall time {run.wall_seconds:.0f} s")
    assert run.page_paths is not None
    output.console.print(f"report: {run.page_paths[1]}  seed={args.seed}", soft_wrap=True)


# ------------------------------------------------------------------------------ carracing
_CARRACING_SKIP = ("seed", "progress", "torch_threads")


def _demo_carracing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports/demo-carracing", metavar="DIR", help="report folder")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a toy run of every step on 60-step episodes (seconds; for checking the set-up)",
    )
    add_config_flags(p, CarRacingDemoConfig, skip=_CARRACING_SKIP)
    run_flags(p)


@command("demo carracing", _demo_carracing_flags)
def demo_carracing(args: argparse.Namespace) -> None:
    """BC and DAgger from pixels on CarRacing-v3: the seeds' tutorial, end to end.

    Records expert laps, trains a CNN policy by BC, runs DAgger rounds (the expert relabels
    the learner's own frames) and DART rounds (noise in the expert's driving), evaluates every
    method on the same fresh tracks (return, tiles visited, off-track events and when), and
    writes a report with return against expert labels and a GIF of each driving. About 15
    minutes on 2 cores.

    Example: protege demo carracing        protege demo carracing --smoke
    """
    from protege.demos.carracing import run_carracing_demo
    from protege.demos.carracing_report import results_table

    output.announce(args)
    values = _config(CarRacingDemoConfig, args, _CARRACING_SKIP)
    common = {"seed": args.seed, "progress": args.progress, "torch_threads": args.threads}
    if args.smoke:
        run = run_carracing_demo(
            args.out, CarRacingDemoConfig.smoke(**common, **values), max_steps=60
        )
    else:
        run = run_carracing_demo(args.out, CarRacingDemoConfig(**common, **values))
    table = results_table(run)
    output.table("carracing: evaluation on fresh tracks", table.columns, table.rows)
    assert run.page_paths is not None
    output.console.print(f"report: {run.page_paths[1]}  seed={args.seed}", soft_wrap=True)


# ------------------------------------------------------------------------------------ arm
_ARM_SKIP = ("seed", "progress", "settings")


def _demo_arm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports/demo-arm", metavar="DIR", help="report folder")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a toy run of every step on a few 25-step episodes (seconds; checks the set-up)",
    )
    p.add_argument(
        "--settings",
        nargs="+",
        default=None,
        choices=list(ARM_SETTINGS),
        metavar="SETTING",
        help=f"which settings to run: {' '.join(ARM_SETTINGS)} (default: all)",
    )
    add_config_flags(p, ArmDemoConfig, skip=_ARM_SKIP)
    run_flags(p)


@command("demo arm", _demo_arm_flags)
def demo_arm(args: argparse.Namespace) -> None:
    """The weekend arm project: a simulated arm picks up a block (Meta-World pick-place).

    50 expert demonstrations → BC → 20 evaluation rollouts → 3 DAgger rounds (20 learner
    rollouts each, the expert labels every state) → a report with success per round, the
    disagreement with the expert, and GIFs from the camera. Also runs the settings where the
    lesson shows: 3 demonstrations, and the goal hidden from the learner (the expert reads
    it from the simulator). Needs the 'arm' extra (pip install 'protege[arm]'). About 3
    minutes on 2 cores.

    Example: protege demo arm        protege demo arm --smoke
    """
    from protege.demos.arm import run_arm_demo
    from protege.demos.arm_report import results_table

    output.announce(args)
    values = _config(ArmDemoConfig, args, _ARM_SKIP)
    if args.settings:
        values["settings"] = tuple(args.settings)
    common = {"seed": args.seed, "progress": args.progress}
    make = ArmDemoConfig.smoke if args.smoke else ArmDemoConfig
    cfg = make(**common, **values)
    say = (lambda line: output.console.print(line, markup=False)) if args.progress else None
    run = run_arm_demo(args.out, cfg, log=say)
    table = results_table(run, short=True)
    output.table("pick-place: success per round", table.columns, table.rows)
    output.console.print(
        f"wall time {run.wall_seconds:.0f} s ({run.cpu_seconds:.0f} s of CPU time)"
    )
    assert run.page_paths is not None
    output.console.print(f"report: {run.page_paths[1]}  seed={args.seed}", soft_wrap=True)
