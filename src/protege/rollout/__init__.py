"""The rollout loop, its gates and observers, and evaluation."""

from protege.rollout.evaluate import Evaluation, evaluate, evaluate_expert
from protege.rollout.gates import Decision, ExpertGate, Gate, LazyExpert, LearnerGate, StepView
from protege.rollout.loop import Actor, rollout
from protege.rollout.observers import (
    Disagreement,
    KeepEpisodes,
    Observer,
    Progress,
    RecordEpisodes,
    RolloutResult,
    StoreEpisodes,
    Success,
)

__all__ = [
    "Actor",
    "Decision",
    "Disagreement",
    "Evaluation",
    "ExpertGate",
    "Gate",
    "KeepEpisodes",
    "LazyExpert",
    "LearnerGate",
    "Observer",
    "Progress",
    "RecordEpisodes",
    "RolloutResult",
    "StepView",
    "StoreEpisodes",
    "Success",
    "evaluate",
    "evaluate_expert",
    "rollout",
]
