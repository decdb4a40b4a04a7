"""Policies: encoder + head (+ normalizer + chunk executor)."""

from protege.configs.policy import PolicyConfig
from protege.policies.heads import HEADS, Head
from protege.policies.policy import Policy

__all__ = ["HEADS", "Head", "Policy", "PolicyConfig"]
