"""Policies: encoder + head (+ normalizer + chunk executor)."""

from protege.policies.config import PolicyConfig
from protege.policies.heads import HEADS, Head
from protege.policies.policy import Policy

__all__ = ["HEADS", "Head", "Policy", "PolicyConfig"]
