"""Reading a store's ``meta.json`` and ``episodes.jsonl`` from disk, every field validated."""

from __future__ import annotations

import json
from pathlib import Path

from protege.data.files import file_size, read_bytes, require_size
from protege.data.records import EpisodeRecord, StoreMeta, parse_meta, parse_record
from protege.errors import DataError


def read_meta(path: Path) -> StoreMeta:
    """The validated ``meta.json`` of the store at ``path``."""
    try:
        is_dir = path.is_dir()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not is_dir:
        if path.exists():
            raise DataError(f"{path}: not a directory, so not a protege store")
        raise DataError(f"{path}: no such store (the directory does not exist)")
    meta_path = path / "meta.json"
    if file_size(meta_path) is None:
        raise DataError(f"{meta_path}: missing; {path} is not a protege store")
    return parse_meta(read_bytes(meta_path), str(meta_path))


def read_index(file: Path, meta: StoreMeta | None = None) -> list[EpisodeRecord]:
    """The committed episodes' records, every line validated (``meta``: the store's, read
    from the same directory if not given).

    The last line, if it has no newline, is an append interrupted by a crash, not committed;
    it must look like one (the beginning of an index line), else the file is corrupt."""
    if meta is None:
        meta = read_meta(file.parent)
    raw = read_bytes(file) if require_size(file) else b""
    lines = raw.split(b"\n")
    torn = lines.pop()
    check_torn(torn, file, len(lines) + 1)
    compressed = meta.obs_codec is not None
    index: list[EpisodeRecord] = []
    start = obs_start = 0
    parts_start = dict.fromkeys(meta.obs_codec_parts, 0)
    for n, line in enumerate(lines):
        record = parse_record(
            line,
            f"{file}: line {n + 1}",
            n,
            meta.version,
            compressed,
            start,
            obs_start,
            meta.parts,
            parts_start,
        )
        start += record.length
        obs_start += record.obs_bytes or 0
        advance_parts(parts_start, record)
        index.append(record)
    return index


def advance_parts(parts_start: dict[str, int], record: EpisodeRecord) -> None:
    """Move each compressed part's expected start past ``record``'s frames."""
    for name in parts_start:
        parts_start[name] += int(record.obs_stream(name).nbytes or 0)


def check_torn(tail: bytes, file: Path, line: int) -> None:
    """A torn append is a prefix of an index line: printable ASCII from ``{"``, and not a
    complete line followed by more bytes."""
    if not tail:
        return
    printable = all(32 <= b < 127 for b in tail)
    if printable and tail.startswith(b'{"'[: len(tail)]):
        try:
            _, end = json.JSONDecoder().raw_decode(tail.decode())
        except (json.JSONDecodeError, RecursionError):
            return  # the beginning of a line
        if end == len(tail):
            return  # a complete line without its newline: not committed
    raise DataError(
        f"{file}: line {line} is corrupt (the last line has no newline and is not the "
        "beginning of an index line)"
    )
