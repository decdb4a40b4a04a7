"""Flags: the ones many commands share, and flags derived from config dataclasses.

Flags that configure a dataclass (``BCConfig``, ``PolicyConfig``, a method's settings) are
derived from its fields, so ``--batch-size`` is ``BCConfig.batch_size`` and
``--hidden-sizes 256 256`` is ``PolicyConfig.hidden_sizes``: the same names as in Python and
in config.json, with the field's docstring as the help text. The dataclasses come from
:mod:`protege.configs`, which imports only the standard library, so building the flags (and
``--help``) imports no torch.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import math
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any


# ============================================================== numbers, range-checked
def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[lo, hi]``, else argparse's one-line error
    ``argument --x: must be an integer in [lo, hi], got '...'`` (exit code 2)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {text!r}")
        return value

    convert.__name__ = f"int in [{lo}, {hi}]"
    return convert


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite number (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def finite_positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


MAX_SEED = 2**63 - 1
"""= :data:`protege.configs.checks.MAX_SEED`."""
nonneg_int = int_in(0, MAX_SEED)
"""A seed, a round: an integer ≥ 0."""
episodes_int = int_in(1, 10**7)
"""A number of episodes."""
size_int = int_in(1, 2**16)
"""A layer width, a number of sub-envs or threads."""


# ========================================================================== common flags
def seed_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed", type=nonneg_int, default=0, help="seed of everything random (default: 0)"
    )


def run_flags(p: argparse.ArgumentParser) -> None:
    """Flags every run has: seed, torch threads, progress bars."""
    seed_flag(p)
    p.add_argument(
        "--threads",
        "--torch-threads",
        dest="threads",
        type=int_in(1, 1024),
        default=1,
        help="torch CPU threads (default: 1, fastest for small MLPs on few cores; with 1, "
        "stacked ensembles and critics train their members in parallel threads on the "
        "free CPUs, same numbers)",
    )
    progress_flag(p)


def device_flag(p: argparse.ArgumentParser) -> None:
    """``--device``, on every command that trains or acts: :attr:`BCConfig.device`'s flag
    (its docstring is the help). The spelling is checked here; whether the machine has the
    device, when the command resolves it (:func:`protege.device.resolve_device`)."""
    from protege.configs.bc import BCConfig  # stdlib only: --help imports no torch

    spec = next(f for f in config_fields(BCConfig) if f.name == "device")
    p.add_argument(
        "--device",
        dest="device",
        default=None,
        type=device_spec,
        metavar="DEVICE",
        help=spec.help(),
    )


def device_spec(text: str) -> str:
    """An argparse ``type``: auto, cpu, cuda, cuda:N or mps."""
    from protege.configs.checks import check_device_spec
    from protege.errors import ConfigError

    try:
        return check_device_spec("device", text)
    except ConfigError as exc:  # argparse names the flag: "argument --device: must be ..."
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device ")) from None


def progress_flag(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``; neither: bars when stderr is a terminal (``main``
    resolves None to ``sys.stderr.isatty()`` before the command runs)."""
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: only when stderr is a terminal; --progress "
        "forces them, --no-progress hides them)",
    )


def bar(args: argparse.Namespace, label: str) -> str | bool:
    """The library's ``progress=`` argument: a labelled bar, or none with --no-progress."""
    return label if args.progress else False


def json_flag(p: argparse.ArgumentParser) -> None:
    """``--json FILE``: the command's results as JSON (:mod:`protege.cli.results_json`).

    A command that reports results adds it with this one call and ends with
    ``results_json.write(args, settings, results)``."""
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the settings, seed, versions and results as JSON to FILE "
        "(schema protege.result/1; see the README)",
    )


def task_flag(p: argparse.ArgumentParser, required: bool = True, extra: str = "") -> None:
    p.add_argument(
        "--task",
        required=required,
        metavar="NAME",
        help="a registered task: cartpole, lunarlander, lunarlander-continuous, pendulum, "
        "mountaincar-continuous, ... (`protege info --tasks` lists them; --plugin adds your "
        "own)" + extra,
    )


def rollout_flags(p: argparse.ArgumentParser, episodes: int) -> None:
    p.add_argument(
        "--episodes",
        type=episodes_int,
        default=episodes,
        help=f"episodes to run (default: {episodes})",
    )
    p.add_argument(
        "--n-envs", type=size_int, default=8, help="sub-envs of the vector env (default: 8)"
    )


def workers_flags(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--ray-address``: run the command's rollouts on Ray workers
    (:class:`protege.rollout.ray_workers.RayWorkers`; needs ``protege[distributed]``)."""
    p.add_argument(
        "--workers",
        type=int_in(1, 4096),
        default=None,
        metavar="N",
        help="run the rollouts on N Ray workers (one CPU each) with the same episodes and "
        "numbers as one process; without --ray-address a local Ray is started on 127.0.0.1 "
        "(default: no workers, one process)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="the Ray cluster to run the workers on (its head's address, or 'auto'); "
        "without --workers, one worker per CPU of the cluster",
    )


def open_workers(args: argparse.Namespace) -> Any:
    """A context giving the :class:`~protege.rollout.ray_workers.RayWorkers` the flags ask
    for (closed at its end), or None without ``--workers``/``--ray-address``."""
    import contextlib

    workers, address = getattr(args, "workers", None), getattr(args, "ray_address", None)
    if workers is None and address is None:
        return contextlib.nullcontext(None)
    from protege.rollout.ray_workers import RayWorkers

    return RayWorkers(workers, address, threads=getattr(args, "threads", 1))


# ============================================================ dataclass fields as flags
@dataclass(frozen=True)
class FieldSpec:
    """What a flag needs of one dataclass field."""

    name: str
    type: Any
    default: Any
    """The field's default (``default_factory()`` for a factory), or ``MISSING``."""
    doc: str
    """The attribute docstring under the field, on one line."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help(self, default: str | None = None) -> str:
        """The docstring and the default (``default`` overrides how it is shown)."""
        shown: Any = self.default
        if isinstance(shown, tuple):
            shown = " ".join(map(str, shown))
        shown = shown if default is None else default
        return (self.doc + f" (default: {shown})").strip().replace("%", "%%")


POSITIVE_RATES = ("lr", "q_lr")
"""Learning rates: > 0 on the command line (the configs also take 0, which Python callers and
tests use to freeze a policy)."""


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
    help says the default is, for fields whose real default depends on the task). Fields of
    a type no flag can hold (a callable, a nested dataclass) are left to Python.
    """
    group = p.add_argument_group(f"{cls.__name__} (same names in Python and config.json)")
    for f in config_fields(cls, skip):
        kwargs = flag_kwargs(f.type)
        if kwargs is None:
            continue
        if choices and f.name in choices:
            kwargs["choices"] = choices[f.name]
            kwargs.pop("metavar", None)
        if f.name in POSITIVE_RATES:
            kwargs["type"] = finite_positive_float
        text = f.help((defaults or {}).get(f.name))
        group.add_argument(f.flag, dest=f.name, default=None, help=text, **kwargs)


def config_values(cls: type, args: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (those left out keep their defaults)."""
    return {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if f.name not in skip and getattr(args, f.name, None) is not None
    }


def config_fields(cls: type, skip: Sequence[str] = ()) -> list[FieldSpec]:
    """The fields of the dataclass ``cls`` (but ``skip``), with their docstrings."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    specs = []
    for f in fields(cls):
        if f.name in skip:
            continue
        factory: Any = f.default_factory
        default = f.default if factory is MISSING else factory()
        specs.append(FieldSpec(f.name, hints[f.name], default, docs.get(f.name, "")))
    return specs


def flag_kwargs(tp: Any) -> dict[str, Any] | None:
    """argparse settings for a field type: int, float, str, bool, tuples/lists, dicts, X | None
    (None for a type no flag holds)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else str
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin in (tuple, list):
        item = typing.get_args(tp)[0]
        convert = finite_float if item is float else item
        return {"nargs": "+", "type": convert, "metavar": item.__name__.upper()}
    if origin is dict or tp is dict:
        return {"type": json_object, "metavar": "JSON"}
    if tp is float:  # the range is the dataclass's to check; nan and inf never fit one
        return {"type": finite_float, "metavar": "FLOAT"}
    if tp in (int, str):
        return {"type": tp, "metavar": tp.__name__.upper()}
    if tp is Any:
        return {"type": str}
    return None


def json_object(text: str) -> dict[str, Any]:
    """A flag's JSON object value (``'{"k": 5}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"k\": 5}}', got {text}")
    return value


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under a field) of a dataclass, by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.ClassDef):
        return {}
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
