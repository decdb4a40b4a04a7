"""protege demo ...: end-to-end runs that write a report folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from protege.algos import registry
from protege.cli import output, results_json
from protege.cli.flags import (
    add_config_flags,
    config_fields,
    config_values,
    device_flag,
    json_flag,
    run_flags,
)
from protege.cli.registry import command
from protege.configs.checks import PRECISIONS
from protege.configs.demos import (
    ARM_ALL_SETTINGS,
    ARM_SETTINGS,
    FINETUNE_DEMONSTRATORS,
    INTERACTIVE,
    OBSTACLE_HEADS,
    ArmDemoConfig,
    CarRacingDemoConfig,
    FinetuneDemoConfig,
    LunarDemoConfig,
    ObstacleDemoConfig,
)


def _config(cls: type, args: argparse.Namespace, skip: tuple[str, ...]) -> dict[str, Any]:
    """The fields of the demo config ``cls`` given as flags, lists as tuples."""
    values = config_values(cls, args, skip=skip)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _write_json(args: argparse.Namespace, out: Path, config: Any, **extra: Any) -> None:
    """``--json``: the demo's settings and, as results, what it saved in ``results.json``."""
    settings = {"out": str(out), **extra, **dataclasses.asdict(config)}
    results_json.write(args, settings, json.loads((out / "results.json").read_text()))


_INTERRUPTED = "its report is incomplete; run the demo again to start over"


# ---------------------------------------------------------------------------- lunarlander
_LUNAR_SKIP = ("seed", "progress", "methods")


def _demo_lunarlander_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports/demo-TASK)")
    add_config_flags(p, LunarDemoConfig, skip=(*_LUNAR_SKIP, "device"))
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
    device_flag(p)
    json_flag(p)


@command("demo lunarlander", _demo_lunarlander_flags, interrupted=_INTERRUPTED)
def demo_lunarlander(args: argparse.Namespace) -> None:
    """Expert demonstrations → BC → DAgger, HG-DAgger, ThriftyDAgger → rollouts → a report.

    On lunarlander-noisy-mild by default (the learner's sensors are noisy, the expert flies on
    the true state: BC on demonstrations drifts, the interactive methods label where it goes;
    --task lunarlander for the stock lander, with --rounds 4).
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
        output.line(run.headline("BC"), bold=True)
    if len(run.curves) > 1:
        output.line(labels_summary(run))
    assert run.page_paths is not None
    output.line(f"report: {run.page_paths[1]}  (and {run.page_paths[0].name}), seed={args.seed}")
    _write_json(args, run.out, cfg)


# ------------------------------------------------------------------------------- obstacle
_OBSTACLE_SKIP = ("seed", "progress")


def _demo_obstacle_flags(p: argparse.ArgumentParser) -> None:
    heads = list(OBSTACLE_HEADS)
    p.add_argument("--out", default="reports/demo-obstacle", metavar="DIR", help="report folder")
    add_config_flags(
        p,
        ObstacleDemoConfig,
        skip=(*_OBSTACLE_SKIP, "device"),
        choices={"heads": heads},
    )
    run_flags(p)
    device_flag(p)
    json_flag(p)


@command("demo obstacle", _demo_obstacle_flags, interrupted=_INTERRUPTED)
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
    output.print_table(
        f"obstacle: {cfg.episodes} evaluation episodes, seed {cfg.eval_seed}",
        ["chunk", "head", "success", "crash", "train s"],
        rows,
    )
    for head, by_steps in run.sweep.items():
        output.print_table(
            f"{head}: success against sampling steps (chunk {max(cfg.chunks)})",
            ["steps", *map(str, by_steps)],
            [["success", *(f"{v:.0%}" for v in by_steps.values())]],
        )
    output.line(f"wall time {run.wall_seconds:.0f} s")
    assert run.page_paths is not None
    output.line(f"report: {run.page_paths[1]}  seed={args.seed}")
    _write_json(args, run.out, cfg)


# ------------------------------------------------------------------------------ carracing
_CARRACING_SKIP = ("seed", "progress", "torch_threads")
_SMOKE_STEPS = 60
"""Episode length of ``--smoke``."""


def _demo_carracing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports/demo-carracing", metavar="DIR", help="report folder")
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"a toy run of every step on {_SMOKE_STEPS}-step episodes (seconds; for checking "
        "the set-up)",
    )
    add_config_flags(
        p,
        CarRacingDemoConfig,
        skip=(*_CARRACING_SKIP, "device"),
        choices={"precision": list(PRECISIONS)},
    )
    run_flags(p)
    device_flag(p)
    json_flag(p)


@command("demo carracing", _demo_carracing_flags, interrupted=_INTERRUPTED)
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
        cfg = CarRacingDemoConfig.smoke(**common, **values)
        run = run_carracing_demo(args.out, cfg, max_steps=_SMOKE_STEPS, log=output.note)
    else:
        cfg = CarRacingDemoConfig(**common, **values)
        run = run_carracing_demo(args.out, cfg, log=output.note)
    table = results_table(run)
    output.print_table("carracing: evaluation on fresh tracks", table.columns, table.rows)
    assert run.page_paths is not None
    output.line(f"report: {run.page_paths[1]}  seed={args.seed}")
    smoke = {"max_steps": _SMOKE_STEPS} if args.smoke else {}
    _write_json(args, run.out, cfg, smoke=args.smoke, **smoke)


# ------------------------------------------------------------------------------- finetune
_FINETUNE_SKIP = ("seed", "progress")


def _demo_finetune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="reports/demo-finetune", metavar="DIR", help="report folder")
    add_config_flags(
        p,
        FinetuneDemoConfig,
        skip=_FINETUNE_SKIP,
        choices={"demonstrator": list(FINETUNE_DEMONSTRATORS)},
    )
    run_flags(p)
    json_flag(p)


@command("demo finetune", _demo_finetune_flags, interrupted=_INTERRUPTED)
def demo_finetune(args: argparse.Namespace) -> None:
    """BC from two demonstrations, then RL fine-tuning with and without the KL anchor.

    Collects two demonstrations (by default from CartPole's drifting demonstrator, a weakened
    expert), trains BC on them, fine-tunes the BC policy with PPO on the task's reward with
    and without a KL penalty to the frozen BC policy (value warm-up first in both), and writes
    a report with return against env steps and the expert's, the demonstrator's and BC's
    levels. About 2-4 minutes on 2 cores.

    Example: protege demo finetune        protege demo finetune --demonstrator expert --demos 1
    """
    from protege.demos.finetune import run_finetune_demo

    output.announce(args)
    values = _config(FinetuneDemoConfig, args, _FINETUNE_SKIP)
    cfg = FinetuneDemoConfig(seed=args.seed, progress=args.progress, **values)
    run = run_finetune_demo(args.out, cfg)
    rows = [
        ["expert", f"{run.expert:.1f}", "–"],
        ["demonstrator", f"{run.demonstrator:.1f}", "–"],
        ["BC", f"{run.bc:.1f}", "–"],
    ]
    for name, r in run.runs.items():
        best = max(e["mean_return"] for e in r.evals)
        rows.append([f"fine-tuned {name}", f"{r.evals[-1]['mean_return']:.1f}", f"{best:.1f}"])
    output.print_table(
        f"{cfg.task}: {cfg.eval_episodes} evaluation episodes, seed {cfg.eval_seed}",
        ["policy", "return (final)", "best evaluation"],
        rows,
    )
    output.line(f"{run.headline()}  wall time {run.wall_seconds:.0f} s", bold=True)
    assert run.page_paths is not None
    output.line(f"report: {run.page_paths[1]}  seed={args.seed}")
    _write_json(args, run.out, cfg)


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
        choices=list(ARM_ALL_SETTINGS),
        metavar="SETTING",
        help=f"which settings to run: {' '.join(ARM_ALL_SETTINGS)} (default: "
        f"{' '.join(ARM_SETTINGS)}; camera, a CNN on a camera on the table plus the arm's "
        "proprioception, is opt-in: minutes more; --smoke runs all four)",
    )
    add_config_flags(p, ArmDemoConfig, skip=_ARM_SKIP)
    run_flags(p)
    json_flag(p)


@command("demo arm", _demo_arm_flags, interrupted=_INTERRUPTED)
def demo_arm(args: argparse.Namespace) -> None:
    """The weekend arm project: a simulated arm picks up a block (Meta-World pick-place).

    50 expert demonstrations → BC → 20 evaluation rollouts → 3 DAgger rounds (20 learner
    rollouts each, the expert labels every state) → a report with success per round, the
    disagreement with the expert, and GIFs from the camera. Also runs the settings where the
    lesson shows: 3 demonstrations, and the goal hidden from the learner (the expert reads
    it from the simulator). Needs the 'arm' extra (pip install 'protege[arm]'). About 3
    minutes on 2 cores. Opt-in: --settings camera, the learner on a camera on the table
    (84×84) and the arm's proprioception (a CNN; several minutes more).

    Example: protege demo arm        protege demo arm --smoke
             protege demo arm --settings camera
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
    say = output.note if args.progress else None
    run = run_arm_demo(args.out, cfg, log=say)
    table = results_table(run, short=True)
    output.print_table("pick-place: success per round", table.columns, table.rows)
    output.line(f"wall time {run.wall_seconds:.0f} s ({run.cpu_seconds:.0f} s of CPU time)")
    assert run.page_paths is not None
    output.line(f"report: {run.page_paths[1]}  seed={args.seed}")
    _write_json(args, run.out, cfg, smoke=args.smoke)
