"""The task registry: ``make(name)``, ``register(task)``, ``names()``."""

from __future__ import annotations

from protege.errors import ConfigError
from protege.tasks.base import EpisodeOutcome, Task, action_shape, is_discrete

_REGISTRY: dict[str, Task] = {}


def register(task: Task, *, overwrite: bool = False) -> Task:
    """Add a task to the registry so ``make(task.name)`` and the CLI's ``--task`` find it."""
    if task.name in _REGISTRY and not overwrite:
        raise ConfigError(f"task {task.name!r} is already registered (pass overwrite=True)")
    _REGISTRY[task.name] = task
    return task


def make(name: str) -> Task:
    """Return the registered task called ``name``."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown task {name!r}; registered tasks: {known}") from None


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# Modules that register protege's own tasks on import.
_BUILTIN_MODULES: list[str] = [
    "protege.tasks.classic",
    "protege.tasks.lane",
    "protege.tasks.carracing",
    "protege.tasks.obstacle",
]

__all__ = ["EpisodeOutcome", "Task", "action_shape", "is_discrete", "make", "names", "register"]
