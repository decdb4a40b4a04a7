"""Output heads. Importing this package registers every built-in head in ``HEADS``."""

from protege.policies.heads import (
    binned,
    categorical,
    deterministic,
    diffusion,
    flow,
    gaussian,
    mog,
)
from protege.policies.heads.base import HEADS, Head, masked_mean, register_head

__all__ = [
    "HEADS",
    "Head",
    "binned",
    "categorical",
    "deterministic",
    "diffusion",
    "flow",
    "gaussian",
    "masked_mean",
    "mog",
    "register_head",
]
