"""robomimic's HDF5 dataset layout, read and written with h5py.

The layout (as robomimic 0.3 reads it)::

    data                  attrs: env_args (JSON: env_name, type, env_kwargs), total (steps)
    data/demo_0           attrs: num_samples (T)
    data/demo_0/obs/<key>        (T, *shape): float state vectors, uint8 (H, W, C) images
    data/demo_0/next_obs/<key>   (T, *shape): the observation after each step
    data/demo_0/actions          (T, A) float32
    data/demo_0/rewards          (T,) float64
    data/demo_0/dones            (T,) float64, 1 where the episode ended
    mask/<split>          names of the demos in a split (train, valid), as bytes

Each ``obs/<key>`` is the protege part ``<key>``. The final observation (T+1-th) is
``next_obs[T-1]``; on export ``obs`` holds rows 0..T-1 of an episode's observations and
``next_obs`` rows 1..T, so a round trip is exact. ``dones[T-1]`` is the episode's
``terminated`` flag (an episode that did not terminate is read back as truncated).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from protege.data.episode import Episode
from protege.data.external import (
    ExternalDataset,
    LazyEpisodes,
    action_space_of,
    check_parts,
    choose_parts,
    is_image,
)
from protege.errors import DataError

GYM_ENV_TYPE = 2
"""robomimic's ``EnvType.GYM_TYPE``: what ``env_args["type"]`` says for a gymnasium task."""
VALID_FRACTION = 0.1
"""Share of demos (at least one, when there are two or more) in the ``valid`` mask written
for a dataset that has no masks of its own: the last ones."""


def _demo_number(name: str) -> tuple[int, str]:
    m = re.fullmatch(r"demo_(\d+)", name)
    return (int(m.group(1)) if m else 1 << 62, name)


def read_robomimic(path: str | os.PathLike, parts: list[str] | None = None) -> ExternalDataset:
    """Read the robomimic HDF5 file at ``path``: one episode per ``data/demo_*`` group, in
    demo-number order; ``parts`` keeps only the ``obs`` keys named.

    The metadata (and every demo's actions) is read and checked now; the episodes are loaded
    when indexed or iterated (:class:`~protege.data.external.LazyEpisodes`). Raises a
    DataError naming the file (and group) that is malformed.
    """
    import h5py

    path = Path(path)
    with _open(path) as f:
        if not isinstance(f.get("data"), h5py.Group):
            raise DataError(f"{path}: no 'data' group; not a robomimic dataset")
        data = f["data"]
        demos = sorted(data.keys(), key=_demo_number)
        if not demos:
            raise DataError(f"{path}: the 'data' group has no demos")
        first = data[demos[0]]
        if not isinstance(first.get("obs"), h5py.Group) or not len(first["obs"]):
            raise DataError(f"{path}: data/{demos[0]} has no obs datasets")
        keys = choose_parts({k: k for k in first["obs"]}, parts, str(path))
        spec = {}
        for key in keys:
            ds = first["obs"][key]
            shape = tuple(ds.shape[1:]) or (1,)
            spec[key] = (shape, np.dtype(np.uint8 if is_image(shape, ds.dtype) else np.float32))
        actions = [_actions(data[name], f"{path}: data/{name}") for name in demos]
        info: dict[str, Any] = {}
        if "env_args" in data.attrs:
            raw = data.attrs["env_args"]
            try:
                info["env_args"] = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
                raise DataError(f"{path}: data.attrs['env_args'] is not JSON") from None
        masks = f.get("mask")
        if isinstance(masks, h5py.Group):
            info["masks"] = {
                split: [n.decode() if isinstance(n, bytes) else str(n) for n in masks[split][()]]
                for split in masks
                if isinstance(masks[split], h5py.Dataset)
            }
    notes: list[str] = []

    def load(i: int) -> Episode:
        where = f"{path}: data/{demos[i]}"
        with _open(path) as f:
            ep, same = _read_demo(f["data"][demos[i]], where, list(keys))
        check_parts(ep, spec, where)
        if not same and not notes:
            notes.append(
                f"next_obs is not obs shifted by one step (first in {demos[i]}); protege keeps "
                "obs and takes only the last next_obs as the final observation"
            )
        return ep

    return ExternalDataset(
        episodes=LazyEpisodes(len(demos), load),
        keys=keys,
        info=info,
        notes=notes,
        parts=spec,
        action_space=action_space_of(np.concatenate(actions)),
    )


def _open(path: Path) -> Any:
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not an HDF5 file ({exc})") from None


def _actions(group: Any, where: str) -> np.ndarray:
    if "actions" not in group:
        raise DataError(f"{where}: no 'actions'")
    actions = np.asarray(group["actions"][()])
    if len(actions) == 0:
        raise DataError(f"{where}: no steps")
    if actions.dtype.kind == "f":
        return actions.astype(np.float32)
    if actions.dtype.kind in "iu" and actions.ndim == 2 and actions.shape[1] == 1:
        return actions[:, 0].astype(np.int64)
    raise DataError(f"{where}: actions of dtype {actions.dtype}, shape {actions.shape}")


def _read_demo(group: Any, where: str, keys: list[str]) -> tuple[Episode, bool]:
    """One demo as an Episode, and whether its next_obs equals its obs shifted by one."""
    import h5py

    actions = _actions(group, where)
    t = len(actions)
    obs: dict[str, np.ndarray] = {}
    same = True
    next_obs = group.get("next_obs")
    for key in keys:
        ds = group.get(f"obs/{key}")
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{where}: no dataset obs/{key}")
        rows = np.asarray(ds[()])
        if rows.ndim == 1:
            rows = rows[:, None]
        if len(rows) != t:
            raise DataError(f"{where}: obs/{key} has {len(rows)} rows; actions have {t}")
        if not is_image(rows.shape[1:], rows.dtype):
            rows = rows.astype(np.float32)
        final = rows[-1:]
        if next_obs is not None and key in next_obs:
            nxt = np.asarray(next_obs[key][()])
            if nxt.size != rows.size:
                raise DataError(f"{where}: next_obs/{key} has shape {nxt.shape}; obs {rows.shape}")
            nxt = nxt.reshape(rows.shape).astype(rows.dtype)
            final = nxt[-1:]
            same = same and np.array_equal(nxt[:-1], rows[1:])
        obs[key] = np.concatenate([rows, final])
    rewards = np.zeros(t, np.float32)
    if "rewards" in group:
        rewards = np.asarray(group["rewards"][()], np.float32).reshape(-1)
    if len(rewards) != t:
        raise DataError(f"{where}: rewards has {len(rewards)} rows; actions have {t}")
    done = bool(np.asarray(group["dones"][()]).reshape(-1)[-1]) if "dones" in group else False
    return Episode(obs, actions, rewards, terminated=done, truncated=not done), same


def write_robomimic(data: ExternalDataset, out: str | os.PathLike) -> Path:
    """Write ``data`` as a robomimic HDF5 file at ``out`` (which must not exist); returns it.

    Images are gzip-compressed (as robomimic's own conversion scripts do), other datasets
    are stored plain. ``mask/train`` and ``mask/valid`` come from the source's masks when it
    had them, else the last :data:`VALID_FRACTION` of demos is ``valid``.
    """
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists")
    if not len(data.episodes):
        raise DataError(f"{out}: no episodes to write")
    env_args = data.info.get("env_args") or {
        "env_name": data.info.get("task") or "protege",
        "type": GYM_ENV_TYPE,
        "env_kwargs": {},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        _write(data, tmp, env_args, str(out))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _write(data: ExternalDataset, tmp: Path, env_args: Any, where: str) -> None:
    import h5py

    keys = {p: data.keys.get(p) or p for p in data.parts}
    keys = {p: (k if "/" not in k and "." not in k else p) for p, k in keys.items()}
    names = [f"demo_{i}" for i in range(len(data.episodes))]
    with h5py.File(tmp, "w") as f:
        group = f.create_group("data")
        total = 0
        for name, ep in zip(names, data.episodes, strict=True):
            check_parts(ep, data.parts, f"{where}: episode {name}")
            t = len(ep)
            demo = group.create_group(name)
            demo.attrs["num_samples"] = np.int64(t)
            for where, rows in (("obs", slice(0, t)), ("next_obs", slice(1, t + 1))):
                sub = demo.create_group(where)
                for part, key in keys.items():
                    values = np.asarray(ep.obs[part][rows])
                    image = is_image(values.shape[1:], values.dtype)
                    sub.create_dataset(
                        key,
                        data=values if image else values.astype(np.float32),
                        compression="gzip" if image else None,
                    )
            actions = np.asarray(ep.actions)
            demo.create_dataset(
                "actions",
                data=actions.astype(np.float32) if actions.dtype.kind == "f" else actions[:, None],
            )
            demo.create_dataset("rewards", data=np.asarray(ep.rewards, np.float64))
            dones = np.zeros(t, np.float64)
            dones[-1] = float(ep.terminated)
            demo.create_dataset("dones", data=dones)
            total += t
        group.attrs["env_args"] = json.dumps(env_args)
        group.attrs["total"] = np.int64(total)
        masks = _masks(data.info.get("masks"), names)
        mask = f.create_group("mask")
        for split, members in masks.items():
            mask.create_dataset(split, data=np.array(members, dtype="S"))


def _masks(given: Any, names: list[str]) -> dict[str, list[str]]:
    if isinstance(given, dict) and given:
        known = set(names)
        kept = {s: [n for n in m if n in known] for s, m in given.items() if isinstance(m, list)}
        if kept:
            return kept
    n_valid = max(1, round(VALID_FRACTION * len(names))) if len(names) >= 2 else 0
    return {"train": names[: len(names) - n_valid], "valid": names[len(names) - n_valid :]}
