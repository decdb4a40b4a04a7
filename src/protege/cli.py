"""The ``protege`` command: a thin layer that parses flags, calls the library and prints.

Every subcommand is one function decorated with :func:`command`, whose docstring is its
``--help`` text, plus one small function adding its flags. Flags that configure a dataclass
(``BCConfig``, ``PolicyConfig``) are derived from its fields, so ``--batch-size`` is
``BCConfig.batch_size`` and ``--hidden-sizes 256 256`` is ``PolicyConfig.hidden_sizes``: the
same names as in Python and in config.json. Nested commands (``demo lunarlander``,
``experiment horizon``) are paths with a space.

Adding a command::

    def _dagger_flags(p: argparse.ArgumentParser) -> None:
        _task_flag(p); _seed_flag(p); p.add_argument("--rounds", type=int, default=10)

    @command("dagger", _dagger_flags)
    def dagger(args: argparse.Namespace) -> None:
        \"\"\"Train with DAgger ...\"\"\"
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import sys
import textwrap
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from protege import __version__
from protege.errors import ConfigError, ProtegeError

console = Console(highlight=False)

Run = Callable[[argparse.Namespace], None]
Flags = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    run: Run
    flags: Flags

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.run.__doc__ or "")


COMMANDS: dict[tuple[str, ...], Command] = {}
"""Every subcommand, by its path (``("demo", "lunarlander")``), in registration order."""

GROUPS: dict[str, tuple[str, str | None]] = {
    "demo": ("Run an end-to-end demo that writes a report folder.", "lunarlander"),
    "experiment": ("Run one of protege's experiments.", None),
}
"""Help line and default subcommand (run when none is named) of each command group."""


def command(name: str, flags: Flags) -> Callable[[Run], Run]:
    """Register ``run`` as the subcommand ``name`` ("train"; "demo obstacle" for a nested one)."""

    def register(run: Run) -> Run:
        path = tuple(name.split())
        COMMANDS[path] = Command(path, run, flags)
        return run

    return register


# ========================================================================== common flags
def _seed_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of everything random (default: 0)")


def _run_flags(p: argparse.ArgumentParser) -> None:
    """Flags every run has: seed, torch threads, progress bars."""
    _seed_flag(p)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1, fastest for small MLPs on few cores)",
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )


def _bar(args: argparse.Namespace, label: str) -> str | bool:
    """The library's ``progress=`` argument: a labelled bar, or none with --no-progress."""
    return label if args.progress else False


def _task_flag(p: argparse.ArgumentParser, required: bool = True, extra: str = "") -> None:
    p.add_argument(
        "--task",
        required=required,
        metavar="NAME",
        help="a registered task: cartpole, lunarlander, lunarlander-continuous, pendulum, "
        "mountaincar-continuous, ... (`protege info --tasks` lists them)" + extra,
    )


def _rollout_flags(p: argparse.ArgumentParser, episodes: int) -> None:
    p.add_argument(
        "--episodes", type=int, default=episodes, help=f"episodes to run (default: {episodes})"
    )
    p.add_argument("--n-envs", type=int, default=8, help="sub-envs of the vector env (default: 8)")


# ============================================================ dataclass fields as flags
def add_config_flags(
    p: argparse.ArgumentParser,
    cls: type,
    skip: Sequence[str] = (),
    choices: dict[str, list[str]] | None = None,
    defaults: dict[str, str] | None = None,
) -> None:
    """One flag per field of the dataclass ``cls``: ``field_name`` becomes ``--field-name``.

    Flags default to None ("not given"), so the dataclass keeps its own defaults, which the
    help text shows together with the field's docstring (``defaults`` overrides what the
    help says the default is, for fields whose real default depends on the task).
    """
    group = p.add_argument_group(f"{cls.__name__} (same names in Python and config.json)")
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not MISSING else factory()
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        shown = (defaults or {}).get(f.name, shown)
        text = (docs.get(f.name, "") + f" (default: {shown})").strip().replace("%", "%%")
        kwargs = _flag_kwargs(hints[f.name])
        if choices and f.name in choices:
            kwargs["choices"] = choices[f.name]
            kwargs.pop("metavar", None)
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None, help=text, **kwargs
        )


def config_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (those left out keep their defaults)."""
    return {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if getattr(args, f.name, None) is not None
    }


def _flag_kwargs(tp: Any) -> dict[str, Any]:
    """argparse settings for a field type: int, float, str, bool, tuples/lists, dicts, X | None."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else str
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin in (tuple, list):
        item = typing.get_args(tp)[0]
        return {"nargs": "+", "type": item, "metavar": item.__name__.upper()}
    if origin is dict or tp is dict:
        return {"type": _json_object, "metavar": "JSON"}
    if tp in (int, float, str):
        return {"type": tp, "metavar": tp.__name__.upper()}
    return {"type": str}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"k\": 5}}', got {text}")
    return value


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under a field) of a dataclass, by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# ================================================================================ output
def _announce(args: argparse.Namespace) -> None:
    console.print(f"[bold]protege {args.command_name}[/]  seed={args.seed}")


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A results table; columns whose first cell is a number are right-aligned."""
    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )
    first = [str(c) for c in rows[0]] if rows else []
    for i, col in enumerate(columns):
        numeric = i < len(first) and (first[i][:1].isdigit() or first[i] == "–")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric or i == 0)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)


def _facts(title: str, facts: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False)
    table.add_column(style="dim")
    table.add_column()
    for key, value in facts.items():
        table.add_row(key, str(value))
    console.print(table)


def _evaluation_table(title: str, evals: dict[str, Any], labels: dict[str, int]) -> None:
    """Rows of :class:`protege.rollout.Evaluation`, with each learner as a % of the expert.

    ``labels`` (expert labels each method trained on), when given, takes the place of the
    wall-time column, so the table fits 80 columns.
    """
    expert = evals.get("expert")
    rows = []
    for name, ev in evals.items():
        pct = (
            f"{100 * ev.mean_return / expert.mean_return:.0f}%"
            if expert is not None and expert.mean_return
            else "–"
        )
        rows.append(
            [
                name,
                f"{ev.mean_return:.1f} ± {ev.std_return:.1f}",
                pct,
                f"{100 * ev.success_rate:.0f}%",
                f"{ev.mean_length:.0f}",
                "–" if name == "expert" else f"{ev.disagreement:.3f}",
                *([f"{labels[name]:,}" if labels.get(name) else "–"] if labels else []),
                *([f"{ev.wall_seconds:.1f} s"] if not labels else []),
            ]
        )
    columns = ["", "return", "% expert", "success", "length", "disagree"]
    _table(title, [*columns, "labels" if labels else "wall"], rows)


# ============================================================================== commands
def _collect_flags(p: argparse.ArgumentParser) -> None:
    _task_flag(p)
    p.add_argument("--out", required=True, metavar="DIR", help="store directory (appended to)")
    _rollout_flags(p, episodes=100)
    _run_flags(p)


@command("collect", _collect_flags)
def collect(args: argparse.Namespace) -> None:
    """Run a task's expert and append its episodes to a store.

    Each episode is written durably as it ends: an interrupted run keeps what it collected.

    Example: protege collect --task lunarlander --out demos/lunar --episodes 100 --seed 0
    """
    from protege import tasks
    from protege.data.store import Store
    from protege.report.page import mean_std
    from protege.rollout.collect import collect as collect_episodes

    _announce(args)
    task = tasks.make(args.task)
    t0 = time.perf_counter()
    res = collect_episodes(
        task,
        args.out,
        args.episodes,
        n_envs=args.n_envs,
        seed=args.seed,
        progress=_bar(args, "collect"),
    )
    store = Store.open(args.out)
    _facts(
        f"Collected {res.n_episodes} {task.name} episodes",
        {
            "return": mean_std(res.returns),
            "success": f"{100 * sum(res.successes) / max(1, res.n_episodes):.0f}%",
            "length": f"{sum(res.lengths) / max(1, res.n_episodes):.0f}",
            "labels": f"{res.labels:,}",
            "seed": args.seed,
            "wall time": f"{time.perf_counter() - t0:.1f} s",
            "store": f"{args.out}: {len(store)} episodes, {store.n_transitions:,} transitions",
        },
    )


def _train_flags(p: argparse.ArgumentParser) -> None:
    from protege.algos.bc import BCConfig
    from protege.policies import HEADS, PolicyConfig
    from protege.policies.encoders import ENCODERS

    p.add_argument("--data", required=True, metavar="DIR", help="a protege store")
    p.add_argument("--out", required=True, metavar="DIR", help="policy directory to write")
    _task_flag(
        p,
        required=False,
        extra="; checks the store's spaces against it (default: the task recorded in the store)",
    )
    _run_flags(p)
    add_config_flags(
        p,
        PolicyConfig,
        skip=("obs_shape", "act_dim", "discrete", "n_actions", "action_low", "action_high"),
        choices={"head": sorted(HEADS), "encoder": sorted(ENCODERS)},
        defaults={
            "head": "categorical for Discrete actions, mse for Box actions",
            "encoder": "mlp, cnn for image observations",
        },
    )
    add_config_flags(p, BCConfig, skip=("seed", "progress"))


@command("train", _train_flags)
def train(args: argparse.Namespace) -> None:
    """Train a policy by behavioral cloning on a store's labeled steps.

    Writes the policy (config.json + model.safetensors) and train.json (settings and losses)
    to --out. The head defaults to what the action space needs: categorical for discrete
    actions, mse for continuous ones.

    Example: protege train --data demos/lunar --out runs/bc --steps 4000 --hidden-sizes 256 256
    """
    from protege import tasks
    from protege.algos import bc
    from protege.data.store import Store
    from protege.demo import seeded_policy
    from protege.policies import PolicyConfig
    from protege.report.page import command_line

    _announce(args)
    store = Store.open(args.data)
    task_name = args.task or store.task
    if task_name is not None:
        store.check_spaces(*tasks.make(task_name).spaces)
    policy_config = PolicyConfig.for_spaces(
        store.observation_space, store.action_space, **config_values(PolicyConfig, args)
    )
    bc_config = bc.BCConfig(**{**config_values(bc.BCConfig, args), "progress": args.progress})
    policy = seeded_policy(policy_config, args.seed)
    result = bc.fit(policy, store, bc_config)
    out = policy.save(args.out, extra={"task": task_name, "data": str(args.data)})
    record = {
        "task": task_name,
        "data": str(args.data),
        "seed": args.seed,
        "bc": asdict(bc_config),
        "policy": policy_config.to_dict(),
        "result": result.to_dict(),
        "command": command_line(),
    }
    (out / "train.json").write_text(json.dumps(record, indent=2))
    last = result.history[-1] if result.history else {}
    _facts(
        f"BC on {len(store)} episodes ({store.n_labels:,} labels)",
        {
            "head": f"{policy_config.head}, MLP {' × '.join(map(str, policy_config.hidden_sizes))}",
            "steps": f"{result.steps}" + (" (stopped early)" if result.stopped_early else ""),
            "train loss (last)": f"{last.get('train_loss', float('nan')):.4g}",
            "val loss (best)": f"{result.best_val_loss:.4g} at step {result.best_step}"
            if result.n_val
            else "– (no validation episodes)",
            "weights kept": f"step {result.best_step} (lowest validation loss)"
            if result.n_val
            else f"step {result.steps} (the last)",
            "samples/s": f"{result.samples_per_s:,.0f}",
            "train time": f"{result.train_seconds:.1f} s",
            "seed": args.seed,
            "policy": f"{out} (+ train.json)",
        },
    )


def _eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", metavar="DIR", help="a policy directory written by `train`")
    _task_flag(p, required=False, extra=" (default: the task recorded with the policy)")
    p.add_argument(
        "--expert", action="store_true", help="also evaluate the task's expert (the reference)"
    )
    p.add_argument(
        "--sample", action="store_true", help="sample actions from the head instead of its mode"
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    _rollout_flags(p, episodes=50)
    _run_flags(p)


@command("eval", _eval_flags)
def eval_(args: argparse.Namespace) -> None:
    """Evaluate a policy (and/or the expert) on rollouts of a task.

    Reports return (mean ± std), success rate, episode length and the policy's disagreement
    with the expert along its own trajectories. With --expert, the expert runs on the same
    seeded episodes and the policy's return is also shown as a percentage of the expert's.

    Example: protege eval --policy runs/bc --task lunarlander --episodes 50 --expert
    """
    from protege import tasks
    from protege.policies import Policy
    from protege.rollout import evaluate, evaluate_expert

    if args.policy is None and not args.expert:
        raise ConfigError("nothing to evaluate: give --policy DIR, --expert, or both")
    _announce(args)
    policy = Policy.load(args.policy) if args.policy else None
    task_name = args.task or (_policy_meta(args.policy).get("task") if args.policy else None)
    if task_name is None:
        raise ConfigError(f"{args.policy}: the policy records no task; give --task")
    task = tasks.make(task_name)
    kw: dict[str, Any] = {"episodes": args.episodes, "n_envs": args.n_envs, "seed": args.seed}
    evals = {}
    if args.expert:
        evals["expert"] = evaluate_expert(task, progress=_bar(args, "eval expert"), **kw)
    if policy is not None:
        evals["policy"] = evaluate(
            policy,
            task,
            deterministic=not args.sample,
            progress=_bar(args, "eval policy"),
            **kw,
        )
    _evaluation_table(f"{task.name}: {args.episodes} episodes, seed {args.seed}", evals, {})
    if args.json:
        payload = {
            "policy": args.policy,
            "task": task.name,
            "seed": args.seed,
            "results": {
                k: {**ev.summary(), "returns": ev.returns.tolist(), "lengths": ev.lengths.tolist()}
                for k, ev in evals.items()
            },
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        console.print(f"results: {args.json}", soft_wrap=True)


def _info_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", metavar="PATH", help="a store or a policy directory")
    p.add_argument("--tasks", action="store_true", help="list the registered tasks and heads")


@command("info", _info_flags)
def info(args: argparse.Namespace) -> None:
    """Describe a store (episodes, transitions, labels, rounds, returns) or a policy directory.

    Example: protege info demos/lunar        protege info runs/bc        protege info --tasks
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
        rows.append([name, task.horizon, task.description.split(":")[0]])
    _table("Registered tasks", ["task", "horizon", "description"], rows)
    console.print("heads: " + ", ".join(sorted(HEADS)))


def _info_store(path: Path) -> None:
    from collections import Counter

    from protege.data.store import Store
    from protege.report.page import mean_std

    store = Store.open(path)
    index = store.index
    returns = [e["return"] for e in index]
    rounds = Counter(e["round"] for e in index)
    _facts(
        f"Store {path}",
        {
            "task": store.task,
            "episodes": len(store),
            "transitions": f"{store.n_transitions:,}",
            "labels": f"{store.n_labels:,}",
            "learner steps": f"{sum(e.get('learner_steps', 0) for e in index):,}",
            "rounds": ", ".join(f"{r}: {n} ep" for r, n in sorted(rounds.items())) or "–",
            "return": mean_std(returns)
            + (f"  [min {min(returns):.1f}, max {max(returns):.1f}]" if returns else ""),
            "terminated / truncated": f"{sum(e['terminated'] for e in index)} / "
            f"{sum(e['truncated'] for e in index)}",
            "observation space": _space(store.observation_space),
            "action space": _space(store.action_space),
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
    _facts(f"Policy {path}", facts)


def _policy_meta(path: str | Path) -> dict[str, Any]:
    """The extra fields (task, data) that `train` saved in a policy's config.json."""
    from protege.policies.policy import CONFIG_FILE

    try:
        meta = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _demo_lunarlander_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task",
        default="lunarlander",
        metavar="NAME",
        help="run the same pipeline on another task (default: lunarlander)",
    )
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports/demo-TASK)")
    p.add_argument("--episodes", type=int, default=100, help="expert demonstrations (default: 100)")
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=50,
        help="evaluation episodes, the same seeded ones for every method (default: 50)",
    )
    p.add_argument("--n-envs", type=int, default=8, help="sub-envs (default: 8)")
    p.add_argument("--steps", type=int, default=4000, help="BC gradient steps (default: 4000)")
    p.add_argument("--batch-size", type=int, default=256, help="BC batch size (default: 256)")
    p.add_argument(
        "--hidden-sizes",
        type=int,
        nargs="+",
        default=[256, 256],
        metavar="INT",
        help="MLP widths (default: 256 256)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="episodes held out for a validation curve; BC then keeps the weights "
        "of the best validation loss (default: 0, see protege.demo.run_demo)",
    )
    p.add_argument("--no-gif", dest="gif", action="store_false", help="skip the rollout GIF")
    _run_flags(p)


@command("demo lunarlander", _demo_lunarlander_flags)
def demo_lunarlander(args: argparse.Namespace) -> None:
    """Expert demonstrations → behavioral cloning → rollouts → a report folder.

    Collects expert episodes, trains BC (a 2×256 MLP), evaluates the expert and BC on the
    same seeded episodes, and writes index.html and report.md with loss curves, return
    distributions, disagreement with the expert against time step and a GIF of BC driving.
    About 1–3 minutes on 2 CPU cores.

    Example: protege demo        protege demo lunarlander --seed 1 --out reports/seed1
    """
    from protege.demo import run_demo

    _announce(args)
    run = run_demo(
        task=args.task,
        out=args.out or f"reports/demo-{args.task}",
        seed=args.seed,
        episodes=args.episodes,
        n_envs=args.n_envs,
        steps=args.steps,
        batch_size=args.batch_size,
        hidden_sizes=tuple(args.hidden_sizes),
        eval_episodes=args.eval_episodes,
        val_fraction=args.val_fraction,
        gif=args.gif,
        progress=args.progress,
    )
    _evaluation_table(
        f"{run.task.name}: {args.eval_episodes} evaluation episodes, seed {run.eval_seed}",
        {k: m.evaluation for k, m in run.methods.items()},
        {k: m.labels for k, m in run.methods.items()},
    )
    _facts(
        "Wall time",
        {**{k: f"{v:.1f} s" for k, v in run.timings.items()}, "total": f"{run.wall_seconds:.1f} s"},
    )
    if "BC" in run.methods:
        console.print(f"[bold]{run.headline('BC')}[/]")
    assert run.page_paths is not None
    console.print(
        f"report: {run.page_paths[1]}  (and {run.page_paths[0].name}), seed={args.seed}",
        soft_wrap=True,  # a path to copy, not to break
    )


# ================================================================================== main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="protege",
        description="Imitation learning you can run: collect expert demonstrations, train a "
        "policy, evaluate it on rollouts. `protege COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"protege {__version__}")
    subparsers: dict[tuple[str, ...], Any] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    }
    for path, cmd in COMMANDS.items():
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in subparsers:
                help_line, default = GROUPS.get(prefix[-1], ("", None))
                group = subparsers[prefix[:-1]].add_parser(
                    prefix[-1],
                    help=help_line,
                    description=help_line
                    + (f" Without a NAME, runs `{default}`." if default else ""),
                )
                subparsers[prefix] = group.add_subparsers(
                    dest="subcommand", metavar="NAME", title="commands", required=True
                )
        sub = subparsers[path[:-1]].add_parser(
            path[-1],
            help=cmd.doc.split("\n")[0],
            description=cmd.doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.flags(sub)
        sub.set_defaults(run=cmd.run, command_name=" ".join(path))
    return parser


def _with_default_subcommand(argv: list[str]) -> list[str]:
    """``protege demo --seed 1`` means ``protege demo lunarlander --seed 1``."""
    if argv and argv[0] in GROUPS:
        default = GROUPS[argv[0]][1]
        rest = argv[1:]
        if default and (not rest or (rest[0].startswith("-") and rest[0] not in ("-h", "--help"))):
            return [argv[0], default, *rest]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``protege`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Bad input (a missing store, a corrupt checkpoint, an unknown task...) prints one line
    ``protege COMMAND: error: ...`` and returns 1; flag errors return argparse's 2.
    """
    parser = build_parser()
    argv = _with_default_subcommand(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and flag errors
        return exc.code if isinstance(exc.code, int) else 1
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        if hasattr(args, "threads"):
            import torch

            torch.set_num_threads(max(1, args.threads))
        args.run(args)
    except (ProtegeError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, even if a numpy repr spans several
        print(f"protege {args.command_name}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"protege {args.command_name}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
