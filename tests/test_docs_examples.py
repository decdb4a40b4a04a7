"""The ```python examples of README.md, CONTRIBUTING.md and docs/ run, so they cannot rot.

The blocks of one file run in order, in one namespace, in an empty temporary directory (with
a link to the repository's ``docs/``, so ``docs/examples/...`` paths work): as a reader who
pastes them one after the other would. A block preceded by a line ``<!-- no-test: why -->``
is not run (few are: ones that need a person at the keyboard); one preceded by
``<!-- test: slow -->`` runs only in the slow suite (``make test-slow``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?:(<!-- [^\n]*-->)\n)?```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOCS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))
SOURCES = ["README.md", "CONTRIBUTING.md", *DOCS]


def blocks(name: str) -> list[tuple[int, str | None, str]]:
    """(line, marker comment or None, code) of every ```python block of ``name``."""
    text = (ROOT / name).read_text()
    return [
        (text.count("\n", 0, m.start(2)) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)
    ]


def run_examples(name: str, slow: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``name``'s examples (the slow ones too if ``slow``); return how many ran."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    namespace: dict[str, object] = {"__name__": f"example_{Path(name).stem.lower()}"}
    ran = 0
    for line, marker, code in blocks(name):
        if marker is not None and marker.startswith("<!-- no-test:"):
            continue
        if marker == "<!-- test: slow -->" and not slow:
            continue
        assert marker in (None, "<!-- test: slow -->"), f"{name}:{line}: unknown marker {marker}"
        start = time.perf_counter()
        exec(compile(code, f"{name}:{line}", "exec"), namespace)
        print(f"{name}:{line}: {time.perf_counter() - start:.1f} s")
        ran += 1
    return ran


@pytest.mark.usefixtures("fresh_plugins")
@pytest.mark.parametrize("name", [s for s in SOURCES if blocks(s)])
def test_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_examples(name, False, tmp_path, monkeypatch) > 0


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_plugins")
@pytest.mark.parametrize(
    "name", [s for s in SOURCES if any(m == "<!-- test: slow -->" for _, m, _ in blocks(s))]
)
def test_examples_run_with_the_slow_ones(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_examples(name, True, tmp_path, monkeypatch)


def test_every_python_block_is_found_and_few_are_skipped() -> None:
    """The fence pattern finds every block (a block it missed would silently go untested),
    and skipping stays the exception."""
    for name in SOURCES:
        text = (ROOT / name).read_text()
        assert len(blocks(name)) == text.count("```python\n"), name
    skipped = [m for s in SOURCES for _, m, _ in blocks(s) if m and m.startswith("<!-- no-test:")]
    assert len(skipped) <= 2, skipped
