"""What a run of an interactive method reports: a row per round, computed from the store.

Every figure of a :class:`RoundRow` is read from the store's index (labels, who drove, the
expert queries and interventions each episode recorded), so a resumed run reports exactly
what an uninterrupted one does; :func:`read_rows` reads back the rows a run wrote.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from protege.data.store import Store

ATTENTION = "attention_seconds"
"""The per-episode extra (``Episode.extras``, from a gate's ``episode_extras``) holding the
seconds a person spent in control; :class:`RoundRow` reports their running total."""


@dataclass
class RoundRow:
    """One round: what it cost (cumulative over rounds 0..round) and how its learner did."""

    round: int
    """The round (0: the demonstrations)."""
    beta: float | None
    """DAgger's β in this round (the expert's share of control); None where it has none."""
    episodes: int
    """Episodes collected in this round."""
    labels: int
    """Expert labels stored so far (rounds 0..round), demonstrations included."""
    round_labels: int
    """Expert labels stored in this round alone."""
    expert_steps: int
    """Steps the expert drove so far."""
    learner_steps: int
    """Steps the learner drove so far."""
    interventions: int
    """Interventions so far (:func:`~protege.rollout.loop.count_interventions`)."""
    expert_queries: int
    """Times the expert was asked for an action so far (each one counted, labelled or
    not)."""
    mean_return: float
    """Mean return of this round's learner on the run's evaluation episodes."""
    std_return: float
    """Standard deviation of those returns."""
    success_rate: float
    """Fraction of those episodes that succeeded."""
    collect_seconds: float
    """Wall time of this round's collection."""
    train_seconds: float
    """Wall time of this round's training."""
    eval_seconds: float
    """Wall time of this round's evaluation."""
    wall_seconds: float
    """Cumulative wall time (collection, training and evaluation) up to this round."""
    attention_seconds: float = 0.0
    """Seconds a person spent in control so far (rounds 0..round); 0 for a scripted or
    simulated expert."""
    extras: dict[str, float] = field(default_factory=dict)
    """The method's own per-round figures (this round's episode extras summed, and the
    gate's thresholds)."""


@dataclass
class DAggerResult:
    """Per-round rows and totals of one run. Rows are the learner trained *after* the
    round's collection, evaluated on the run's fixed evaluation episodes."""

    method: str
    """The method's registered name."""
    task: str
    """The task's name."""
    seed: int
    """The run's seed."""
    expert_return: float
    """The expert's mean return on the run's evaluation episodes."""
    expert_success: float
    """The expert's success rate on them."""
    target_fraction: float
    """The fraction of the expert's return a learner must reach (``labels_to_reach``)."""
    rows: list[RoundRow]
    """One row per round, in order."""
    config: dict[str, Any] = field(default_factory=dict)
    """The run's ``DAggerConfig`` as a dict."""
    stopped: bool = False
    """The run was stopped before its last round (a person quit); ``resume=True`` continues."""

    @property
    def target_return(self) -> float:
        """``target_fraction`` of the expert's mean return (also for negative returns)."""
        return self.expert_return - (1.0 - self.target_fraction) * abs(self.expert_return)

    def labels_to_reach(self, target: float | None = None) -> int | None:
        """Labels stored when a round's learner first reached ``target`` (default
        :attr:`target_return`), or None if none did."""
        target = self.target_return if target is None else target
        for row in self.rows:
            if row.mean_return >= target:
                return row.labels
        return None

    @property
    def totals(self) -> dict[str, Any]:
        """The last round's cumulative costs, its return, the best return and the labels to
        reach the target."""
        last = self.rows[-1] if self.rows else None
        return {
            "labels": last.labels if last else 0,
            "expert_steps": last.expert_steps if last else 0,
            "learner_steps": last.learner_steps if last else 0,
            "interventions": last.interventions if last else 0,
            "attention_seconds": last.attention_seconds if last else 0.0,
            "expert_queries": last.expert_queries if last else 0,
            "wall_seconds": last.wall_seconds if last else 0.0,
            "final_return": last.mean_return if last else float("nan"),
            "best_return": max((r.mean_return for r in self.rows), default=float("nan")),
            "labels_to_target": self.labels_to_reach(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (what ``result.json`` holds)."""
        return {
            "method": self.method,
            "task": self.task,
            "seed": self.seed,
            "expert_return": self.expert_return,
            "expert_success": self.expert_success,
            "target_fraction": self.target_fraction,
            "target_return": self.target_return,
            "totals": self.totals,
            "rows": [asdict(r) for r in self.rows],
            "config": self.config,
            "stopped": self.stopped,
        }

    def to_markdown(self) -> str:
        """The rows as a Markdown table, under a line about the expert and the target."""
        head = (
            f"**{self.method}** on `{self.task}`, seed {self.seed}: expert mean return "
            f"{self.expert_return:.1f} (success {self.expert_success:.0%}); target "
            f"{self.target_fraction:.0%} = {self.target_return:.1f}\n\n"
            "| round | β | episodes | labels | expert steps | learner steps | interventions "
            "| attention s | expert queries | return | success | wall s |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        )
        lines = []
        for r in self.rows:
            beta = "–" if r.beta is None else f"{r.beta:.2f}"
            lines.append(
                f"| {r.round} | {beta} | {r.episodes} | {r.labels} | {r.expert_steps} | "
                f"{r.learner_steps} | {r.interventions} | {r.attention_seconds:.1f} | "
                f"{r.expert_queries} | "
                f"{r.mean_return:.1f} ± {r.std_return:.1f} | {r.success_rate:.0%} | "
                f"{r.wall_seconds:.0f} |"
            )
        reach = self.labels_to_reach()
        tail = (
            f"\nLabels to reach {self.target_fraction:.0%} of the expert: "
            + (f"{reach}" if reach is not None else "not reached")
            + "\n"
            + ("\nStopped before the last round; resume to continue.\n" if self.stopped else "")
        )
        return head + "\n".join(lines) + "\n" + tail


def round_row(
    store: Store,
    r: int,
    beta: float | None,
    ev: Any,
    collect_s: float,
    train_s: float,
    eval_s: float,
    wall: float,
) -> RoundRow:
    """Round ``r``'s row: its costs summed from the store (rounds 0..r), ``ev`` (an
    :class:`~protege.rollout.evaluate.Evaluation`) for how its learner did."""
    upto = [e for e in store.index if e.round <= r]
    this = [e for e in upto if e.round == r]

    labels = sum(e.labels for e in upto)
    learner_steps = sum(e.learner_steps for e in upto)
    steps = sum(e.length for e in upto)
    extras: dict[str, float] = {}
    for e in this:
        for k, v in e.extras.items():
            if k not in ("episode", "queries", "interventions", "success", ATTENTION):
                extras[k] = extras.get(k, 0.0) + v
    return RoundRow(
        round=r,
        beta=beta,
        episodes=len(this),
        labels=labels,
        round_labels=sum(e.labels for e in this),
        expert_steps=steps - learner_steps,
        learner_steps=learner_steps,
        interventions=sum(e.interventions for e in upto),
        expert_queries=sum(e.queries for e in upto),
        mean_return=ev.mean_return,
        std_return=ev.std_return,
        success_rate=ev.success_rate,
        collect_seconds=collect_s,
        train_seconds=train_s,
        eval_seconds=eval_s,
        wall_seconds=wall,
        attention_seconds=sum(e.attention_seconds for e in upto),
        extras=extras,
    )


def read_rows(path: Path) -> list[RoundRow]:
    """The rows written to ``path`` (``rounds.jsonl``) up to the first one cut off by a crash."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(RoundRow(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            break  # a row cut off by a crash: that round is redone
    return rows
