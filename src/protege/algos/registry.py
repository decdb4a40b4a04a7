"""The interactive methods by name, and learner checkpoints by the kind they record.

Each method is one module exporting a :class:`~protege.algos.engine.MethodSpec` as ``SPEC``
(name, title, settings class, run, load) and one line in :data:`METHODS`: its name, its
module, its title and its settings class as ``"module:Class"``. This module imports nothing
heavy: the CLI and the demo read names, titles and settings classes (from the light
:mod:`protege.configs`) without importing torch, and a method's module is imported only when
it runs (LeRobot's ``policies/factory.py`` works the same way).

A plugin (``--plugin``, ``$PROTEGE_PLUGINS``, a ``protege.plugins`` entry point) adds a method
with :func:`register` and a learner kind with :func:`register_learner`.

Example:
    >>> registry.names()
    ('dagger', 'hg-dagger', 'ensemble', 'thrifty', 'dart', 'smile', 'aggrevate')
    >>> run_method("thrifty", tasks.make("lunarlander"), "runs/t/store",
    ...            DAggerConfig(rounds=6), ThriftyConfig(alpha_h=0.01), resume=True)
    >>> learner = load_learner("runs/t/store.run/learners/round_006")
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protege.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from protege.algos.engine import MethodSpec
    from protege.algos.results import DAggerResult
    from protege.configs.interactive import DAggerConfig
    from protege.policies.policy import Policy
    from protege.rollout.loop import Actor
    from protege.tasks.base import Task


@dataclass(frozen=True)
class MethodEntry:
    """One registered method, described without importing its module."""

    name: str
    """What ``--method`` and :func:`run_method` take."""
    module: str
    """The module whose ``SPEC`` runs it."""
    title: str
    """How reports name it."""
    config: str | None = None
    """Its settings dataclass as ``"module:Class"`` (a light module), or None."""

    def config_class(self) -> type | None:
        """The settings dataclass (importing only its module)."""
        if self.config is None:
            return None
        module, _, name = self.config.partition(":")
        cls: type = getattr(importlib.import_module(module), name)
        return cls

    def spec(self) -> MethodSpec:
        """The method module's ``SPEC`` (imports the module); it must agree with this entry."""
        spec: MethodSpec = getattr(importlib.import_module(self.module), "SPEC")  # noqa: B009
        if (spec.name, spec.title, spec.config) != (self.name, self.title, self.config_class()):
            raise ConfigError(
                f"{self.module}.SPEC ({spec.name!r}, {spec.title!r}, {spec.config}) does not "
                f"match its registry entry ({self.name!r}, {self.title!r}, {self.config})"
            )
        return spec


METHODS: dict[str, MethodEntry] = {
    e.name: e
    for e in (
        MethodEntry("dagger", "protege.algos.dagger", "DAgger"),
        MethodEntry(
            "hg-dagger",
            "protege.algos.hg_dagger",
            "HG-DAgger",
            "protege.configs.methods:SupervisorConfig",
        ),
        MethodEntry(
            "ensemble",
            "protege.algos.ensemble_dagger",
            "EnsembleDAgger",
            "protege.configs.methods:EnsembleConfig",
        ),
        MethodEntry(
            "thrifty",
            "protege.algos.thrifty",
            "ThriftyDAgger",
            "protege.configs.methods:ThriftyConfig",
        ),
        MethodEntry("dart", "protege.algos.dart", "DART", "protege.configs.methods:DARTConfig"),
        MethodEntry("smile", "protege.algos.smile", "SMILe", "protege.configs.methods:SmileConfig"),
        MethodEntry(
            "aggrevate",
            "protege.algos.aggrevate",
            "AggreVaTe",
            "protege.configs.methods:AggreVaTeConfig",
        ),
        MethodEntry(
            "fleet", "protege.algos.fleet", "Fleet-DAgger", "protege.configs.fleet:FleetConfig"
        ),
    )
}
"""Every interactive method, by name, in the order the CLI lists them."""


def register(entry: MethodEntry, *, overwrite: bool = False) -> MethodEntry:
    """Add a method (from a plugin); its module must export a matching ``SPEC``."""
    if entry.name in METHODS and not overwrite:
        raise ConfigError(f"method {entry.name!r} is already registered (pass overwrite=True)")
    METHODS[entry.name] = entry
    return entry


def names() -> tuple[str, ...]:
    """The registered methods' names."""
    return tuple(METHODS)


def entry(name: str) -> MethodEntry:
    """The entry of method ``name``; an unknown name raises a ConfigError listing the known."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def run_method(
    method: str,
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: Any | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """Run ``method`` (one of :func:`names`) by name; ``kwargs`` go to
    :func:`protege.algos.engine.run` (``resume``, ``run_dir``, ``progress``, ``log``).

    Example:
        >>> run_method("thrifty", make("lunarlander"), "runs/t/store",
        ...            DAggerConfig(rounds=6), ThriftyConfig(alpha_h=0.01), resume=True)
    """
    e = entry(method)
    cls = e.config_class()
    if method_config is not None and (cls is None or not isinstance(method_config, cls)):
        raise ConfigError(f"method {method!r} takes {cls.__name__ if cls else 'no'} settings")
    spec = e.spec()
    return spec.run(task, store_path, config, method_config, make_policy=make_policy, **kwargs)


# ---------------------------------------------------------------------------- learners
@dataclass(frozen=True)
class LearnerEntry:
    """A kind of learner checkpoint: the JSON file that records its kind, and its loader."""

    kind: str
    meta_file: str
    """The JSON file in the checkpoint directory holding ``"kind": kind``."""
    loader: str
    """``"module:Class"`` whose ``Class.load(path)`` loads it."""

    def load(self, path: Path) -> Actor:
        module, _, name = self.loader.partition(":")
        learner: Actor = getattr(importlib.import_module(module), name).load(path)
        return learner


LEARNERS: dict[str, LearnerEntry] = {
    e.kind: e
    for e in (
        LearnerEntry("thrifty", "thrifty.json", "protege.policies.thrifty:ThriftyLearner"),
        LearnerEntry("ensemble", "ensemble.json", "protege.policies.ensemble:PolicyEnsemble"),
        LearnerEntry("mixture", "mixture.json", "protege.algos.registry:MixtureLoader"),
        LearnerEntry("policy", "config.json", "protege.policies.policy:Policy"),
    )
}
"""Learner kinds by name; :func:`learner_kind` looks for their files in this order."""


def register_learner(entry: LearnerEntry, *, overwrite: bool = False) -> LearnerEntry:
    """Add a kind of learner checkpoint (from a plugin)."""
    if entry.kind in LEARNERS and not overwrite:
        raise ConfigError(f"learner kind {entry.kind!r} is already registered")
    LEARNERS[entry.kind] = entry
    return entry


def learner_kind(path: str | os.PathLike[str]) -> str:
    """The kind a learner checkpoint records in its JSON (checkpoints written before kinds
    were recorded: the kind whose file is there). A directory without any is taken for a
    policy, whose loader says what is missing."""
    path = Path(path)
    for e in LEARNERS.values():
        file = path / e.meta_file
        if not file.exists():
            continue
        try:
            meta = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return e.kind  # its loader reports the corrupt file
        kind = meta.get("kind", e.kind) if isinstance(meta, dict) else e.kind
        if kind not in LEARNERS:
            raise CheckpointError(
                f"{file}: learner kind {kind!r} is not registered (known: "
                f"{', '.join(LEARNERS)}); load the plugin that registers it"
            )
        return str(kind)
    return "policy"


def load_learner(path: str | os.PathLike[str], device: str | None = None) -> Actor:
    """A learner checkpoint of any method: a policy, a policy ensemble, a ThriftyDAgger
    learner, or a kind a plugin registered (see :func:`learner_kind`). Loaded on the CPU,
    then moved to ``device`` (``--device``: auto, cpu, cuda, cuda:N, mps; None: stays on
    the CPU) when the learner has a ``to`` method."""
    target = None
    if device is not None:  # a missing device is refused before any loading
        from protege.device import resolve_device  # imports torch: not at --help

        target = resolve_device(device)
    learner = LEARNERS[learner_kind(path)].load(Path(path))
    if target is not None:
        move = getattr(learner, "to", None)
        if move is not None:
            move(target)
        elif target.type != "cpu":
            raise ConfigError(f"{path}: this kind of learner cannot move to {target}; use cpu")
    return learner


class MixtureLoader:
    """Loads a :class:`~protege.policies.mixture.MixturePolicy` (SMILe's learner) whose
    components are learners of any registered kind."""

    @staticmethod
    def load(path: Path) -> Actor:
        from protege.policies.mixture import MixturePolicy

        return MixturePolicy.load(path, load_learner)
