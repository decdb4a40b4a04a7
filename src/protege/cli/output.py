"""What the ``protege`` command prints: the run's heading, results tables, facts, notes.

Results go to stdout, whole: :func:`print_table` is the one place a table is printed, and
it never cuts, wraps or squeezes a value. A table that fits the width available (``COLUMNS``
if set, else the terminal's, else 80) is drawn as always; a wider one is drawn at the width
it needs, so in a log, a pipe or a narrow terminal every header and value stays whole on
its line. Lines of text (:func:`line`) are never wrapped either. Notes about the run's
progress (:func:`note`) go to stderr, so ``protege ... > results.txt`` keeps results only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

console = Console(highlight=False, soft_wrap=True)
"""stdout (whatever ``sys.stdout`` is when it prints); text is never wrapped."""


def announce(args: argparse.Namespace) -> None:
    """The first line of a run: the command and its seed."""
    console.print(f"[bold]protege {args.command_name}[/]  seed={args.seed}")


def line(text: str, bold: bool = False) -> None:
    """Results as text on stdout, as they are (no markup, never wrapped)."""
    console.print(Text(text, style="bold" if bold else ""), soft_wrap=True)


def note(text: str) -> None:
    """A note on the run's progress (a round finished, a step done) on stderr, above the
    progress bars if there are any."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def available_width() -> int:
    """Columns available to a table: ``$COLUMNS``, else the terminal's, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def _numeric(cell: str) -> bool:
    return cell[:1].isdigit() or (cell[:1] in "–-−" and (cell[1:2].isdigit() or len(cell) == 1))


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    header: bool = True,
) -> None:
    """Print a results table on stdout, every header and value whole.

    Columns whose first cell is a number are right-aligned. ``header=False`` draws a boxed
    table without a header row, its first column dimmed: named facts (:func:`facts`).
    """
    if title:
        console.print(Text(title, style="bold"), soft_wrap=True)
    out = Table(box=box.SIMPLE_HEAD, show_edge=False) if header else Table(show_header=False)
    first = [str(c) for c in rows[0]] if rows else []
    for i, col in enumerate(columns):
        numeric = header and i < len(first) and _numeric(first[i])
        justify: JustifyMethod = "right" if numeric else "left"
        out.add_column(Text(col), justify=justify, style="dim" if not header and i == 0 else None)
    for row in rows:
        out.add_row(*(Text(str(c)) for c in row))
    width = available_width()
    need = Measurement.get(console, console.options.update_width(10**6), out).maximum
    # A fresh console: its width is the table's own when the table is wider than the
    # space (rich would otherwise wrap and cut cells to fit).
    Console(highlight=False, width=max(width, need), file=console.file).print(out)


def facts(title: str, items: dict[str, Any]) -> None:
    """A two-column table of named facts."""
    print_table(title, ["", ""], [[k, v] for k, v in items.items()], header=False)


def evaluation_table(title: str, evals: dict[str, Any], labels: dict[str, int]) -> None:
    """Rows of :class:`protege.rollout.Evaluation`, with each learner as a % of the expert.

    ``labels`` (expert labels each method trained on), when given, takes the place of the
    wall-time column.
    """
    expert = evals.get("expert")
    rows = []
    for name, ev in evals.items():
        pct = (
            f"{100 * ev.mean_return / expert.mean_return:.0f}%"
            if expert is not None and expert.mean_return
            else "–"
        )
        rows.append(
            [
                name,
                f"{ev.mean_return:.1f} ± {ev.std_return:.1f}",
                pct,
                f"{100 * ev.success_rate:.0f}%",
                f"{ev.mean_length:.0f}",
                "–" if name == "expert" else f"{ev.disagreement:.3f}",
                *([f"{labels[name]:,}" if labels.get(name) else "–"] if labels else []),
                *([f"{ev.wall_seconds:.1f} s"] if not labels else []),
            ]
        )
    columns = ["", "return", "% expert", "success", "length", "disagree"]
    print_table(title, [*columns, "labels" if labels else "wall"], rows)
