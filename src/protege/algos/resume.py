"""What a resumed interactive run must agree with: the store it continues, and the settings
the interrupted run wrote to ``config.json`` (used by :func:`protege.algos.engine.run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protege.data.store import Store
from protege.errors import ConfigError
from protege.tasks.base import Task

RESUMABLE_CHANGES = ("rounds", "bc.progress", "method_settings.displays")
"""Settings a resumed run may change: more (or fewer) rounds, progress bars, and the X
displays a fleet's people sit at."""


def check_resumed_config(path: Path, config: dict[str, Any], store: Store) -> None:
    """A resumed run must collect, train and evaluate as the interrupted one did (``config``:
    what :func:`protege.algos.engine.run` writes to ``config.json``)."""
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        # Written before the first episode: a store with interactive rounds but no config
        # is another program's, or its run folder lost the file.
        rounds = sorted({e.round for e in store.index} - {0})
        if rounds:
            store.close()
            raise ConfigError(
                f"{path}: missing, but {store.path} holds rounds {rounds} of a run; cannot "
                "check what is resumed (resume in the run's own folder, or start a new run)"
            ) from None
        return  # the run crashed before writing it: nothing to compare with
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); cannot check the resumed run") from None
    now = _flat(json.loads(json.dumps(config, default=str)))
    before = _flat(stored) if isinstance(stored, dict) else {}
    if before:  # written before BCConfig had a device and a precision: their defaults
        before.setdefault("bc.device", "auto")
        before.setdefault("bc.precision", "fp32")
    changed = sorted(
        k
        for k in set(before) | set(now)
        if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k)
    )
    if changed:
        diffs = "; ".join(f"{k}: {before.get(k)!r} → {now.get(k)!r}" for k in changed)
        raise ConfigError(
            f"{path}: resuming with settings that differ from the interrupted run ({diffs}); "
            "resume with the same settings, or start a new run"
        )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def open_run_store(path: Path, task: Task, resume: bool, rows_file: Path) -> Store:
    """The run's store at ``path``: created, or reopened when ``resume``; an earlier run's
    store is refused unless resumed, and a resumed store must be of ``task``."""
    obs_space, act_space = task.spaces
    exists = (path / "meta.json").exists()
    if resume and not exists:
        raise ConfigError(
            f"{path}: no store to resume (no meta.json); start the run without resume "
            "(--resume), or point it at the run's folder"
        )
    store = Store.create(path, obs_space, act_space, task=task.name, exist_ok=True)
    if resume and store.task not in (None, task.name):
        store.close()
        raise ConfigError(
            f"{path}: a run of task {store.task!r}, not {task.name!r}; resume it with "
            f"--task {store.task}, or start a new run"
        )
    if exists and not resume:
        rounds = {e.round for e in store.index}
        if rounds - {0} or (rows_file.exists() and rows_file.read_text().strip()):
            store.close()
            raise ConfigError(
                f"{path}: holds an earlier run (rounds {sorted(rounds)}); pass resume=True "
                "to continue it, or choose a new path"
            )
    return store
