"""How episodes become part of a store: checked, encoded, written, made durable, then counted.

:meth:`protege.data.store.Store.append_group` commits a group of episodes at once (a *group
commit*); :meth:`~protege.data.store.Store.append` and
:meth:`~protege.data.store.Store.extend` commit one episode at a time, each a group of one.
A commit runs in three steps:

1. **Encode.** Every episode of the group is checked and encoded, its index record numbered
   and placed after the committed episodes and the group's earlier ones (:func:`encode`). A
   bad episode raises here, before any byte is written.
2. **Write the rows.** Each data file gets the group's bytes in one append and one fsync
   (the frame offsets, ``obs*.idx``, before the rest, as for one episode).
3. **Commit.** The group's index lines are appended to ``episodes.jsonl`` in one write and
   fsynced: once a line (with its newline) is on disk, its episode exists. Only then does
   the store count the group (its index, ``len(store)``) and the caller learn of it.

A crash before step 3 leaves bytes past the committed episodes, which the next writer
(``Store.open(path, writable=True)``) cuts off once everything committed has verified: the
store is as it was. A crash during step 3 can leave the first lines of the group whole and
the next one torn (cut off the same way): an episode is never half there. So a crash loses
at most the group being committed, one fsync of every file instead of one per episode.

Example:
    >>> store.append_group(episodes)  # len(store) grows by len(episodes) once all are on disk
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.data import obs_streams
from protege.data.episode import Episode
from protege.data.records import FIELDS, EpisodeRecord, StoreMeta, check_extras, parse_record
from protege.data.spaces import check_obs_rows, check_rows
from protege.errors import DataError

INDEX = "episodes.jsonl"
"""The file whose lines commit episodes."""


@dataclass
class Group:
    """A group of episodes encoded for a store, not yet written."""

    files: dict[str, list[bytes]]
    """Data file name → each episode's bytes for it, in the order the files are written."""
    records: list[EpisodeRecord]
    """Each episode's index record, numbered after the committed episodes."""
    lines: list[bytes]
    """Each record's index line (with its newline)."""


def encode_rows(ep: Episode, meta: StoreMeta, where: str) -> dict[str, np.ndarray]:
    """The episode's fields, checked against the store's spaces and cast to its dtypes."""
    obs = check_obs_rows(ep.obs, meta.observation_space, where)
    actions = check_rows(ep.actions, meta.action_space, "actions", where)
    executed = check_rows(ep.executed_actions, meta.action_space, "executed actions", where)
    rewards = np.asarray(ep.rewards, np.float32).reshape(len(ep))
    if not np.all(np.isfinite(rewards)):
        raise DataError(f"{where}: rewards contain NaN or inf")
    return {
        "obs": obs,
        "actions": np.ascontiguousarray(actions),
        "executed": np.ascontiguousarray(executed),
        "rewards": rewards,
        "actor": np.asarray(ep.actors, np.uint8),
        "labeled": np.asarray(ep.label_mask, np.uint8),
    }


def encode(
    path: Path,
    meta: StoreMeta,
    streams: list[obs_streams.ObsStream],
    level: int,
    index: list[EpisodeRecord],
    episodes: Sequence[Episode],
) -> Group:
    """Check and encode ``episodes`` to follow the committed ``index`` (nothing is written;
    a DataError names the first bad episode)."""
    files: dict[str, list[bytes]] = {}
    records: list[EpisodeRecord] = []
    lines: list[bytes] = []
    start = sum(e.length for e in index)
    for episode in episodes:
        number = len(index) + len(records)
        where = f"{path}: episode {number}"
        rows = encode_rows(episode, meta, where)
        before = [*index, *records] if records else index  # frames start after these
        obs = obs_streams.encode(streams, rows["obs"], level, before)
        data = {f"{name}.bin": rows[name].tobytes() for name in FIELDS[1:]}
        crc = (obs.crc, *(zlib.crc32(data[f"{name}.bin"]) for name in FIELDS[1:]))
        record = EpisodeRecord(
            number=number,
            start=start,
            length=len(episode),
            round=int(episode.round),
            terminated=bool(episode.terminated),
            truncated=bool(episode.truncated),
            seed=episode.seed,
            episode_return=episode.episode_return,
            labels=int(rows["labeled"].sum()),
            learner_steps=int((rows["actor"] == 1).sum()),
            crc=crc,
            extras=check_extras(dict(episode.extras), f"{where}: extras"),
            **obs.record,
        )
        line = record.to_line(meta.version)
        # Only what a reader accepts is written (round ≥ 0, a finite return, ...).
        parse_record(
            line[:-1],
            where,
            number,
            meta.version,
            meta.obs_codec is not None,
            parts=meta.parts,
        )
        # Offsets first, then the rows, as before parts existed: obs.idx, obs.bin, ...
        ordered = sorted(obs.data, key=lambda n: not n.endswith(".idx"))
        for name, blob in [*((n, obs.data[n]) for n in ordered), *data.items()]:
            files.setdefault(name, []).append(blob)
        records.append(record)
        lines.append(line)
        start += len(episode)
    return Group(files, records, lines)


def write(path: Path, group: Group, append: Callable[[Path, bytes], None]) -> None:
    """Write ``group``'s rows, then commit it: ``append(file, data)`` appends and fsyncs
    (:func:`protege.data.files.append_durably`), once per file and once for the index."""
    if not group.records:
        return
    for name, blobs in group.files.items():
        append(path / name, b"".join(blobs))
    # The commit: once a line (with its newline) is on disk, its episode exists.
    append(path / INDEX, b"".join(group.lines))
