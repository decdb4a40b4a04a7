"""Experts: anything that can label any state the learner reaches."""

from protege.experts.adapters import CallableExpert, ExpertActor, PolicyExpert, SB3Expert
from protege.experts.base import Expert

__all__ = ["CallableExpert", "Expert", "ExpertActor", "PolicyExpert", "SB3Expert"]
