"""The one error family protege raises for bad input.

Every message names *what* was wrong and *where* (a file, a field, a task), so a user reading
one line knows what to fix.
"""

from __future__ import annotations


class ProtegeError(Exception):
    """Base class of every error protege raises on purpose."""


class DataError(ProtegeError):
    """A dataset or store is missing, corrupt, empty or does not match its task."""


class CheckpointError(ProtegeError):
    """A policy checkpoint is missing, corrupt or not a protege checkpoint."""


class ConfigError(ProtegeError):
    """A configuration value is out of range or inconsistent."""


class TrainingError(ProtegeError):
    """Training diverged: the loss became nan or infinite.

    The policy holds its last finite weights (those of ``kept_step``; 0: the initial ones).
    """

    def __init__(self, message: str, step: int, kept_step: int):
        super().__init__(message)
        self.step = step
        self.kept_step = kept_step
