"""The ``protege`` command's exit codes, and what it says before exiting with each.

======  ==================================================================================
code    meaning
======  ==================================================================================
0       success
2       bad input: a flag (argparse's usage error) or what a flag names (a missing or
        corrupt store or checkpoint, an unknown task, a setting out of range, a run that
        diverged): one line ``protege COMMAND: error: ...`` says what and where
70      internal error: an unexpected exception, a bug in protege or a plugin. One line says
        so and where the traceback was written (``PROTEGE_DEBUG=1`` prints it instead);
        please report it with that file
130     interrupted (Ctrl-C, SIGINT or SIGTERM): what was kept, and for a command that can
        resume (``dagger``) the exact command that continues the run
======  ==================================================================================

70 is ``EX_SOFTWARE`` of BSD's ``sysexits.h``; 130 is what shells report for a program
stopped by Ctrl-C (128 + SIGINT). This module imports only the standard library.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

OK = 0
"""The command did what it was asked."""
BAD_INPUT = 2
"""A flag or what it names is wrong (argparse's usage errors use the same code)."""
INTERNAL_ERROR = 70
"""An unexpected exception: a bug to report."""
INTERRUPTED = 130
"""Stopped by Ctrl-C, SIGINT or SIGTERM; what was finished is kept."""

DEBUG_ENV = "PROTEGE_DEBUG"
"""Set to 1 to print an internal error's traceback instead of writing it to a file."""

EPILOG = f"""exit codes:
  {OK:<4} success
  {BAD_INPUT:<4} bad input: a flag, or the file, task or setting it names (one line says what)
  {INTERRUPTED:<4} interrupted (Ctrl-C, SIGTERM); `protege dagger` says the --resume command
  {INTERNAL_ERROR:<4} internal error: please report it with the traceback file it names
       ({DEBUG_ENV}=1 prints the traceback)"""
"""What ``protege --help`` says about them."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the run stops where it is, keeping what is finished."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (in the main thread only)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_message(args: argparse.Namespace, argv: Sequence[str], hint: str) -> str:
    """What an interrupted run says: what stopped it, what was kept, and how to go on.

    A command with ``--resume`` gets the exact command line that continues it; another one
    its ``hint`` (formatted with the flags: ``"the store {out} keeps ..."``)."""
    text = f"protege {args.command_name}: interrupted"
    if hasattr(args, "resume"):
        again = [a for a in argv if a != "--resume"]
        command = shlex.join(["protege", *again, "--resume"])
        return f"{text}; every finished episode and round is kept. To continue: {command}"
    return f"{text}; {hint.format(**vars(args))}" if hint else text


def internal_error_message(
    args: argparse.Namespace | None, argv: Sequence[str], exc: BaseException
) -> str:
    """Say that ``exc`` is a bug, and where its traceback is: in a file, or (with
    ``PROTEGE_DEBUG=1``) on stderr, printed here."""
    name = f"protege {args.command_name}" if args is not None else "protege"
    trace = "".join(traceback.format_exception(exc))
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        sys.stderr.write(trace)
        where = "the traceback above"
    else:
        where = (
            f"the traceback written to {_write_traceback(trace, argv)} ({DEBUG_ENV}=1 prints it)"
        )
    what = " ".join(f"{type(exc).__name__}: {exc}".split())
    return (
        f"{name}: internal error: {what}. This is a bug in protege or a plugin: please report "
        f"it with the command line and {where}"
    )


def _write_traceback(trace: str, argv: Sequence[str]) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"protege-crash-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(f"{shlex.join(['protege', *argv])}\n\n{trace}")
    return path
