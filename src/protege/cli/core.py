"""``main`` of the ``protege`` command: it builds the parser from the registered commands,
parses, loads plugins and runs the command.

The commands register themselves (:mod:`protege.cli.registry`); their flags come from
:mod:`protege.cli.flags` and what they print from :mod:`protege.cli.output`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from typing import Any

from protege import __version__
from protege.cli import exit_codes
from protege.cli.registry import COMMANDS, GROUPS, load_plugins, plugin_flag
from protege.errors import ProtegeError


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
        epilog=exit_codes.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # main finds the global options in argv by their full names
    )
    parser.add_argument("--version", action="version", version=f"protege {__version__}")
    plugin_flag(parser, "plugins")
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
            plugin_flag(sub, "command_plugins")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``protege`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    The codes are :mod:`protege.cli.exit_codes`': 0 success; 2 bad input (a flag, argparse's
    usage error, or what it names: one line ``protege COMMAND: error: ...``); 130 interrupted
    (Ctrl-C or SIGTERM: what was kept, and the ``--resume`` command where there is one); 70
    an internal error (where its traceback was written).
    """
    options, rest = _split_global_options(list(sys.argv[1:] if argv is None else argv))
    rest = _with_default_subcommand(rest)
    parser = build_parser(only=_command_path(rest))
    try:
        args = parser.parse_args([*options, *rest])
    except SystemExit as exc:  # --help, --version and flag errors (argparse's code 2)
        return exc.code if isinstance(exc.code, int) else exit_codes.BAD_INPUT
    if getattr(args, "run", None) is None:
        parser.print_help()
        return exit_codes.BAD_INPUT
    args.argv = [*options, *rest]
    if getattr(args, "progress", False) is None:  # neither --progress nor --no-progress
        args.progress = sys.stderr.isatty()
    try:
        with exit_codes.sigterm_interrupts():
            load_plugins(args)
            if hasattr(args, "threads"):
                import torch

                torch.set_num_threads(max(1, args.threads))
            args.run(args)
    except (ProtegeError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, even if a numpy repr spans several
        _say(f"protege {args.command_name}: error: {message}")
        return exit_codes.BAD_INPUT
    except KeyboardInterrupt:
        hint = COMMANDS[tuple(args.command_name.split())].interrupted
        _say(exit_codes.interrupted_message(args, args.argv, hint))
        return exit_codes.INTERRUPTED
    except Exception as exc:
        _say(exit_codes.internal_error_message(args, args.argv, exc))
        return exit_codes.INTERNAL_ERROR
    return exit_codes.OK


def _say(message: str) -> None:
    """The one message on stderr that ends a run that failed."""
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
