"""protege dagger | teleop: learning with the expert in the loop."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protege.algos import registry
from protege.cli import output, results_json
from protege.cli.flags import (
    FieldSpec,
    add_config_flags,
    config_fields,
    config_values,
    device_flag,
    episodes_int,
    finite_positive_float,
    flag_kwargs,
    json_flag,
    json_object,
    nonneg_int,
    open_workers,
    run_flags,
    size_int,
    task_flag,
    workers_flags,
)
from protege.cli.registry import command
from protege.configs.bc import BCConfig
from protege.configs.checks import PRECISIONS
from protege.configs.interactive import DAggerConfig
from protege.configs.policy import PolicyConfig
from protege.errors import ConfigError

if TYPE_CHECKING:
    from protege.algos.results import DAggerResult
    from protege.tasks import Task

_SETTING = "method_setting_"
"""Prefix of the ``args`` attributes holding the methods' own settings (``--alpha-h``)."""
_DAGGER_SKIP = ("seed", "bc")
_BC_SKIP = ("seed", "progress", "tensorboard_dir")
_DAGGER_COLUMNS = (
    "round",
    "labels",
    "expert steps",
    "interventions",
    "attention",
    "return",
    "success",
    "wall",
)


def _dagger_flags(p: argparse.ArgumentParser) -> None:
    task_flag(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (store, rounds, policies)"
    )
    p.add_argument(
        "--method",
        default="dagger",
        metavar="NAME",
        help=f"{', '.join(registry.names())}, or one a --plugin registers (default: dagger); "
        "its own settings are the flags of its group below",
    )
    p.add_argument(
        "--method-kwargs",
        type=json_object,
        default={},
        metavar="JSON",
        help="the method's own settings as JSON, e.g. '{\"alpha_h\": 0.05}' for thrifty: for "
        "a method a plugin registers (its flags are not known when the command line is read)",
    )
    p.add_argument(
        "--hidden-sizes",
        type=size_int,
        nargs="+",
        metavar="INT",
        help="learner MLP (default: 256 256)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument(
        "--human",
        action="store_true",
        help="with --method hg-dagger: you are the supervisor, at the keyboard in a window "
        "(round 0 you demonstrate; then hold SPACE to take over from the learner; ESC stops, "
        "--resume continues); needs a display",
    )
    p.add_argument(
        "--fps",
        type=finite_positive_float,
        default=20.0,
        help="with --human: control rate in Hz (default: 20)",
    )
    add_config_flags(p, DAggerConfig, skip=_DAGGER_SKIP)
    add_config_flags(
        p, BCConfig, skip=(*_BC_SKIP, "device"), choices={"precision": list(PRECISIONS)}
    )
    device_flag(p)
    _method_flags(p)
    workers_flags(p)
    run_flags(p)
    json_flag(p)


def _method_fields() -> dict[str, list[tuple[str, FieldSpec]]]:
    """Each field of a registered method's settings that a flag can hold → the (method,
    field) pairs that have it (``members``: EnsembleDAgger's and ThriftyDAgger's)."""
    owners: dict[str, list[tuple[str, FieldSpec]]] = {}
    for name in registry.names():
        cls = registry.entry(name).config_class()
        for f in config_fields(cls) if cls is not None else []:
            if flag_kwargs(f.type) is not None:
                owners.setdefault(f.name, []).append((name, f))
    return owners


def _method_flags(p: argparse.ArgumentParser) -> None:
    """One group of flags per method with settings (``--alpha-h`` is ThriftyConfig.alpha_h).
    A field several methods have (``--members``) is one flag, in the first one's group."""
    owners = _method_fields()
    for name in registry.names():
        cls = registry.entry(name).config_class()
        if cls is None:
            continue
        shared = [pairs[0][1].flag for pairs in owners.values() if name in dict(pairs[1:])]
        group = p.add_argument_group(
            f"--method {name}: {cls.__name__}",
            f"also {', '.join(shared)} (listed above)" if shared else None,
        )
        for pairs in owners.values():
            if pairs[0][0] != name:
                continue
            f = pairs[0][1]
            kwargs = flag_kwargs(f.type) or {}
            group.add_argument(
                f.flag, dest=_SETTING + f.name, default=None, help=_shared_help(pairs), **kwargs
            )


def _shared_help(pairs: list[tuple[str, FieldSpec]]) -> str:
    """The help of a method's flag; for a flag several methods share, whose it is."""
    helps = {m: f.help() for m, f in pairs}
    if len(pairs) == 1:
        return helps[pairs[0][0]]
    if len(set(helps.values())) == 1:
        return f"({' and '.join(helps)}) {helps[pairs[0][0]]}"
    return "; ".join(f"{m}: {h}" for m, h in helps.items())


@command("dagger", _dagger_flags)
def dagger(args: argparse.Namespace) -> None:
    """Train with the expert in the loop: DAgger, HG-DAgger, EnsembleDAgger, ThriftyDAgger, DART.

    Round 0 collects expert demonstrations; each later round lets the method's gate decide
    who acts and where the expert labels, appends every episode to the store as it ends
    (tagged with its round and who acted), retrains and evaluates on the same seeded episodes
    as the expert. Every round reports the expert labels used so far, the expert-driven
    steps, the interventions and, with a person, their seconds of attention. A run killed at
    any point continues with --resume to the same final numbers as an uninterrupted one.

    With --human (and --method hg-dagger) you are the supervisor: a window shows one episode
    at a time; round 0 you demonstrate, later rounds the learner drives and you hold SPACE to
    take over (T toggles, P pauses); the learner is retrained between rounds. ESC stops after
    saving the episode in progress; --resume continues. With --method fleet --people, K
    people supervise a fleet of robots, a window each (SPACE takes over the robot shown,
    ENTER hands back). With --method fleet --workers W, the fleet's robots (their envs and
    the simulated supervisors' expert) are stepped on W Ray workers, the learner, the
    allocation, the people's windows and the store staying here: the same numbers.

    Example: protege dagger --task lunarlander --method thrifty --rounds 6 --out runs/thrifty
    Example: protege dagger --method hg-dagger --human --task lunarlander --rounds 3 --out me
    Example: protege dagger --method fleet --people --supervisors 2 --task cartpole --out fl
    Example: protege dagger --method fleet --robots 8 --workers 2 --task cartpole --out fw
    """
    from protege import tasks
    from protege.algos.engine import policy_factory

    output.announce(args)
    if args.human:
        _check_human(args)
    task = tasks.make(args.task)  # also imports the plugins of installed packages
    method_config = None if args.human else _method_config(args)
    config = _dagger_config(args)
    overrides: dict[str, Any] = (
        {"hidden_sizes": tuple(args.hidden_sizes)} if args.hidden_sizes else {}
    )
    out = Path(args.out)
    common: dict[str, Any] = dict(
        make_policy=policy_factory(task, **overrides),
        resume=args.resume,
        run_dir=out,
        progress=args.progress,
        log=output.note,
    )
    if args.human:
        if args.workers is not None or args.ray_address is not None:
            raise ConfigError("--human: a person supervises in this process; drop --workers")
        from protege.algos.hg_dagger import run_human

        result = run_human(task, out / "store", config, fps=args.fps, **common)
    else:
        with open_workers(args) as workers:
            if workers is not None:
                common["workers"] = workers
            result = registry.run_method(
                args.method, task, out / "store", config, method_config, **common
            )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    (out / "result.md").write_text(result.to_markdown())
    _dagger_report(args, task, config, result, out)
    settings = {
        "task": task.name,
        "out": str(out),
        "method": args.method,
        "human": args.human,
        "resume": args.resume,
        **({"fps": args.fps} if args.human else {}),
        "policy": PolicyConfig.for_spaces(*task.spaces, **overrides).to_dict(),
        "config": config.to_dict(),
        "method_settings": asdict(method_config) if method_config is not None else None,
    }
    reached = result.labels_to_reach()
    results_json.write(args, settings, {**result.to_dict(), "labels_to_reach_target": reached})


def _dagger_config(args: argparse.Namespace) -> DAggerConfig:
    """The run's settings from the flags (BC's defaults are DAggerConfig's own)."""
    bc_defaults = DAggerConfig().bc
    bc_flags = config_values(BCConfig, args, skip=_BC_SKIP)
    bc = BCConfig(**{**vars(bc_defaults), **bc_flags})
    values = config_values(DAggerConfig, args, skip=_DAGGER_SKIP)
    if args.human:
        values["n_envs"] = 1
    return DAggerConfig(**values, seed=args.seed, bc=bc)


def _check_human(args: argparse.Namespace) -> None:
    """--human runs HG-DAgger with one env on screen and no simulated supervisor."""
    if args.method != "hg-dagger":
        raise ConfigError(f"--human needs --method hg-dagger, not --method {args.method}")
    if args.method_kwargs or _given_settings(args):
        given = [*_flags(_given_settings(args))] + (
            ["--method-kwargs"] if args.method_kwargs else []
        )
        raise ConfigError(f"{', '.join(given)} set the simulated supervisor; --human takes none")
    if args.n_envs not in (None, 1):
        raise ConfigError(
            f"--human: a person watches one env at a time, not --n-envs {args.n_envs}"
        )


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The methods' settings given as flags, by field name (lists as tuples)."""
    return {
        k.removeprefix(_SETTING): tuple(v) if isinstance(v, list) else v
        for k, v in vars(args).items()
        if k.startswith(_SETTING) and v is not None
    }


def _flags(names: dict[str, Any]) -> list[str]:
    return ["--" + n.replace("_", "-") for n in names]


def _method_config(args: argparse.Namespace) -> Any:
    """The method's own settings from its flags and --method-kwargs (None for plain DAgger);
    a flag of another method is an error naming it."""
    cls = registry.entry(args.method).config_class()  # an unknown name: a ConfigError
    given = _given_settings(args)
    mine = {f.name for f in fields(cls)} if cls is not None else set()
    for name in given:
        if name not in mine:
            names = [m for m, _ in _method_fields()[name]]
            owners = " and ".join([", ".join(names[:-1]), names[-1]] if names[:-1] else names)
            raise ConfigError(
                f"{_flags({name: 0})[0]} is a setting of --method {owners}, "
                f"not of --method {args.method}"
            )
    if cls is None:
        if args.method_kwargs:
            raise ConfigError(f"method {args.method!r} takes no --method-kwargs")
        return None
    try:
        return cls(**{**args.method_kwargs, **given})
    except TypeError as exc:
        raise ConfigError(f"--method-kwargs: {exc}") from None


def _dagger_report(
    args: argparse.Namespace, task: Task, config: DAggerConfig, result: DAggerResult, out: Path
) -> None:
    """The per-round table (labels, expert steps, interventions, attention) and the result."""
    rows = [
        [
            r.round,
            f"{r.labels:,}",
            f"{r.expert_steps:,}",
            r.interventions,
            f"{r.attention_seconds:.1f} s",
            f"{r.mean_return:.1f} ± {r.std_return:.1f}",
            f"{r.success_rate:.0%}",
            f"{r.wall_seconds:.0f} s",
        ]
        for r in result.rows
    ]
    who = f"{args.method}{' (you at the keyboard)' if args.human else ''}"
    output.print_table(
        f"{who} on {task.name}, seed {args.seed}: expert {result.expert_return:.1f}",
        _DAGGER_COLUMNS,
        rows,
    )
    reached = result.labels_to_reach()
    facts: dict[str, Any] = {
        f"labels to reach {config.target_fraction:.0%} of expert": (
            f"{reached:,}" if reached is not None else "not reached"
        ),
        "run folder": out,
    }
    if result.stopped:
        facts["stopped"] = "before the last round: add --resume to continue"
    facts.update(_fleet_facts(result))
    output.facts("Result", facts)


def _fleet_facts(result: DAggerResult) -> dict[str, Any]:
    """Fleet mode: what the supervisors' time bought over the interactive rounds."""
    rows = [r for r in result.rows if "fleet_visits" in r.extras]
    if not rows:
        return {}
    total = {k: sum(r.extras.get(k, 0.0) for r in rows) for k in rows[0].extras}
    seconds = rows[-1].attention_seconds
    idle = total["fleet_idle_steps"] / max(total["fleet_robot_steps"], 1.0)
    rohe = total["fleet_successes"] / (seconds / 60.0) if seconds else float("inf")
    return {
        "supervisor time": f"{seconds:.1f} s ({total['fleet_visits']:.0f} visits, "
        f"{total['resets']:.0f} resets)",
        "robot idle time": f"{idle:.1%} of the robots' time",
        "return on human effort": f"{rohe:.2f} successes per supervisor-minute",
    }


def _teleop_flags(p: argparse.ArgumentParser) -> None:
    task_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="store the labels are appended to")
    p.add_argument(
        "--policy", metavar="DIR", help="a learner to supervise (HG-DAgger); none: you drive"
    )
    p.add_argument("--episodes", type=episodes_int, default=5, help="episodes (default: 5)")
    p.add_argument(
        "--fps", type=finite_positive_float, default=20.0, help="control rate in Hz (default: 20)"
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the episodes (default: 0)")
    p.add_argument(
        "--round",
        type=nonneg_int,
        metavar="INT",
        help="round tag of the stored episodes (default: 0 when you demonstrate; with "
        "--policy one after the store's highest, so successive sessions are successive rounds)",
    )
    device_flag(p)
    json_flag(p)


@command(
    "teleop",
    _teleop_flags,
    interrupted="the store {out} keeps every episode that ended (ESC also saves the one in "
    "progress)",
)
def teleop(args: argparse.Namespace) -> None:
    """A person at the keyboard demonstrates, or takes over from a learner (HG-DAgger).

    Without --policy you drive every step and every step is a label. With --policy the
    learner drives; hold SPACE to take over and release to hand back (T toggles, P pauses,
    ESC quits): only the steps you drive are labelled. Each episode is appended to the store
    as it ends; quitting keeps the episode in progress. Each session with --policy is the
    next round of the store (see --round). For rounds with retraining in between, run
    `protege dagger --method hg-dagger --human`. Needs a display.

    Example: protege teleop --task lunarlander --policy runs/bc --out hg/lander --episodes 10
    """
    from protege.teleop.session import teleop as run_teleop

    output.announce(args)
    summary = run_teleop(
        args.task,
        args.out,
        episodes=args.episodes,
        policy=args.policy,
        seed=args.seed,
        fps=args.fps,
        round=args.round,
        log=output.note,
        device=args.device or "auto",
    )
    output.line(summary.to_text())
    settings = {
        "task": args.task,
        "out": args.out,
        "policy": args.policy,
        "episodes": args.episodes,
        "fps": args.fps,
        "round": summary.round,
    }
    results_json.write(args, settings, summary.to_dict())
