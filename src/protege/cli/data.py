"""protege collect | info | repair: demonstrations in, stores described and repaired."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from protege.cli import output, results_json
from protege.cli.flags import (
    bar,
    json_flag,
    open_workers,
    rollout_flags,
    run_flags,
    task_flag,
    workers_flags,
)
from protege.cli.registry import command
from protege.errors import ConfigError, DataError, ProtegeError


def _collect_flags(p: argparse.ArgumentParser) -> None:
    task_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="store directory (appended to)")
    p.add_argument(
        "--mix",
        metavar="SPEC",
        help="data of known, mixed quality instead of the expert's: sources and their "
        "fractions of --episodes, e.g. expert:0.1,eps0.3:0.3,random:0.6 (epsX: the expert "
        "taking a uniformly random action with probability X; each episode records its "
        "source's ε as the extra 'epsilon')",
    )
    rollout_flags(p, episodes=100)
    workers_flags(p)
    run_flags(p)
    json_flag(p)


@command(
    "collect",
    _collect_flags,
    interrupted="the store {out} keeps every episode that ended (each is saved as it ends); "
    "collect appends, so a run with another --seed adds more",
)
def collect(args: argparse.Namespace) -> None:
    """Run a task's expert and append its episodes to a store.

    Each episode is written durably as it ends: an interrupted run keeps what it collected.

    Example: protege collect --task lunarlander --out demos/lunar --episodes 100 --seed 0
    """
    import numpy as np

    from protege import tasks
    from protege.data.store import Store
    from protege.report.page import mean_std
    from protege.rollout.collect import collect as collect_episodes

    output.announce(args)
    task = tasks.make(args.task)
    t0 = time.perf_counter()
    if args.mix is not None:
        if args.workers is not None or args.ray_address is not None:
            raise ConfigError(
                "--mix runs in one process (its sources' random draws are shared by the "
                "sub-envs); drop --workers/--ray-address"
            )
        return _collect_mix(args, task, t0)
    with open_workers(args) as workers:
        res = collect_episodes(
            task,
            args.out,
            args.episodes,
            n_envs=args.n_envs,
            seed=args.seed,
            progress=bar(args, "collect"),
            workers=workers,
        )
    wall = time.perf_counter() - t0
    store = Store.open(args.out)
    n = max(1, res.n_episodes)
    output.facts(
        f"Collected {res.n_episodes} {task.name} episodes",
        {
            "return": mean_std(res.returns),
            "success": f"{100 * sum(res.successes) / n:.0f}%",
            "length": f"{sum(res.lengths) / n:.0f}",
            "labels": f"{res.labels:,}",
            "seed": args.seed,
            "wall time": f"{wall:.1f} s",
            "store": f"{args.out}: {len(store)} episodes, {store.n_transitions:,} transitions",
        },
    )
    settings = {"task": task.name, "out": args.out, "episodes": args.episodes}
    results_json.write(
        args,
        {**settings, "n_envs": args.n_envs},
        {
            "episodes": res.n_episodes,
            "returns": res.returns,
            "lengths": res.lengths,
            "successes": res.successes,
            "mean_return": float(np.mean(res.returns)) if res.returns else None,
            "std_return": float(np.std(res.returns)) if res.returns else None,
            "success_rate": sum(res.successes) / n,
            "labels": res.labels,
            "wall_seconds": wall,
            "store": {
                "path": args.out,
                "episodes": len(store),
                "transitions": store.n_transitions,
                "labels": store.n_labels,
            },
        },
    )


def _collect_mix(args: argparse.Namespace, task: Any, t0: float) -> None:
    """``collect --mix``: each source's episodes, then a row per source."""
    from protege.configs.offline import parse_mix
    from protege.data.store import Store
    from protege.report.page import mean_std
    from protege.rollout.collect import collect_mix

    sources = parse_mix(args.mix)
    runs = collect_mix(
        task,
        args.out,
        sources,
        args.episodes,
        n_envs=args.n_envs,
        seed=args.seed,
        progress=bar(args, "collect"),
    )
    rows = [
        [s.name, f"{s.epsilon:g}", r.n_episodes, mean_std(r.returns), f"{sum(r.lengths):,}"]
        for s, r in runs
    ]
    output.print_table(
        f"Collected {sum(r.n_episodes for _, r in runs)} {task.name} episodes of mixed quality",
        ["source", "ε", "episodes", "return", "steps"],
        rows,
    )
    store = Store.open(args.out)
    output.facts(
        "",
        {
            "seed": args.seed,
            "wall time": f"{time.perf_counter() - t0:.1f} s",
            "store": f"{args.out}: {len(store)} episodes, {store.n_transitions:,} transitions",
        },
    )
    results_json.write(
        args,
        {"task": task.name, "out": args.out, "episodes": args.episodes, "mix": args.mix},
        {
            "sources": [
                {
                    "name": s.name,
                    "epsilon": s.epsilon,
                    "episodes": r.n_episodes,
                    "returns": r.returns,
                    "lengths": r.lengths,
                }
                for s, r in runs
            ],
            "store": {"path": args.out, "episodes": len(store), "transitions": store.n_transitions},
        },
    )


def _info_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", metavar="PATH", help="a store or a policy directory")
    p.add_argument("--tasks", action="store_true", help="list the registered tasks and heads")
    p.add_argument(
        "--check",
        action="store_true",
        help="read and verify every episode of the store, reporting each one that fails",
    )


@command("info", _info_flags)
def info(args: argparse.Namespace) -> None:
    """Describe a store (episodes, transitions, labels, rounds, returns) or a policy directory.

    Opening a store checks meta.json and every index line (their checksums, every field's
    type and range); --check also reads every episode and verifies its data (CRC32 of every
    field, frames, finite values, action ranges, counts), reporting each one that fails.

    Example: protege info demos/lunar        protege info --check demos/lunar
    """
    if args.tasks:
        _info_tasks()
    if args.path is None:
        if not args.tasks:
            raise ConfigError("give a PATH (a store or a policy directory) or --tasks")
        return
    path = Path(args.path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory")
    if (path / "config.json").exists() and not (path / "meta.json").exists():
        _info_policy(path)
    elif args.check:
        _check_store(path)
    elif (path / "meta.json").exists():
        _info_store(path)
    else:
        raise ConfigError(
            f"{path}: neither a protege store (no meta.json) nor a policy directory "
            "(no config.json)"
        )


def _info_tasks() -> None:
    from protege import tasks
    from protege.policies import HEADS

    rows = []
    for name in tasks.names():
        task = tasks.make(name)
        # the description's first clause: a table is printed whole, so keep it a summary
        summary = re.split(r":|;|\. ", task.description, maxsplit=1)[0]
        rows.append([name, task.horizon, summary])
    output.print_table("Registered tasks", ["task", "horizon", "description"], rows)
    output.line("heads: " + ", ".join(sorted(HEADS)))


def _info_store(path: Path) -> None:
    from collections import Counter

    from protege.data.store import Store
    from protege.report.page import mean_std

    try:
        store = Store.open(path)
    except ProtegeError as exc:
        raise DataError(f"{exc} (`protege info --check {path}` reports every episode)") from None
    index = store.index
    returns = [e.episode_return for e in index]
    rounds = Counter(e.round for e in index)
    output.facts(
        f"Store {path}",
        {
            "task": store.task,
            "episodes": len(store),
            "transitions": f"{store.n_transitions:,}",
            "labels": f"{store.n_labels:,}",
            "learner steps": f"{sum(e.learner_steps for e in index):,}",
            "rounds": ", ".join(f"{r}: {n} ep" for r, n in sorted(rounds.items())) or "–",
            "return": mean_std(returns)
            + (f"  [min {min(returns):.1f}, max {max(returns):.1f}]" if returns else ""),
            "terminated / truncated": f"{sum(e.terminated for e in index)} / "
            f"{sum(e.truncated for e in index)}",
            "observation space": _space(store.observation_space),
            "action space": _space(store.action_space),
            "checked": (
                "meta.json and every index line (checksums, fields); "
                if store.meta.checksummed
                else f"format version {store.meta.version}: no checksums on meta.json and the "
                "index lines (fields validated); "
            )
            + "episode data not read (--check verifies it)",
        },
    )


def _check_store(path: Path) -> None:
    from protege.data.repair import check_store

    report = check_store(path)
    bad = [e for e in report.episodes if e.problem is not None]
    rows = [[e.line, e.record.number if e.record else "?", e.problem] for e in bad[:20]]
    if rows:
        output.print_table(f"Episodes that fail ({len(bad)})", ["line", "episode", "problem"], rows)
    facts: dict[str, Any] = {
        "episodes verified": f"{len(report.intact)} of {len(report.episodes)}",
        "checked": "meta.json; per episode: index line, CRC32 of every field"
        + (", frame offsets, frames decompress" if report.meta and report.meta.obs_codec else "")
        + ", finite values, action range, label and learner-step counts, return",
    }
    for i, note in enumerate(report.notes):
        facts[f"note {i + 1}"] = note
    for i, problem in enumerate(report.problems):
        facts[f"problem {i + 1}"] = problem
    output.facts(f"Check of {path}", facts)
    if not report.ok:
        raise DataError(
            f"{path}: {len(bad)} of {len(report.episodes)} episodes fail"
            + (f" and {len(report.problems)} store problems" if report.problems else "")
            + f"; `protege repair {path} --out NEWDIR` copies the {len(report.intact)} intact "
            "episodes into a new store"
        )


def _repair_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="a damaged protege store (only read)")
    p.add_argument("--out", required=True, metavar="DIR", help="the new store (must not exist)")


@command(
    "repair",
    _repair_flags,
    interrupted="the new store {out} is incomplete (the original is untouched); delete it and "
    "run the command again",
)
def repair(args: argparse.Namespace) -> None:
    """Copy every episode of a store that verifies into a new store; the original is only read.

    Use it when a store is refused as corrupt: `protege info --check STORE` says which episodes
    fail and why. Episodes are copied in order with their round, seed and extras.

    Example: protege repair demos/lunar --out demos/lunar-repaired
    """
    from protege.data.repair import repair as repair_store

    report = repair_store(args.store, args.out)
    lost = [e for e in report.episodes if e.problem is not None]
    output.facts(
        "Repaired",
        {
            "from": args.store,
            "to": args.out,
            "episodes copied": f"{len(report.intact)} of {len(report.episodes)}",
            "episodes left out": len(lost),
            **{f"line {e.line}": e.problem for e in lost[:10]},
        },
    )


def _space(space: Any) -> str:
    shape = getattr(space, "shape", None)
    if type(space).__name__ == "Box" and shape is not None:
        return f"Box, shape {tuple(shape)}, {space.dtype}"
    return str(space)


def _info_policy(path: Path) -> None:
    from protege.policies import Policy

    policy = Policy.load(path)  # validates config and weights
    meta = _policy_meta(path)
    facts: dict[str, Any] = {"task": meta.get("task"), "data": meta.get("data")}
    facts.update(policy.config.to_dict())
    facts["parameters"] = f"{sum(p.numel() for p in policy.parameters()):,}"
    train_file = path / "train.json"
    if train_file.exists():
        try:
            result = json.loads(train_file.read_text())["result"]
            facts["trained"] = f"{result['steps']} steps, seed {result['seed']}" + (
                f", best val loss {result['best_val_loss']:.4g} at step {result['best_step']}"
                if result["n_val"]
                else ""
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            facts["trained"] = f"{train_file}: unreadable"
    output.facts(f"Policy {path}", facts)


def _policy_meta(path: str | Path) -> dict[str, Any]:
    """The extra fields (task, data) that `train` saved in a policy's config.json."""
    from protege.policies.policy import CONFIG_FILE

    try:
        meta = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}
