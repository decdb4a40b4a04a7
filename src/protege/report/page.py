"""The report page: ``report.md`` and ``index.html`` side by side, same content.

A :class:`Page` is a title, a headline, a results table, figures (PNG or GIF files in the
report folder) and the facts of the run (seed, wall times, command line, machine). Demos and
experiments build one and call :func:`write_page`; the page knows nothing about BC or DAgger.

Example:
    >>> page = Page("BC on lunarlander", headline="BC reaches 91% of the expert's return")
    >>> page.table = Table(["method", "return"], [["expert", "240 ± 30"], ["BC", "219 ± 60"]])
    >>> page.figures.append(Figure("returns.png", "Return distributions", "Dots are episodes."))
    >>> write_page(page, "reports/demo")
"""

from __future__ import annotations

import html
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Table:
    """A header and rows of already-formatted cells."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Sentences printed under the table (what a column means, how it was measured)."""


@dataclass(frozen=True)
class Figure:
    """An image file in the report folder (relative name), with a title and a caption."""

    file: str
    title: str
    caption: str = ""


@dataclass
class Page:
    title: str
    headline: str = ""
    intro: str = ""
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)
    run: dict[str, str] = field(default_factory=dict)
    """Facts of the run, shown as a two-column table: seed, wall times, command, machine."""


def mean_std(values: Any, digits: int = 1) -> str:
    """``"mean ± std"`` of an array, or ``"–"`` if it is empty."""
    v = np.asarray(values, float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def machine() -> str:
    """One line describing where this ran: OS, CPU, cores, Python, torch."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"
    )


def command_line() -> str:
    """The command that started this process, as a user would type it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("protege", "protege.exe")):
        argv[0] = "protege"
    return shlex.join(argv)


def write_page(page: Page, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md`` and ``index.html`` into ``out``; return both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, index = out / "report.md", out / "index.html"
    md.write_text(_markdown(page))
    index.write_text(_html(page))
    return md, index


# ------------------------------------------------------------------------------ markdown
def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def _markdown(page: Page) -> str:
    lines = [f"# {page.title}", ""]
    if page.headline:
        lines += [f"**{page.headline}**", ""]
    if page.intro:
        lines += [page.intro, ""]
    if page.table is not None:
        lines += ["## Results", "", *_md_table(page.table.columns, page.table.rows), ""]
        lines += [f"- {note}" for note in page.table.notes]
        lines += [""] if page.table.notes else []
    for fig in page.figures:
        lines += [f"## {fig.title}", "", f"![{fig.title}]({fig.file})", ""]
        if fig.caption:
            lines += [fig.caption, ""]
    if page.run:
        rows = [[k, f"`{v}`" if k == "command" else v] for k, v in page.run.items()]
        lines += ["## Run", "", *_md_table(["", ""], rows), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- html
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: .2rem; } .headline { font-size: 1.15rem; font-weight: 600; color: #1f5fa0; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .95rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .8rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92rem; } code { font-size: .88rem; }
ul.notes { color: #555; font-size: .92rem; }
"""


def _is_number(s: str) -> bool:
    return s == "–" or (bool(s) and (s[0].isdigit() or (s[0] in "-+−" and s[1:2].isdigit())))


def _html(page: Page) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(page.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(page.title)}</h1>",
    ]
    if page.headline:
        parts.append(f'<p class="headline">{e(page.headline)}</p>')
    if page.intro:
        parts.append(f"<p>{e(page.intro)}</p>")
    if page.table is not None:
        parts.append("<h2>Results</h2><table><tr>")
        parts += [f"<th>{e(c)}</th>" for c in page.table.columns]
        parts.append("</tr>")
        for row in page.table.rows:
            cells = [
                f'<td class="num">{e(c)}</td>' if _is_number(c) else f"<td>{e(c)}</td>" for c in row
            ]
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        if page.table.notes:
            parts.append('<ul class="notes">')
            parts += [f"<li>{e(n)}</li>" for n in page.table.notes]
            parts.append("</ul>")
    for fig in page.figures:
        parts.append(
            f'<h2>{e(fig.title)}</h2><figure><img src="{e(fig.file)}" alt="{e(fig.title)}">'
            f"<figcaption>{e(fig.caption)}</figcaption></figure>"
        )
    if page.run:
        parts.append("<h2>Run</h2><table>")
        for k, v in page.run.items():
            value = f"<code>{e(v)}</code>" if k == "command" else e(v)
            parts.append(f"<tr><th>{e(k)}</th><td>{value}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
