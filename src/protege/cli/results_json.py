"""``--json FILE``: every command's results in one convention, for scripts to collect.

Every command that reports results takes ``--json FILE`` (:func:`protege.cli.flags.json_flag`)
and, once it has succeeded, writes this object (:func:`write`)::

    {
      "schema": "protege.result/1",   # this convention, versioned
      "command": "dagger",            # the command ("demo carracing" for a nested one)
      "argv": ["dagger", "--task", "cartpole", ...],   # the command line after `protege`
      "seed": 0,
      "settings": {...},              # every setting the run used, defaults filled in
      "versions": {"protege": "...", "python": "...", "torch": "...",
                   "gymnasium": "...", "numpy": "..."},
      "results": {...}                # the command's own results (below)
    }

``results`` holds what the command printed, unrounded: ``collect`` the episodes' returns,
lengths and successes and the labels stored; ``train`` the training record (losses, steps,
kept weights, as in ``train.json``); ``eval`` each evaluation's summary with its returns and
lengths; ``dagger`` the per-round rows and totals (as in ``result.json``) and the labels it
took to reach the target; ``teleop`` the session's summary; each ``demo`` and ``experiment``
what it saves in its own results file (``results.json``, ``horizon.json``). A value that was
not measured (NaN) or is infinite is ``null``: the file is strict JSON. It is written
atomically (a temporary file renamed over FILE), so a reader never sees half of it, and
only when the command succeeds.
"""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = "protege.result/1"
"""The convention's name and version; a change that breaks readers gets a new number."""

VERSIONED = ("torch", "gymnasium", "numpy")
"""Packages whose versions every result records (with protege's and Python's)."""


def versions() -> dict[str, str | None]:
    """protege's, Python's and the main dependencies' versions (None: not installed)."""
    from protege import __version__

    found: dict[str, str | None] = {"protege": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def document(args: argparse.Namespace, settings: dict[str, Any], results: Any) -> dict[str, Any]:
    """The JSON object of a run (see the module's docstring), before NaN becomes null."""
    plugins = [*getattr(args, "plugins", []), *getattr(args, "command_plugins", [])]
    extra = {"threads": args.threads} if hasattr(args, "threads") else {}
    return {
        "schema": SCHEMA,
        "command": args.command_name,
        "argv": list(getattr(args, "argv", [])),
        "seed": getattr(args, "seed", None),
        "settings": {**settings, **extra, **({"plugins": plugins} if plugins else {})},
        "versions": versions(),
        "results": results,
    }


def write(args: argparse.Namespace, settings: dict[str, Any], results: Any) -> Path | None:
    """Write the run's results to ``--json FILE`` (nothing without the flag); say where."""
    if getattr(args, "json", None) is None:
        return None
    from protege.cli import output
    from protege.demos.common import write_json

    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, document(args, settings, results))
    output.line(f"results: {path}")
    return path
