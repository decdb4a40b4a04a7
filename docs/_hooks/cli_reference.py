"""MkDocs hook: the command-line reference page (``cli.md``), generated at build time from
``protege.cli``'s argparse parser, so it is always the ``--help`` the installed command prints.

It walks the parser and its subparsers (``demo``, ``experiment`` and their commands) and
writes, for each command, its help line and its full ``--help`` text at 100 columns.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
WIDTH = "100"
INTRO = """# Command line

Generated from the `protege` command's own parser when the docs are built
(`docs/_hooks/cli_reference.py`): each section is what `protege COMMAND --help` prints.
Flags that set a config field have the field's name; the field's documentation is in the
[configs reference](reference/configs.md).
"""


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help_line: str = ""
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    """(path, help line, parser) of ``parser`` and of every subcommand below it, in order."""
    yield path, help_line or parser.description or "", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name), helps.get(name, ""))


def page() -> str:
    """The Markdown of the command-line reference."""
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from protege.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps help at $COLUMNS
    try:
        found = list(commands(build_parser()))
        lines = [INTRO, "| command | what it does |", "|---|---|"]
        for path, help_line, _ in found[1:]:
            anchor = "-".join(("protege", *path))
            cell = html.escape(help_line).replace("|", "\\|")  # help text, not Markdown
            lines.append(f"| [`protege {' '.join(path)}`](#{anchor}) | {cell} |")
        for path, _, parser in found:
            name = " ".join(("protege", *path))
            anchor = "-".join(("protege", *path))
            level = "#" * (2 + max(0, len(path) - 1))
            lines += ["", f"{level} `{name}` {{#{anchor}}}", "", "```text", parser.format_help()]
            lines += ["```"]
        return "\n".join(lines) + "\n"
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    files.append(File.generated(config, "cli.md", content=page()))
    return files
