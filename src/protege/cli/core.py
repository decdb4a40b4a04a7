"""The command registry, shared flags, tables and ``main`` of the ``protege`` command.

Every subcommand is one function decorated with :func:`command`, whose docstring is its
``--help`` text, plus one small function adding its flags. Flags that configure a dataclass
(``BCConfig``, ``PolicyConfig``) are derived from its fields, so ``--batch-size`` is
``BCConfig.batch_size`` and ``--hidden-sizes 256 256`` is ``PolicyConfig.hidden_sizes``: the
same names as in Python and in config.json. Nested commands (``demo lunarlander``,
``experiment horizon``) are paths with a space.

Adding a command::

    def _dagger_flags(p: argparse.ArgumentParser) -> None:
        _task_flag(p); _seed_flag(p)
        add_config_flags(p, "protege.algos.dagger:DAggerConfig", skip=("seed", "bc"))

    @command("dagger", _dagger_flags)
    def dagger(args: argparse.Namespace) -> None:
        \"\"\"Train with DAgger ...\"\"\"
        from protege.algos.dagger import DAggerConfig  # the library: only when it runs

Speed: ``protege --help``, ``protege COMMAND --help`` and flag errors must not import torch,
gymnasium or matplotlib (they took 3 s). So a command module imports only this module at
the top and the library inside its run function; ``main`` adds flags only to the command
being run; and a flag function names a dataclass as ``"module:Class"``, which
:func:`config_fields` reads from the module's *source* without importing it (a test checks
that what it reads equals the imported class). Plugins (``--plugin``, ``PROTEGE_PLUGINS``)
are imported after parsing, just before the command runs.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import itertools
import json
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
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
        "--torch-threads",
        dest="threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1, fastest for small MLPs on few cores)",
    )
    _progress_flag(p)


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars (default: yes; --no-progress hides them)",
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
        "mountaincar-continuous, ... (`protege info --tasks` lists them; --plugin adds your "
        "own)" + extra,
    )


def _rollout_flags(p: argparse.ArgumentParser, episodes: int) -> None:
    p.add_argument(
        "--episodes", type=int, default=episodes, help=f"episodes to run (default: {episodes})"
    )
    p.add_argument("--n-envs", type=int, default=8, help="sub-envs of the vector env (default: 8)")


# ============================================================ dataclass fields as flags
ConfigClass = type | str
"""A dataclass, or a reference ``"protege.algos.bc:BCConfig"`` to one that is read from its
module's source instead of imported (see :func:`config_fields`)."""


@dataclass(frozen=True)
class FieldSpec:
    """What a flag needs of one dataclass field."""

    name: str
    type: Any
    default: Any
    """The field's default (``default_factory()`` for a factory), or ``MISSING``."""
    doc: str
    """The attribute docstring under the field, on one line."""


def add_config_flags(
    p: argparse.ArgumentParser,
    cls: ConfigClass,
    skip: Sequence[str] = (),
    choices: dict[str, list[str]] | None = None,
    defaults: dict[str, str] | None = None,
) -> None:
    """One flag per field of the dataclass ``cls``: ``field_name`` becomes ``--field-name``.

    Flags default to None ("not given"), so the dataclass keeps its own defaults, which the
    help text shows together with the field's docstring (``defaults`` overrides what the
    help says the default is, for fields whose real default depends on the task). Name the
    class as ``"module:Class"`` to keep ``--help`` from importing its module.
    """
    title = cls.rpartition(":")[2] if isinstance(cls, str) else cls.__name__
    group = p.add_argument_group(f"{title} (same names in Python and config.json)")
    for f in config_fields(cls, skip):
        shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        shown = (defaults or {}).get(f.name, shown)
        text = (f.doc + f" (default: {shown})").strip().replace("%", "%%")
        kwargs = _flag_kwargs(f.type)
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


def config_fields(cls: ConfigClass, skip: Sequence[str] = ()) -> list[FieldSpec]:
    """The fields of a dataclass, or of a ``"module:Class"`` reference read from source.

    Reading the source keeps ``--help`` from importing torch. It handles what config
    dataclasses hold (literal defaults, module constants, ``field(default_factory=...)`` of
    a builtin, annotations of builtins and ``Any``); anything else falls back to importing
    the class. Skipped fields are not read, so they may be anything.
    """
    if not isinstance(cls, str):
        return _runtime_fields(cls, skip)
    STATIC_REFS.add((cls, tuple(skip)))
    try:
        return _static_fields(cls, skip)
    except _NotStatic:
        return _runtime_fields(_import_ref(cls), skip)


def static_constant(ref: str) -> Any:
    """The literal value of a module-level constant ``"module:NAME"``, read from source."""
    STATIC_REFS.add((ref, None))
    module, _, name = ref.partition(":")
    try:
        return _module_constant(module, name)
    except _NotStatic:
        return _import_ref(ref)


STATIC_REFS: set[tuple[str, tuple[str, ...] | None]] = set()
"""Every reference read from source so far, with the fields skipped (None: a constant); the
tests compare each with what importing it gives."""


class _NotStatic(Exception):
    """The source holds something the static reader does not evaluate."""


def _runtime_fields(cls: type, skip: Sequence[str] = ()) -> list[FieldSpec]:
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    specs = []
    for f in fields(cls):
        if f.name in skip:
            continue
        factory: Any = f.default_factory
        default = f.default if factory is MISSING else factory()
        specs.append(FieldSpec(f.name, hints[f.name], default, docs.get(f.name, "")))
    return specs


def _static_fields(ref: str, skip: Sequence[str]) -> list[FieldSpec]:
    module, _, name = ref.partition(":")
    node = _dataclass_node(module, name)
    docs = _class_field_docs(node)
    specs = []
    for stmt in node.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        if ast.unparse(stmt.annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        field_name = stmt.target.id
        if field_name in skip:
            continue
        tp = _static_type(stmt.annotation)
        default = MISSING if stmt.value is None else _static_default(module, stmt.value)
        specs.append(FieldSpec(field_name, tp, default, docs.get(field_name, "")))
    return specs


def _dataclass_node(module: str, name: str) -> ast.ClassDef:
    """The ``@dataclass class name`` statement of ``module``; no base classes (their fields
    would be elsewhere)."""
    for node in _module_ast(module).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            if node.bases or not any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                break
            return node
    raise _NotStatic(f"{module}:{name}")


_TYPE_NAMES: dict[str, Any] = {
    t.__name__: t for t in (int, float, str, bool, tuple, list, dict, set, frozenset)
} | {"Any": Any}


def _static_type(node: ast.expr) -> Any:
    """An annotation built of builtins, ``Any``, ``X | Y``, ``X[...]``, None and ``...``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _static_type(ast.parse(node.value, mode="eval").body)  # a quoted annotation
    if isinstance(node, ast.Constant) and (node.value is None or node.value is Ellipsis):
        return node.value
    if isinstance(node, ast.Name) and node.id in _TYPE_NAMES:
        return _TYPE_NAMES[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _static_type(node.left) | _static_type(node.right)
    if isinstance(node, ast.Subscript):
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        args = tuple(_static_type(e) for e in inner)
        return _static_type(node.value)[args if len(args) > 1 else args[0]]
    raise _NotStatic(ast.unparse(node))


def _static_default(module: str, node: ast.expr) -> Any:
    """A field's default: a literal, a module constant, or ``field(default[_factory]=...)``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("field", "dataclasses.field"):
        kw = {k.arg: k.value for k in node.keywords}
        if "default" in kw:
            return _static_default(module, kw["default"])
        factory = kw.get("default_factory")
        if isinstance(factory, ast.Name) and factory.id in _TYPE_NAMES:
            return _TYPE_NAMES[factory.id]()
        if isinstance(factory, ast.Lambda):
            return _static_default(module, factory.body)
        raise _NotStatic(ast.unparse(node))
    if isinstance(node, ast.Name):
        return _module_constant(module, node.id)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotStatic(ast.unparse(node)) from None


def _module_constant(module: str, name: str) -> Any:
    """A module-level ``NAME = <literal>``, following ``from X import NAME``."""
    for stmt in _module_ast(module).body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return _static_default(module, stmt.value)
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return _module_constant(stmt.module, alias.name)
    raise _NotStatic(f"{module}:{name}")


@functools.cache
def _module_ast(module: str) -> ast.Module:
    """The parsed source of ``module``, found without importing it (or its package)."""
    parts = module.split(".")
    if parts[0] == "protege":
        base = Path(__file__).resolve().parents[1].joinpath(*parts[1:])
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    else:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise _NotStatic(module)
        path = Path(spec.origin)
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        raise _NotStatic(module) from None


def _import_ref(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


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
    node = tree.body[0] if tree.body else None
    return _class_field_docs(node) if isinstance(node, ast.ClassDef) else {}


def _class_field_docs(node: ast.ClassDef) -> dict[str, str]:
    docs = {}
    for stmt, nxt in itertools.pairwise(node.body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
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
_PLUGINS_ENV = "PROTEGE_PLUGINS"
"""= ``protege.tasks.PLUGINS_ENV`` (not imported from there: that would import torch)."""

_PLUGIN_HELP = (
    "import PLUGIN before the command runs: a module name or the path of a .py file that "
    "registers tasks, teleop controls or heads (repeatable; also read from "
    f"${_PLUGINS_ENV}, {os.pathsep!r}-separated, and the 'protege.plugins' entry points of "
    "installed packages)"
)


def build_parser(only: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered command.

    With ``only``, just that command gets its flags and the others only their help line:
    what ``main`` needs, and it keeps ``--help`` from importing what other commands' flags
    describe.
    """
    parser = argparse.ArgumentParser(
        prog="protege",
        description="Imitation learning you can run: collect expert demonstrations, train a "
        "policy, evaluate it on rollouts. `protege COMMAND --help` explains each command.",
        allow_abbrev=False,  # main finds the global options in argv by their full names
    )
    parser.add_argument("--version", action="version", version=f"protege {__version__}")
    _plugin_flag(parser, "plugins")
    subparsers: dict[tuple[str, ...], Any] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    }
    for path, cmd in COMMANDS.items():
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in subparsers:
                subparsers[prefix] = _group_parser(subparsers[prefix[:-1]], prefix[-1])
        sub = subparsers[path[:-1]].add_parser(
            path[-1],
            help=cmd.doc.split("\n")[0],
            description=cmd.doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if only is None or only == path:
            cmd.flags(sub)
            _plugin_flag(sub, "command_plugins")
        sub.set_defaults(run=cmd.run, command_name=" ".join(path))
    return parser


def _group_parser(subparsers: Any, name: str) -> Any:
    """The subparsers of a command group (``demo``, ``experiment``)."""
    help_line, default = GROUPS.get(name, ("", None))
    group = subparsers.add_parser(
        name,
        help=help_line,
        description=help_line + (f" Without a NAME, runs `{default}`." if default else ""),
    )
    return group.add_subparsers(dest="subcommand", metavar="NAME", title="commands", required=True)


def _plugin_flag(p: argparse.ArgumentParser, dest: str) -> None:
    """``--plugin``, before the command (``protege --plugin x.py train``) or after it."""
    p.add_argument(
        "--plugin", dest=dest, action="append", default=[], metavar="PLUGIN", help=_PLUGIN_HELP
    )


def _split_global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the options before the command, the command and its arguments)."""
    i = 0
    while i < len(argv):
        if argv[i] == "--plugin":
            i += 2
        elif argv[i].startswith("--plugin=") or argv[i] in ("-h", "--help", "--version"):
            i += 1
        else:
            break
    return argv[:i], argv[i:]


def _command_path(argv: Sequence[str]) -> tuple[str, ...]:
    """The registered command ``argv`` starts with (``("demo", "obstacle")``), or ()."""
    words = list(itertools.takewhile(lambda a: not a.startswith("-"), argv))[:2]
    return next((tuple(words[:n]) for n in (2, 1) if tuple(words[:n]) in COMMANDS), ())


def _with_default_subcommand(argv: list[str]) -> list[str]:
    """``protege demo --seed 1`` means ``protege demo lunarlander --seed 1``."""
    if argv and argv[0] in GROUPS:
        default = GROUPS[argv[0]][1]
        rest = argv[1:]
        if default and (not rest or (rest[0].startswith("-") and rest[0] not in ("-h", "--help"))):
            return [argv[0], default, *rest]
    return argv


def load_plugins(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` and ``$PROTEGE_PLUGINS`` plugins (entry points are imported by
    the task registry itself). ``protege.tasks`` is imported only if there is one."""
    specs = [*getattr(args, "plugins", []), *getattr(args, "command_plugins", [])]
    if specs or os.environ.get(_PLUGINS_ENV, "").strip(os.pathsep + " "):
        from protege import tasks

        tasks.load_plugins(specs, env=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``protege`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Bad input (a missing store, a corrupt checkpoint, an unknown task...) prints one line
    ``protege COMMAND: error: ...`` and returns 1; flag errors return argparse's 2.
    """
    options, rest = _split_global_options(list(sys.argv[1:] if argv is None else argv))
    rest = _with_default_subcommand(rest)
    parser = build_parser(only=_command_path(rest))
    try:
        args = parser.parse_args([*options, *rest])
    except SystemExit as exc:  # --help, --version and flag errors
        return exc.code if isinstance(exc.code, int) else 1
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        load_plugins(args)
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
