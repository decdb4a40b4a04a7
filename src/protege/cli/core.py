"""The command registry, shared flags, tables and ``main`` of the ``protege`` command.

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
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from protege import __version__
from protege.errors import ProtegeError

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


def config_values(cls: type, args: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (those left out keep their defaults)."""
    return {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if f.name not in skip and getattr(args, f.name, None) is not None
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
