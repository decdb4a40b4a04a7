"""Output heads. Importing this package registers every built-in head in ``HEADS``."""

from protege.policies.heads import categorical, deterministic, gaussian
from protege.policies.heads.base import HEADS, Head, masked_mean, register_head

__all__ = ["HEADS", "Head", "categorical", "deterministic", "gaussian", "masked_mean", "register_head"]
