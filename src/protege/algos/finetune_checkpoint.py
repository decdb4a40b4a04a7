"""A fine-tuning run's resumable checkpoint: the learner's state after its latest update.

``checkpoint/state.json`` (settings, evaluations, history, the learner's numbers) names a
``learner-NNNNNN.safetensors`` of its tensors; :func:`write_checkpoint` writes the weights
first (fsynced), then the JSON atomically, so a crash at any point leaves a complete one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from protege.data.files import write_atomic
from protege.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from protege.algos.finetune import FinetuneResult
    from protege.algos.ppo import PPO
    from protege.algos.sac import SAC

CHECKPOINT_FORMAT = "protege-finetune-checkpoint"


def optimizer_tensors(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
    """Each optimizer's per-parameter state as ``{name}.{param index}.{key}`` tensors."""
    tensors = {}
    for name, opt in optimizers.items():
        for i, state in opt.state_dict()["state"].items():
            for k, v in state.items():
                tensors[f"{name}.{i}.{k}"] = torch.as_tensor(v)
    return tensors


def part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``{prefix}.…``, with the prefix taken off."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_optimizers(
    optimizers: dict[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor]
) -> None:
    """Restore what :func:`optimizer_tensors` saved (hyperparameters stay the optimizers')."""
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in part(tensors, name).items():
            i, k = key.split(".", 1)
            state.setdefault(int(i), {})[k] = v
        sd["state"] = state
        opt.load_state_dict(sd)


def write_checkpoint(
    ckpt: Path, learner: PPO | SAC, settings: dict[str, Any], result: FinetuneResult
) -> None:
    """Weights to a new file (fsynced), then ``state.json`` naming it atomically, then the
    older weights removed: a crash at any point leaves a complete checkpoint."""
    ckpt.mkdir(parents=True, exist_ok=True)
    tensors, numbers = learner.state()
    name = f"learner-{learner.updates:06d}.safetensors"
    save_file(tensors, str(ckpt / name), metadata={"format": CHECKPOINT_FORMAT})
    fd = os.open(ckpt / name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    state = {
        "format": CHECKPOINT_FORMAT,
        "weights": name,
        "numbers": numbers,
        "settings": settings,
        "evals": result.evals,
        "history": result.history,
        "wall_seconds": result.wall_seconds,
    }
    write_atomic(ckpt / "state.json", json.dumps(state))
    for old in ckpt.glob("learner-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_checkpoint(ckpt: Path) -> dict[str, Any] | None:
    file = ckpt / "state.json"
    if not file.exists():
        return None
    try:
        state = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file}: corrupt JSON ({exc})") from None
    keys = {"format", "weights", "numbers", "settings", "evals", "history", "wall_seconds"}
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file}: not a protege fine-tuning checkpoint")
    if set(state) != keys:
        raise CheckpointError(f"{file}: expected the fields {sorted(keys)}")
    weights = state["weights"]
    if not isinstance(weights, str) or "/" in weights or not (ckpt / weights).is_file():
        raise CheckpointError(f"{file}: field 'weights' names no file in {ckpt}")
    return state


def check_same(out: Path, recorded: dict[str, Any], now: dict[str, Any]) -> None:
    """A resumed run must train as the interrupted one did; only ``steps`` may change."""
    a = json.loads(json.dumps(recorded))
    b = json.loads(json.dumps(now))
    a["finetune"].pop("steps", None)
    b["finetune"].pop("steps", None)
    if a != b:
        diff = []
        for part in sorted(set(a) | set(b)):
            x, y = a.get(part), b.get(part)
            if isinstance(x, dict) and isinstance(y, dict):
                diff += sorted(f"{part}.{k}" for k in set(x) | set(y) if x.get(k) != y.get(k))
            elif x != y:
                diff.append(part)
        raise ConfigError(
            f"{out}: the run was started with other settings ({', '.join(diff)}); "
            "resume with the same settings, or start a new run"
        )
