"""The rollout loop, gates and evaluation."""

from protege.rollout.evaluate import Evaluation, evaluate, evaluate_expert
from protege.rollout.gates import Decision, ExpertGate, Gate, LazyExpert, LearnerGate, StepView
from protege.rollout.loop import Actor, RolloutResult, rollout

__all__ = [
    "Actor",
    "Decision",
    "Evaluation",
    "ExpertGate",
    "Gate",
    "LazyExpert",
    "LearnerGate",
    "RolloutResult",
    "StepView",
    "evaluate",
    "evaluate_expert",
    "rollout",
]
