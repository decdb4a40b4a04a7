"""MkDocs hook: every module of ``src/protege`` is on some API reference page.

A module that no ``::: protege.module`` line of docs/reference/ names is a warning, so the
strict build fails when a new module is added without its reference (add the line to the
page of its package).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.protege.coverage")

ROOT = Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"^::: (protege[\w.]*)\s*$", re.MULTILINE)
SKIP = {"protege.cli.__main__"}
"""Modules with nothing to document (``python -m protege.cli``)."""

_named: set[str] = set()


def modules() -> list[str]:
    """The dotted name of every module under src/protege."""
    src = ROOT / "src"
    names = []
    for path in sorted((src / "protege").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return [n for n in names if n not in SKIP]


def on_pre_build(**kwargs: Any) -> None:
    _named.clear()


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    _named.update(DIRECTIVE.findall(markdown))
    return markdown


def on_post_build(**kwargs: Any) -> None:
    for name in modules():
        if name not in _named and not any(n.startswith(name + ".") for n in _named):
            log.warning(f"module {name} is on no API reference page: add `::: {name}`")
