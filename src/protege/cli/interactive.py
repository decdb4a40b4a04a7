"""protege dagger | teleop: learning with the expert in the loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from protege.algos.bc import BCConfig
from protege.cli.core import (
    _announce,
    _facts,
    _json_object,
    _run_flags,
    _table,
    _task_flag,
    add_config_flags,
    command,
    config_values,
    console,
)
from protege.errors import ConfigError

METHODS = ("dagger", "hg-dagger", "ensemble", "thrifty", "dart")


def _dagger_flags(p: argparse.ArgumentParser) -> None:
    from protege.algos.dagger import DAggerConfig

    _task_flag(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (store, rounds, policies)"
    )
    p.add_argument("--method", choices=METHODS, default="dagger", help="default: dagger")
    p.add_argument(
        "--method-kwargs",
        type=_json_object,
        default={},
        metavar="JSON",
        help="the method's own settings, e.g. '{\"alpha_h\": 0.05}' for thrifty",
    )
    p.add_argument(
        "--hidden-sizes", type=int, nargs="+", metavar="INT", help="learner MLP (default: 256 256)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    add_config_flags(p, DAggerConfig, skip=("seed", "bc"))
    add_config_flags(p, BCConfig, skip=("seed", "progress", "tensorboard_dir"))
    _run_flags(p)


@command("dagger", _dagger_flags)
def dagger(args: argparse.Namespace) -> None:
    """Train with the expert in the loop: DAgger, HG-DAgger, EnsembleDAgger, ThriftyDAgger, DART.

    Round 0 collects expert demonstrations; each later round lets the method's gate decide
    who acts and where the expert labels, appends every episode to the store as it ends
    (tagged with its round and who acted), retrains and evaluates on the same seeded episodes
    as the expert. Every round reports the expert labels used so far. A run killed at any
    point continues with --resume to the same final numbers as an uninterrupted one.

    Example: protege dagger --task lunarlander --method thrifty --rounds 6 --out runs/thrifty
    """
    from protege import tasks
    from protege.algos.dagger import DAggerConfig, method_config_class, policy_factory, run_method

    _announce(args)
    task = tasks.make(args.task)
    bc_defaults = DAggerConfig().bc
    bc_flags = config_values(BCConfig, args, skip=("seed", "progress", "tensorboard_dir"))
    bc = BCConfig(**{**vars(bc_defaults), **bc_flags})
    config = DAggerConfig(
        **config_values(DAggerConfig, args, skip=("seed", "bc")), seed=args.seed, bc=bc
    )
    cls = method_config_class(args.method)
    if cls is None and args.method_kwargs:
        raise ConfigError(f"method {args.method!r} takes no --method-kwargs")
    try:
        method_config = cls(**args.method_kwargs) if cls else None
    except TypeError as exc:
        raise ConfigError(f"--method-kwargs: {exc}") from None
    overrides = {"hidden_sizes": tuple(args.hidden_sizes)} if args.hidden_sizes else {}
    out = Path(args.out)
    result = run_method(
        args.method,
        task,
        out / "store",
        config,
        method_config,
        make_policy=policy_factory(task, **overrides),
        resume=args.resume,
        run_dir=out,
        progress=args.progress,
        log=lambda line: console.print(line, soft_wrap=True),
    )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    (out / "result.md").write_text(result.to_markdown())
    rows = [
        [
            r.round,
            f"{r.labels:,}",
            f"{r.expert_steps:,}",
            r.interventions,
            f"{r.mean_return:.1f} ± {r.std_return:.1f}",
            f"{r.success_rate:.0%}",
            f"{r.wall_seconds:.0f} s",
        ]
        for r in result.rows
    ]
    _table(
        f"{args.method} on {task.name}, seed {args.seed}: expert {result.expert_return:.1f}",
        ["round", "labels", "expert steps", "takeovers", "return", "success", "wall"],
        rows,
    )
    reached = result.labels_to_reach()
    _facts(
        "Result",
        {
            f"labels to reach {config.target_fraction:.0%} of expert": (
                f"{reached:,}" if reached is not None else "not reached"
            ),
            "run folder": out,
        },
    )


def _teleop_flags(p: argparse.ArgumentParser) -> None:
    _task_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="store the labels are appended to")
    p.add_argument(
        "--policy", metavar="DIR", help="a learner to supervise (HG-DAgger); none: you drive"
    )
    p.add_argument("--episodes", type=int, default=5, help="episodes (default: 5)")
    p.add_argument("--fps", type=float, default=20.0, help="control rate in Hz (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes (default: 0)")


@command("teleop", _teleop_flags)
def teleop(args: argparse.Namespace) -> None:
    """A person at the keyboard demonstrates, or takes over from a learner (HG-DAgger).

    Without --policy you drive every step and every step is a label. With --policy the
    learner drives; hold SPACE to take over and release to hand back (T toggles, P pauses,
    ESC quits): only the steps you drive are labelled. Each episode is appended to the store
    as it ends; quitting keeps the episode in progress. Needs a display.

    Example: protege teleop --task lunarlander --policy runs/bc --out hg/lander --episodes 10
    """
    from protege.algos.teleop import teleop as run_teleop

    _announce(args)
    summary = run_teleop(
        args.task,
        args.out,
        episodes=args.episodes,
        policy=args.policy,
        seed=args.seed,
        fps=args.fps,
        log=lambda line: console.print(line, soft_wrap=True),
    )
    console.print(summary.to_text())
