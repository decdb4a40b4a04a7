"""Griffe extension: the Sphinx roles protege's docstrings use (``:class:`~protege.x.Y```,
``:func:`register```) become mkdocstrings cross-references, so they render as links and a
reference to a name that does not exist fails the strict build.

A target is resolved like a Python name in the docstring's scope (its module's imports and
definitions, then the enclosing ones): one that resolves into protege becomes a link; one that
resolves elsewhere (``torch.nn.Module``, ``np.ndarray``) or is a builtin is shown as code, since
the build is offline and has no other project's inventory. A name that resolves nowhere stays
a link, and autorefs reports it.
"""

from __future__ import annotations

import builtins
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|mod|class|meth|attr|data|obj|exc|const):`(~?)([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::\n\n(?=[ \t])")
"""``tasks::`` then a blank line and an indented block: the block is code in Markdown too."""
EXTERNAL = {"np", "numpy", "torch", "nn", "gym", "gymnasium", "argparse", "os", "pathlib"}
EXTERNAL |= {"dataclasses", "typing", "collections", "json", "pygame", "minari", "h5py"}
EXTERNAL |= {"stable_baselines3", "safetensors", "matplotlib", "tqdm", "rich", "threading"}


def _expand(obj: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names in ``obj``'s scope, or None if it names nothing."""
    if target == "protege" or target.startswith("protege."):
        return target
    head, dot, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            return scope.resolve(head) + dot + rest
        except (griffe.NameResolutionError, ValueError, KeyError):
            scope = scope.parent
    return None


def convert(obj: griffe.Object, text: str) -> str:
    """``text`` with every Sphinx role replaced by a cross-reference or inline code, and
    reStructuredText's ``::`` before a literal block by Markdown's ``:``."""

    def replace(m: re.Match[str]) -> str:
        tilde, text = m.group(1), m.group(2).strip()
        explicit = re.fullmatch(r"(.+?)\s*<([^>]+)>", text)  # :attr:`title <target>`
        target = (explicit.group(2) if explicit else text).removesuffix("()")
        title = explicit.group(1) if explicit else target.rsplit(".", 1)[-1] if tilde else target
        full = _expand(obj, target)
        head = target.split(".")[0]
        if full is None and (head in EXTERNAL or hasattr(builtins, head)):
            return f"`{title}`"
        if full is not None and not (full == "protege" or full.startswith("protege.")):
            return f"`{title}`"
        return f"[`{title}`][{full or target}]"

    return LITERAL.sub(":\n\n", ROLE.sub(replace, text))


class SphinxRoles(griffe.Extension):
    """Rewrites the docstrings of every object of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        doc = obj.docstring
        if doc is not None and doc.parent in (None, obj):  # a docstring shared with a base
            doc.value = convert(obj, doc.value)  # class is converted once, in its own scope
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
