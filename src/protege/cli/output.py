"""What the ``protege`` command prints: the run's heading, results tables, facts."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)


def announce(args: argparse.Namespace) -> None:
    """The first line of a run: the command and its seed."""
    console.print(f"[bold]protege {args.command_name}[/]  seed={args.seed}")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A results table; columns whose first cell is a number are right-aligned."""
    out = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )
    first = [str(c) for c in rows[0]] if rows else []
    for i, col in enumerate(columns):
        numeric = i < len(first) and (first[i][:1].isdigit() or first[i] == "–")
        out.add_column(col, justify="right" if numeric else "left", no_wrap=numeric or i == 0)
    for row in rows:
        out.add_row(*(str(c) for c in row))
    console.print(out)


def facts(title: str, items: dict[str, Any]) -> None:
    """A two-column table of named facts."""
    out = Table(title=title, title_justify="left", title_style="bold", show_header=False)
    out.add_column(style="dim")
    out.add_column()
    for key, value in items.items():
        out.add_row(key, str(value))
    console.print(out)


def evaluation_table(title: str, evals: dict[str, Any], labels: dict[str, int]) -> None:
    """Rows of :class:`protege.rollout.Evaluation`, with each learner as a % of the expert.

    ``labels`` (expert labels each method trained on), when given, takes the place of the
    wall-time column, so the table fits 80 columns.
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
    table(title, [*columns, "labels" if labels else "wall"], rows)
