"""The ``protege`` command's registry: subcommands, command groups and plugins.

Every subcommand is one function decorated with :func:`command`, whose docstring is its
``--help`` text, plus one small function adding its flags (:mod:`protege.cli.flags`).
Nested commands (``demo lunarlander``, ``experiment horizon``) are paths with a space.

Adding a command::

    def _dagger_flags(p: argparse.ArgumentParser) -> None:
        task_flag(p); seed_flag(p)
        add_config_flags(p, DAggerConfig, skip=("seed", "bc"))  # protege.configs: light

    @command("dagger", _dagger_flags)
    def dagger(args: argparse.Namespace) -> None:
        \"\"\"Train with DAgger ...\"\"\"
        from protege.algos import registry  # the library: only when it runs

A command that reports results prints them with :mod:`protege.cli.output` (``print_table``,
``facts``: every value whole at any width; notes on progress with ``output.note``, to
stderr), takes ``--json FILE`` (``json_flag(p)`` in its flags) and ends with
``results_json.write(args, settings, results)`` (:mod:`protege.cli.results_json`). What it
keeps when interrupted goes in ``command(..., interrupted="...")``; its exit codes are
:mod:`protege.cli.exit_codes`'.

Speed: ``protege --help``, ``protege COMMAND --help`` and flag errors must not import torch,
gymnasium or matplotlib (they took 3 s). So a command module imports at the top only the
CLI's modules and :mod:`protege.configs` (standard library only), and the library inside
its run function. Plugins (``--plugin``, ``PROTEGE_PLUGINS``) are imported after parsing,
just before the command runs.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

Run = Callable[[argparse.Namespace], None]
Flags = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """One subcommand: its path (``("demo", "obstacle")``), what it runs, its flags."""

    path: tuple[str, ...]
    run: Run
    flags: Flags
    interrupted: str = ""
    """What an interrupted run keeps, formatted with the flags (``"the store {out} ..."``);
    a command with ``--resume`` says the command that continues it instead."""

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


def command(name: str, flags: Flags, interrupted: str = "") -> Callable[[Run], Run]:
    """Register ``run`` as the subcommand ``name`` ("train"; "demo obstacle" for a nested one).

    ``interrupted``: what the command says it kept when Ctrl-C or SIGTERM stops it (default:
    nothing; see :attr:`Command.interrupted`).
    """

    def register(run: Run) -> Run:
        path = tuple(name.split())
        COMMANDS[path] = Command(path, run, flags, interrupted)
        return run

    return register


# =============================================================================== plugins
PLUGINS_ENV = "PROTEGE_PLUGINS"
"""= ``protege.tasks.PLUGINS_ENV`` (not imported from there: that would import torch)."""

PLUGIN_HELP = (
    "import PLUGIN before the command runs: a module name or the path of a .py file that "
    "registers tasks, teleop controls, heads or interactive methods (repeatable; also read "
    f"from ${PLUGINS_ENV}, {os.pathsep!r}-separated, and the 'protege.plugins' entry points "
    "of installed packages)"
)


def plugin_flag(p: argparse.ArgumentParser, dest: str) -> None:
    """``--plugin``, before the command (``protege --plugin x.py train``) or after it."""
    p.add_argument(
        "--plugin", dest=dest, action="append", default=[], metavar="PLUGIN", help=PLUGIN_HELP
    )


def load_plugins(args: argparse.Namespace) -> None:
    """Import the ``--plugin`` and ``$PROTEGE_PLUGINS`` plugins (entry points are imported by
    the task registry itself). ``protege.tasks`` is imported only if there is one."""
    specs = [*getattr(args, "plugins", []), *getattr(args, "command_plugins", [])]
    if specs or os.environ.get(PLUGINS_ENV, "").strip(os.pathsep + " "):
        from protege import tasks

        tasks.load_plugins(specs, env=True)
