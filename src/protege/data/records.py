"""Typed records of a store: its ``meta.json`` (:class:`StoreMeta`) and each line of
``episodes.jsonl`` (:class:`EpisodeRecord`), validated field by field when read.

Since format version 3 both carry a CRC32 of their own content: ``"crc"`` in ``meta.json``
(over its canonical JSON, sorted keys and no spaces, without that field) and ``"line_crc"``,
the last field of every index line (over the line's bytes before ``, "line_crc": ``).
Versions 1 (raw observations) and 2 (compressed frames), written by protege before, have
neither; they are read (every field still validated) and reported as unchecksummed, and
appends to them keep their format.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym

from protege.data.frames import CODEC
from protege.data.spaces import space_from_json, space_to_json
from protege.errors import DataError

FORMAT = "protege-store"
VERSION = 3
"""Format version of the stores protege writes: checksummed meta.json and index lines."""
OLD_VERSIONS = (1, 2)
"""Still read: 1 (raw observations) and 2 (compressed frames), without checksums."""
FIELDS = ("obs", "actions", "executed", "rewards", "actor", "labeled")
"""The per-step fields, one ``NAME.bin`` file each, in the order of an index line's CRCs."""

EXTRAS: dict[str, str] = {
    "episode": "index of the episode within its round (episodes collected by an interactive "
    "run; absent for demonstrations collected otherwise)",
    "queries": "times the expert was asked for an action during the episode",
    "interventions": "times the expert took over from the learner",
    "success": "1 if the task judged the episode a success, else 0",
    "attention_seconds": "seconds a person spent in control",
    "session_seconds": "seconds a person spent watching",
    "rl_update": "the RL update whose rollouts collected the episode (`protege finetune`; "
    "with `episode`, its index within that update)",
    "epsilon": "probability of a uniformly random action at each step of the source that "
    "collected the episode (`protege collect --mix`: 0 the expert, 1 a random policy)",
}
"""The known per-episode extras (``Episode.extras``) and what they hold. Gates add their own
counters (``robot_steps``, ``switch_novel``, ``takeover_unsafe``...) and thresholds
(``novelty_threshold``...); every extra is a number, never NaN."""

_COUNTS = ("episode", "queries", "interventions")
_SECONDS = ("attention_seconds", "session_seconds")
_U32 = 2**32
_MAX_STEPS = 2**40
_MAX_ROUND = 2**31


def canonical_crc(obj: dict[str, Any]) -> int:
    """CRC32 of ``obj`` as canonical JSON (sorted keys, no spaces, ASCII)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return zlib.crc32(text.encode())


class _Fields:
    """Typed access to the fields of one parsed JSON object; errors name ``where``."""

    def __init__(self, obj: Any, where: str):
        if not isinstance(obj, dict):
            raise DataError(f"{where} (not a JSON object)")
        self.obj, self.where = obj, where

    def error(self, key: str, problem: str) -> DataError:
        return DataError(f"{self.where} (field {key!r}: {problem})")

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.obj:
            if default is ...:
                raise self.error(key, "missing")
            return default
        return self.obj[key]

    def int(self, key: str, lo: int, hi: int, default: Any = ...) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(key, f"{value!r}; expected an integer in [{lo}, {hi}]")
        return value

    def bool(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.error(key, f"{value!r}; expected true or false")
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if not _is_number(value) or not math.isfinite(value):
            raise self.error(key, f"{value!r}; expected a finite number")
        return float(value)

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.obj) - allowed)
        if unknown:
            raise self.error(unknown[0], "unknown field")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_extras(extras: Any, where: str) -> dict[str, float]:
    """``extras`` as a ``dict[str, float]``, or a DataError naming the bad key: numbers only,
    never NaN; the known counts are non-negative integers, ``success`` 0 or 1, seconds finite
    and non-negative."""
    if not isinstance(extras, dict):
        raise DataError(f"{where} (field 'extras': expected an object)")
    out: dict[str, float] = {}
    for key, value in extras.items():
        if not isinstance(key, str) or not _is_number(value) or math.isnan(value):
            raise DataError(f"{where} (extra {key!r}: {value!r} is not a number)")
        v = float(value)
        if key in _COUNTS and not (0 <= v < 2**53 and v == int(v)):
            raise DataError(f"{where} (extra {key!r}: {value!r}; expected a count ≥ 0)")
        if key == "success" and v not in (0.0, 1.0):
            raise DataError(f"{where} (extra 'success': {value!r}; expected 0 or 1)")
        if key == "epsilon" and not 0.0 <= v <= 1.0:
            raise DataError(f"{where} (extra 'epsilon': {value!r}; expected a probability)")
        if key in _SECONDS and not (0 <= v < math.inf):
            raise DataError(f"{where} (extra {key!r}: {value!r}; expected seconds ≥ 0)")
        out[key] = v
    return out


@dataclass(frozen=True)
class PartRecord:
    """Where one observation stream of an episode is and its checksums: the single ``obs``
    of a Box store, or one part of a store of observation parts."""

    crc: int
    """CRC32 of the stream's bytes for this episode (compressed bytes for frames)."""
    start: int | None = None
    """Compressed frames only: byte offset of the episode's first frame in the stream's file."""
    nbytes: int | None = None
    """Compressed frames only: bytes its T+1 frames take."""
    idx_crc: int | None = None
    """Compressed frames only: CRC32 of its T+1 rows of the stream's ``.idx`` file."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"crc": self.crc}
        if self.nbytes is not None:
            out.update(start=self.start, bytes=self.nbytes, idx_crc=self.idx_crc)
        return out


def parts_crc(parts: dict[str, PartRecord]) -> int:
    """The ``obs`` CRC of an index line of a store of parts: CRC32 of its parts' CRC32s
    (little-endian uint32, in part order)."""
    return zlib.crc32(b"".join(p.crc.to_bytes(4, "little") for p in parts.values()))


@dataclass(frozen=True)
class EpisodeRecord:
    """One committed episode, as its line in ``episodes.jsonl`` describes it."""

    number: int
    """Its position in the store (0 for the first episode)."""
    start: int
    """Steps stored before it: the index of its first step in ``Store.transitions()``."""
    length: int
    """T ≥ 1 steps (T+1 observations)."""
    round: int
    """The round it was collected in (0 for demonstrations)."""
    terminated: bool
    truncated: bool
    seed: int | None
    """The env seed it was reset with, if known."""
    episode_return: float
    """Sum of its rewards (``"return"`` in the file)."""
    labels: int
    """Steps holding an expert label, 0 ≤ labels ≤ length."""
    learner_steps: int
    """Steps the learner acted, 0 ≤ learner_steps ≤ length."""
    crc: tuple[int, ...]
    """CRC32 of its bytes in each of :data:`FIELDS` (compressed bytes for frames)."""
    obs_start: int | None = None
    """Compressed frames only: byte offset of its first frame in ``obs.bin``."""
    obs_bytes: int | None = None
    """Compressed frames only: bytes its T+1 frames take in ``obs.bin``."""
    obs_idx_crc: int | None = None
    """Compressed frames only: CRC32 of its T+1 rows of ``obs.idx``."""
    extras: dict[str, float] = field(default_factory=dict, hash=False)
    """Numbers about the episode; see :data:`EXTRAS`."""
    obs_parts: dict[str, PartRecord] | None = field(default=None, hash=False)
    """Stores of observation parts only: each part's record (``"obs_parts"`` in the file);
    ``crc[0]`` is then :func:`parts_crc` of them."""

    def obs_stream(self, part: str | None) -> PartRecord:
        """The record of observation stream ``part`` (None: the one ``obs`` of a Box store)."""
        if part is None:
            return PartRecord(self.crc[0], self.obs_start, self.obs_bytes, self.obs_idx_crc)
        assert self.obs_parts is not None
        return self.obs_parts[part]

    @property
    def episode(self) -> int | None:
        """Its index within its round (the ``episode`` extra), None if not recorded."""
        value = self.extras.get("episode")
        return None if value is None else int(value)

    @property
    def queries(self) -> int:
        """Times the expert was asked during the episode; an episode that did not record it
        (demonstrations collected outside an interactive run) cost one query per label."""
        return int(self.extras.get("queries", self.labels))

    @property
    def interventions(self) -> int:
        """Times the expert took over from the learner (0 if not recorded)."""
        return int(self.extras.get("interventions", 0))

    @property
    def attention_seconds(self) -> float:
        """Seconds a person spent in control (0 for a scripted or simulated expert)."""
        return self.extras.get("attention_seconds", 0.0)

    def to_json(self, version: int = VERSION) -> dict[str, Any]:
        """The index line's object for a store of format ``version``, without its checksum."""
        head = {"number": self.number, "start": self.start} if version >= 3 else {}
        entry: dict[str, Any] = {
            **head,
            "length": self.length,
            "round": self.round,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "seed": self.seed,
            "return": self.episode_return,
            "labels": self.labels,
            "learner_steps": self.learner_steps,
            "crc": list(self.crc),
        }
        if self.obs_bytes is not None:
            if version >= 3:
                entry["obs_start"] = self.obs_start
            entry.update(obs_bytes=self.obs_bytes, obs_idx_crc=self.obs_idx_crc)
        if self.obs_parts is not None:
            entry["obs_parts"] = {k: p.to_json() for k, p in self.obs_parts.items()}
        if self.extras:
            entry["extras"] = dict(self.extras)
        return entry

    def to_line(self, version: int = VERSION) -> bytes:
        """The index line, newline included (and its ``line_crc`` from version 3 on)."""
        body = json.dumps(self.to_json(version)).encode()
        if version < 3:
            return body + b"\n"
        head = body[:-1]
        return head + b', "line_crc": %d}\n' % zlib.crc32(head)


_LINE_KEYS = {
    "length", "round", "terminated", "truncated", "seed", "return", "labels",
    "learner_steps", "crc", "obs_bytes", "obs_idx_crc", "extras",
}  # fmt: skip
_LINE_CRC = re.compile(rb', "line_crc": (\d{1,10})\}\Z')
_LINE_KEYS_V3 = _LINE_KEYS | {"number", "start", "obs_start", "line_crc", "obs_parts"}


def parse_record(
    line: bytes,
    where: str,
    number: int | None,
    version: int,
    compressed: bool,
    start: int | None = None,
    obs_start: int | None = None,
    parts: dict[str, bool] | None = None,
    parts_start: dict[str, int] | None = None,
) -> EpisodeRecord:
    """The record of index line ``line`` (without its newline), episode ``number`` (None: the
    number the line gives, format version 3 only).

    Every field is checked for type and range, the line's checksum (version 3), and, when
    given, that it starts where the previous episode ended (``start`` steps, ``obs_start``
    compressed bytes). A store of observation parts passes ``parts`` (each part's name:
    whether it is compressed) and ``parts_start`` (where each compressed part's previous
    frames end) instead of ``compressed`` and ``obs_start``. Raises a DataError
    ``"<where> is corrupt (field 'x': ...)"``."""
    where = f"{where} is corrupt"
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{where} ({exc})") from None
    f = _Fields(obj, where)
    f.only(_LINE_KEYS_V3 if version >= 3 else _LINE_KEYS)
    if version >= 3:
        tail = _LINE_CRC.search(line)
        if tail is None or f.int("line_crc", 0, _U32 - 1) != int(tail[1]):
            raise f.error("line_crc", "missing or not the line's last field")
        if zlib.crc32(line[: tail.start()]) != int(tail[1]):
            raise DataError(f"{where} (its line_crc does not match its content)")
        number = f.int("number", *((0, 2**62) if number is None else (number, number)))
    elif number is None:
        raise DataError(f"{where} (a line of format version {version} has no number)")
    length = f.int("length", 1, _MAX_STEPS)
    crc = f.get("crc")
    if not isinstance(crc, list) or len(crc) != len(FIELDS):
        raise f.error("crc", f"expected a list of {len(FIELDS)} CRC32 values")
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < _U32 for c in crc):
        raise f.error("crc", "expected a list of CRC32 values (integers in [0, 2**32))")
    seed = f.get("seed")
    if seed is not None and not (
        isinstance(seed, int) and not isinstance(seed, bool) and -(2**63) <= seed < 2**64
    ):
        raise f.error("seed", f"{seed!r}; expected null or an integer")
    frames: dict[str, Any] = {}
    if parts is not None:
        frames["obs_parts"] = _parse_parts(f, parts, length, parts_start)
        if crc[0] != parts_crc(frames["obs_parts"]):
            raise f.error("crc", "its obs CRC32 is not that of its obs_parts")
    elif "obs_parts" in obj:
        raise f.error("obs_parts", "a store of one observation array has no parts")
    if compressed and parts is None:
        frames["obs_bytes"] = f.int("obs_bytes", length + 1, 2**62)
        frames["obs_idx_crc"] = f.int("obs_idx_crc", 0, _U32 - 1)
        if version >= 3:
            frames["obs_start"] = f.int("obs_start", 0, 2**62)
    else:
        for key in ("obs_bytes", "obs_idx_crc", "obs_start"):
            if key in obj:
                raise f.error(key, "a store of raw observations has no frame offsets")
    record = EpisodeRecord(
        number=number,
        start=f.int("start", 0, 2**62) if version >= 3 else (start or 0),
        length=length,
        round=f.int("round", 0, _MAX_ROUND),
        terminated=f.bool("terminated"),
        truncated=f.bool("truncated"),
        seed=seed,
        episode_return=f.number("return"),
        labels=f.int("labels", 0, length, default=length if version < 3 else ...),
        learner_steps=f.int("learner_steps", 0, length, default=0 if version < 3 else ...),
        crc=tuple(crc),
        extras=check_extras(f.get("extras", {}), where),
        **frames,
    )
    if start is not None and record.start != start:
        raise f.error("start", f"{record.start}; the previous episodes end at step {start}")
    if (
        compressed
        and parts is None
        and obs_start is not None
        and version >= 3
        and record.obs_start != obs_start
    ):
        raise f.error("obs_start", f"{record.obs_start}; the previous frames end at {obs_start}")
    if compressed and version < 3:
        record = replace(record, obs_start=obs_start or 0)
    return record


def _parse_parts(
    f: _Fields, parts: dict[str, bool], length: int, parts_start: dict[str, int] | None
) -> dict[str, PartRecord]:
    value = f.get("obs_parts")
    if not isinstance(value, dict) or list(value) != list(parts):
        raise f.error("obs_parts", f"expected an object of the parts {list(parts)}, in order")
    out = {}
    for name, compressed in parts.items():
        p = _Fields(value[name], f"{f.where} (obs_parts {name!r})")
        keys = {"crc", "start", "bytes", "idx_crc"} if compressed else {"crc"}
        p.only(keys)
        crc = p.int("crc", 0, _U32 - 1)
        if not compressed:
            out[name] = PartRecord(crc)
            continue
        rec = PartRecord(
            crc, p.int("start", 0, 2**62), p.int("bytes", length + 1, 2**62),
            p.int("idx_crc", 0, _U32 - 1),
        )  # fmt: skip
        if parts_start is not None and rec.start != parts_start.get(name, 0):
            want = parts_start.get(name, 0)
            raise p.error("start", f"{rec.start}; the previous frames end at {want}")
        out[name] = rec
    return out


# --------------------------------------------------------------------------- meta.json
@dataclass(frozen=True)
class StoreMeta:
    """What ``meta.json`` says: format version, task, spaces, observation codec."""

    version: int
    task: str | None
    observation_space: gym.Space
    action_space: gym.Space
    obs_codec: str | None = None
    """``"zlib"`` if observations are stored as compressed frames, else None."""
    obs_codec_level: int | None = None
    """The zlib level (1-9) frames are compressed with."""
    obs_codec_parts: tuple[str, ...] = ()
    """A store of observation parts: the parts stored as compressed frames (the others raw)."""

    @property
    def parts(self) -> dict[str, bool] | None:
        """A store of observation parts (a Dict observation space): each part's name and
        whether it is stored compressed; None for a store of one observation array."""
        if not isinstance(self.observation_space, gym.spaces.Dict):
            return None
        return {name: name in self.obs_codec_parts for name in self.observation_space.spaces}

    @property
    def checksummed(self) -> bool:
        """Whether meta.json and the index lines carry checksums (version 3 on)."""
        return self.version >= 3

    def to_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "task": self.task,
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
        }
        if self.obs_codec is not None:
            meta.update(obs_codec=self.obs_codec, obs_codec_level=self.obs_codec_level)
            if self.parts is not None:
                meta["obs_codec_parts"] = list(self.obs_codec_parts)
        if self.version >= 3:
            meta["crc"] = canonical_crc(meta)
        return meta


_META_KEYS = {"format", "version", "task", "observation_space", "action_space"}
_CODEC_KEYS = {"obs_codec", "obs_codec_level"}
_PARTS_CODEC_KEYS = _CODEC_KEYS | {"obs_codec_parts"}


def parse_meta(text: bytes, where: str) -> StoreMeta:
    """The validated content of a ``meta.json``; raises a DataError naming ``where``."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{where}: corrupt JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise DataError(f"{where}: not a protege store (format field is missing)")
    version = obj.get("version")
    if version not in (*OLD_VERSIONS, VERSION) or isinstance(version, bool):
        raise DataError(f"{where}: store version {version!r}; expected {VERSION} (or 1, 2)")
    f = _Fields(obj, f"{where}: corrupt")
    if version >= 3:
        written = f.int("crc", 0, _U32 - 1)
        if canonical_crc({k: v for k, v in obj.items() if k != "crc"}) != written:
            raise DataError(f"{where}: corrupt (its crc does not match its content)")
    compressed = version == 2 or (version >= 3 and "obs_codec" in obj)
    desc = obj.get("observation_space")
    has_parts = isinstance(desc, dict) and desc.get("kind") == "dict"
    if has_parts and version < 3:
        raise DataError(f"{where}: a store of version {version} has no observation parts")
    codec_keys = _PARTS_CODEC_KEYS if has_parts else _CODEC_KEYS
    allowed = _META_KEYS | (codec_keys if compressed else set())
    f.only(allowed | ({"crc"} if version >= 3 else set()))
    codec = level = None
    if compressed:
        codec = f.get("obs_codec")
        if codec != CODEC:
            raise DataError(f"{where}: unknown observation codec {codec!r}")
        level = f.int("obs_codec_level", 1, 9, default=6 if version < 3 else ...)
    task = f.get("task")
    if task is not None and not isinstance(task, str):
        raise f.error("task", f"{task!r}; expected a name or null")
    obs = space_from_json(f.get("observation_space"), f"{where}: observation_space", True)
    act = space_from_json(f.get("action_space"), f"{where}: action_space")
    coded: tuple[str, ...] = ()
    if compressed and isinstance(obs, gym.spaces.Dict):
        names = f.get("obs_codec_parts")
        if (
            not isinstance(names, list)
            or not names
            or len(set(names)) != len(names)
            or not all(isinstance(n, str) and n in obs.spaces for n in names)
        ):
            raise f.error("obs_codec_parts", f"{names!r}; expected a list of distinct parts")
        coded = tuple(n for n in obs.spaces if n in names)
    return StoreMeta(version, task, obs, act, codec, level, coded)
