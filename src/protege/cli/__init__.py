"""The ``protege`` command: a thin layer that parses flags, calls the library and prints.

Each command group lives in its own module and registers its commands on import with
:func:`protege.cli.registry.command`; see that module for how to add one.
"""

from protege.cli import (  # noqa: F401  (importing registers the commands)
    adversarial,
    data,
    demos,
    experiments,
    interactive,
    interop,
    learn,
    rl,
)
from protege.cli.core import build_parser, main
from protege.cli.registry import COMMANDS, command

__all__ = ["COMMANDS", "build_parser", "command", "main"]
