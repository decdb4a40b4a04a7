"""MkDocs hook: pages that include the repository's own Markdown (README.md, CONTRIBUTING.md,
BENCHMARKS.md), so the guides are written once, where GitHub readers see them.

A page includes a file, or one section of it, with a line of its own::

    <!-- include README.md "## The store" -->     the heading and everything under it
    <!-- include README.md intro -->              the text between the title and the first ##
    <!-- include CONTRIBUTING.md -->              the whole file

Links in the included text are written relative to the repository root (``docs/horizon.png``,
``CONTRIBUTING.md``); they are rewritten relative to the page that includes them. Every ``##``
section of README.md must be included by some page: a section left out is a warning, so the
strict build fails until the new section gets a page (or joins one in docs/guide/).
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.protege.includes")

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^<!-- include (\S+)(?: (intro|"[^"]+"))? -->$', re.MULTILINE)
LINK = re.compile(r"(!?\[[^\]\n]*\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md"}
PAGES["BENCHMARKS.md"] = "benchmarks.md"
"""Repository files that are pages of the site (links to them are rewritten to the page)."""

_included: set[tuple[str, str]] = set()


def headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, heading line) of every Markdown heading outside code fences."""
    fenced = [m.span() for m in FENCE.finditer(text)]
    found = []
    for m in re.finditer(r"^(#{1,6}) .*$", text, re.MULTILINE):
        if not any(a <= m.start() < b for a, b in fenced):
            found.append((m.start(), len(m.group(1)), m.group(0).rstrip()))
    return found


def section(text: str, selector: str | None, source: str) -> str:
    """The part of ``text`` a selector names (see the module docstring)."""
    if selector is None:
        return text
    marks = headings(text)
    if selector == "intro":
        start = next(m for m in marks if m[1] == 1)
        end = next((m for m in marks if m[1] == 2), (len(text), 0, ""))
        return text[text.index("\n", start[0]) + 1 : end[0]]
    wanted = selector.strip('"')
    for i, (offset, level, line) in enumerate(marks):
        if line == wanted:
            end = next((o for o, lv, _ in marks[i + 1 :] if lv <= level), len(text))
            return text[offset:end]
    raise ValueError(f"{source} has no heading {wanted!r}")


def rewrite_links(text: str, page_uri: str) -> str:
    """Repository-relative links → links relative to the page at ``page_uri`` (in docs/)."""

    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:|#|/", target):
            return m.group(0)
        path, hash_, anchor = target.partition("#")
        if path in PAGES:
            path = PAGES[path]
        elif path.startswith("docs/"):
            path = path.removeprefix("docs/")
        elif not m.group(1).startswith("!"):
            # A file of the repository that is not on the site (a benchmark's report): the
            # link text, with the path to find it in a checkout.
            return f"{m.group(1)[1:-2]} (`{target}` in the repository)"
        else:
            return m.group(0)
        relative = posixpath.relpath(path, posixpath.dirname(page_uri) or ".")
        return f"{m.group(1)}{relative}{hash_}{anchor}{m.group(3)}"

    parts, last = [], 0
    for m in FENCE.finditer(text):
        parts += [LINK.sub(fix, text[last : m.start()]), m.group(0)]
        last = m.end()
    return "".join([*parts, LINK.sub(fix, text[last:])])


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    def include(m: re.Match[str]) -> str:
        name, selector = m.group(1), m.group(2)
        source = ROOT / name
        if not source.is_file() or source.parent != ROOT:
            raise ValueError(f"{page.file.src_uri}: no file {name} at the repository root")
        _included.add((name, selector.strip('"') if selector else "*"))
        return rewrite_links(section(source.read_text(), selector, name), page.file.src_uri)

    return INCLUDE.sub(include, markdown)


def on_post_build(**kwargs: Any) -> None:
    if ("README.md", "*") in _included:
        return
    for _, level, line in headings((ROOT / "README.md").read_text()):
        if level == 2 and ("README.md", line) not in _included:
            log.warning(
                f"README.md's section {line!r} is on no docs page: add "
                f'<!-- include README.md "{line}" --> to a page in docs/guide/'
            )


def on_pre_build(**kwargs: Any) -> None:
    _included.clear()  # `mkdocs serve` rebuilds in the same process
