"""The documentation builds offline with no warning (``make docs``, mkdocs.yml), and what it is
built from is checked: the README's sections, the CLI reference generated from the parser,
the docstrings' cross-references."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "_hooks"


def hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
    return subprocess.run(
        [*command, "--site-dir", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once exactly as ``make docs`` builds it (strict)."""
    out = tmp_path_factory.mktemp("site")
    built = mkdocs_build(ROOT / "mkdocs.yml", out)
    warnings = [line for line in built.stderr.splitlines() if "WARNING" in line]
    assert built.returncode == 0 and not warnings, built.stderr[-3000:]
    return out


def test_the_site_has_every_page_of_the_nav(site: Path) -> None:
    nav = re.findall(r":\s*(\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert len(nav) > 20
    for page in nav:
        assert (site / page.replace(".md", ".html")).is_file(), page


def test_the_cli_reference_has_every_command_and_flag(site: Path) -> None:
    from protege.cli import COMMANDS

    html = (site / "cli.html").read_text()
    for path in COMMANDS:
        anchor = "-".join(("protege", *path))
        assert f'id="{anchor}"' in html, anchor
    assert "--episodes-per-round" in html and "--alpha-h" in html  # dagger's method flags


def test_the_guides_are_the_readme_and_contributing_text(site: Path) -> None:
    store = (site / "guide" / "store.html").read_text()
    assert "A crash loses at most the episode in flight." in store
    contributing = (site / "contributing.html").read_text()
    assert "Tests to copy" in contributing and "CoinFlipGate" in contributing
    heads = (site / "guide" / "heads.html").read_text()
    assert 'src="../obstacle_chunks.png"' in heads  # README's docs/... image, relinked


def test_the_api_reference_renders_field_docstrings_and_links_roles(site: Path) -> None:
    configs = (site / "reference" / "configs.html").read_text()
    assert 'id="protege.configs.bc.BCConfig.val_fraction"' in configs
    assert "Fraction of <em>episodes</em> held out for validation" in configs
    tasks = (site / "reference" / "tasks.html").read_text()
    assert ":class:" not in tasks and ":func:" not in tasks
    # lane.py's :data:`~protege.tasks.lane_dynamics.STEER` is a link to its anchor
    assert re.search(r'<a [^>]*href="#protege\.tasks\.lane_dynamics\.STEER"', tasks)
    # a method without a docstring shows its base class's (Head.loss, on MoGHead.loss)
    heads = (site / "reference" / "heads.html").read_text()
    mog_loss = heads.split('id="protege.policies.heads.mog.MixtureOfGaussiansHead.loss"')[1]
    assert "Scalar training loss averaged over valid" in re.split(r"<h[1-6] ", mog_loss)[0]


def test_a_broken_cross_reference_fails_the_strict_build(tmp_path: Path) -> None:
    """The same settings on a one-module package whose docstring names nothing real."""
    (tmp_path / "src" / "mini").mkdir(parents=True)
    (tmp_path / "src" / "mini" / "__init__.py").write_text(
        '"""Mini: see :func:`no_such_function` and :func:`real`."""\n\n\n'
        'def real() -> None:\n    """Real."""\n'
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Mini\n\n::: mini\n")
    config = (ROOT / "mkdocs.yml").read_text()
    plugins = config[config.index("plugins:") : config.index("nav:")]
    plugins = plugins.replace("docs/_hooks/sphinx_roles.py", str(HOOKS / "sphinx_roles.py"))
    (tmp_path / "mkdocs.yml").write_text(f"site_name: mini\nstrict: true\n{plugins}")
    built = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "Could not find cross-reference target 'no_such_function'" in built.stderr
    assert "'real'" not in built.stderr  # the one that exists resolved


def test_include_takes_a_section_and_relinks_it() -> None:
    includes = hook("includes")
    text = "# T\nintro\n## A\na ![x](docs/p.png) [c](CONTRIBUTING.md)\n### A1\nsub\n## B\nb\n"
    assert includes.section(text, "intro", "X") == "intro\n"
    part = includes.section(text, '"## A"', "X")
    assert part.startswith("## A\n") and "### A1\nsub\n" in part and "## B" not in part
    linked = includes.rewrite_links(part, "guide/a.md")
    assert "![x](../p.png)" in linked and "[c](../contributing.md)" in linked
    with pytest.raises(ValueError, match="no heading '## C'"):
        includes.section(text, '"## C"', "X")


def test_every_module_and_readme_section_is_checked_for() -> None:
    coverage = hook("coverage")
    names = coverage.modules()
    assert "protege.data.store" in names and "protege.policies.heads.flow" in names
    assert len(names) == len(list((ROOT / "src" / "protege").rglob("*.py"))) - len(coverage.SKIP)


def test_sphinx_roles_become_links_or_code() -> None:
    import griffe

    roles = hook("sphinx_roles")
    lane = griffe.load("protege.tasks.lane", search_paths=[str(ROOT / "src")])
    text = textwrap.dedent(
        """\
        :class:`~protege.tasks.base.Task` :func:`lane_success` :class:`np.ndarray`
        :attr:`Task.risk <protege.tasks.base.Task.risk>` :class:`int` :func:`missing`
        reStructuredText's literal block::

            code"""
    )
    assert roles.convert(lane, text) == (
        "[`Task`][protege.tasks.base.Task] "
        "[`lane_success`][protege.tasks.lane.lane_success] `np.ndarray`\n"
        "[`Task.risk`][protege.tasks.base.Task.risk] `int` [`missing`][missing]\n"
        "reStructuredText's literal block:\n\n    code"
    )
