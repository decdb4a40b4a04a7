"""A bounded random-mutation fuzzer of stores (used by test_store_fuzz.py and
benchmarks/store_fuzz.py).

Three kinds of small stores (Box observations with Box actions, Discrete actions, compressed
image frames) are mutated once each — a bit flip, a byte overwritten, a truncation, bytes
appended, a file deleted, an index line deleted, repeated or swapped, a field of an index line
or of meta.json given another value, a file replaced by a FIFO, a directory or a symlink loop —
then read back and opened for writing. Every outcome must be one of:

* ``error:<Class>``  a protege error (``ProtegeError`` subclass), and a writer refused too,
  leaving every file as it was;
* ``identical``      the same records and arrays as the original (a writer may cut stray
  bytes, after which the store still reads identical);
* ``prefix``         the first k episodes exactly, from a mutation that removed the end of
  ``episodes.jsonl``: what a crash before the last commit leaves, and indistinguishable from
  it.

Anything else is a defect: ``foreign:<Class>`` (another exception, or a hang), ``changed``
(read back different without an error), ``writer:<what>`` (a writer destroyed or accepted
what a reader refuses).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import LEARNER, Episode
from protege.data.store import Store
from protege.errors import ProtegeError

KINDS = ("box", "discrete", "frames")
FILES = {
    "box": ["meta.json", "episodes.jsonl", "obs.bin", "actions.bin", "executed.bin",
            "rewards.bin", "actor.bin", "labeled.bin", ".lock"],
}  # fmt: skip
FILES["discrete"] = FILES["box"]
FILES["frames"] = [*FILES["box"], "obs.idx"]

VALUES: list[Any] = [
    -1, 0, 1, 2, 3, 7, 2**31, 2**40, 2**64, -(2**63) - 1, 0.5, -0.0, 1e308, float("inf"),
    float("nan"), "x", "", None, True, False, [], {}, [0], {"a": 1}, "float64", "int32",
    "uint8", "zlib", "box", "discrete",
]  # fmt: skip


def _episode(kind: str, rng: np.random.Generator, t: int, r: int) -> Episode:
    if kind == "frames":
        obs = np.repeat(rng.integers(0, 255, (t + 1, 4, 4, 1), np.uint8), 3, axis=3)
        obs = np.repeat(np.repeat(obs, 3, axis=1), 3, axis=2)
    else:
        obs = rng.normal(size=(t + 1, 3)).astype(np.float32)
    if kind == "discrete":
        actions = rng.integers(0, 4, t)
    else:
        actions = rng.uniform(-1, 1, (t, 2)).astype(np.float32)
    actor = (rng.random(t) < 0.3).astype(np.uint8) * LEARNER
    return Episode(
        obs=obs,
        actions=actions,
        rewards=rng.normal(size=t).astype(np.float32),
        terminated=bool(rng.random() < 0.5),
        truncated=bool(rng.random() < 0.3),
        executed=actions[::-1].copy(),
        actor=actor,
        labeled=(actor == 0) | (rng.random(t) < 0.5),
        round=r,
        seed=int(rng.integers(0, 2**32)),
        extras={"episode": float(r), "queries": float(t), "success": 1.0, "novelty": 0.25},
    )


def make_store(kind: str, path: Path, seed: int) -> None:
    """A small store of ``kind`` (2 to 4 episodes of 1 to 8 steps)."""
    rng = np.random.default_rng(seed)
    obs_space: gym.Space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space: gym.Space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    if kind == "frames":
        obs_space = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
    if kind == "discrete":
        act_space = gym.spaces.Discrete(4)
    with Store.create(path, obs_space, act_space, task=kind) as store:
        for r in range(int(rng.integers(2, 5))):
            store.append(_episode(kind, rng, int(rng.integers(1, 9)), r))


def snapshot(path: Path) -> dict[str, Any]:
    """Everything a reader gets from the store (raises what reading raises)."""
    store = Store.open(path)
    out: dict[str, Any] = {"meta": store.meta, "index": store.index}
    if len(store):
        data = store.transitions()
        out["arrays"] = {
            "obs": np.asarray(data.obs),
            **{k: getattr(data, k) for k in ("actions", "executed", "rewards", "actor")},
            "labeled": data.labeled,
            "rounds": data.rounds,
        }
        out["episodes"] = [(e.obs, e.actions, e.seed, e.round) for e in store.episodes()]
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _prefix(snap: dict[str, Any], original: dict[str, Any]) -> bool:
    k = len(snap["index"])
    if not 0 <= k < len(original["index"]) or not _same(snap["meta"], original["meta"]):
        return False
    if not _same(snap["index"], original["index"][:k]):
        return False
    return k == 0 or _same(snap["episodes"], original["episodes"][:k])


# ----------------------------------------------------------------------------- mutations
def _line_edit(path: Path, rng: np.random.Generator, file: str) -> str:
    lines = (path / file).read_bytes().splitlines(keepends=True)
    n = int(rng.integers(len(lines)))
    obj = json.loads(lines[n]) if file == "episodes.jsonl" else json.loads(b"".join(lines))
    target, key = _pick_key(obj, rng)
    value = VALUES[int(rng.integers(len(VALUES)))]
    if (
        rng.random() < 0.3
        and isinstance(target[key], (int, float))
        and not isinstance(target[key], bool)
    ):
        value = target[key] + int(rng.choice([-1, 1]))
    target[key] = value
    text = json.dumps(obj).encode()
    if file == "episodes.jsonl":
        lines[n] = text + b"\n"
        (path / file).write_bytes(b"".join(lines))
    else:
        (path / file).write_bytes(text)
    return f"field {key!r} = {value!r}"


def _pick_key(obj: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """A random (container, key) inside ``obj``, nested dicts and lists included."""
    target: Any = obj
    while True:
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        key = keys[int(rng.integers(len(keys)))]
        inner = target[key]
        if isinstance(inner, (dict, list)) and inner and rng.random() < 0.6:
            target = inner
            continue
        return target, key


def mutate(path: Path, kind: str, rng: np.random.Generator) -> str:
    """Apply one random mutation to the store at ``path``; returns what it did."""
    op = str(rng.choice(MUTATIONS))
    file = str(rng.choice(FILES[kind]))
    target = path / file
    if op in ("line delete", "line repeat", "line swap", "index edit"):
        file = "episodes.jsonl"
        target = path / file
    if op == "meta edit":
        file, target = "meta.json", path / "meta.json"
    if not target.exists() and op not in ("fifo", "directory", "symlink loop"):
        op = "fifo"  # .lock does not exist in a fresh copy
    raw = target.read_bytes() if target.exists() else b""
    if op in ("bit flip", "byte set") and raw:
        at = int(rng.integers(len(raw)))
        data = bytearray(raw)
        data[at] = (
            data[at] ^ (1 << int(rng.integers(8))) if op == "bit flip" else int(rng.integers(256))
        )
        target.write_bytes(bytes(data))
        return f"{op} {file}[{at}]"
    if op == "truncate" and raw:
        size = int(rng.integers(len(raw)))
        os.truncate(target, size)
        return f"truncate {file} to {size} of {len(raw)}"
    if op == "append":
        extra = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), np.uint8))
        if file == "episodes.jsonl" and rng.random() < 0.5:
            extra = raw.splitlines(keepends=True)[-1][: len(extra)]
        with open(target, "ab") as f:
            f.write(extra)
        return f"append {len(extra)} bytes to {file}"
    if op == "delete":
        target.unlink()
        return f"delete {file}"
    if op in ("line delete", "line repeat", "line swap"):
        lines = raw.splitlines(keepends=True)
        i, j = (int(x) for x in rng.integers(len(lines), size=2))
        if op == "line delete":
            del lines[i]
        elif op == "line repeat":
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        target.write_bytes(b"".join(lines))
        return f"{op} {i} {j}"
    if op in ("index edit", "meta edit"):
        return f"{op}: " + _line_edit(path, rng, file)
    if target.exists():
        target.unlink()
    if op == "directory":
        target.mkdir()
    elif op == "symlink loop":
        target.symlink_to(target.name)
    else:
        op = "fifo"
        os.mkfifo(target)
    return f"{op} as {file}"


MUTATIONS = [
    "bit flip", "bit flip", "bit flip", "byte set", "truncate", "append", "delete",
    "line delete", "line repeat", "line swap", "index edit", "index edit", "meta edit",
    "meta edit", "fifo", "directory", "symlink loop",
]  # fmt: skip


# ------------------------------------------------------------------------------ outcomes
@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def hang(*_: Any) -> None:
        raise TimeoutError(f"no answer within {seconds} s (blocked on a special file?)")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _bytes(path: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(path.iterdir()):
        if p.name == ".lock":
            continue
        out[p.name] = p.read_bytes() if p.is_file() and not p.is_symlink() else "special"
    return out


def outcome(path: Path, original: dict[str, Any], mutation: str) -> str:
    """Read the mutated store at ``path``, then open it for writing; the outcome kind."""
    with _deadline(10):
        try:
            snap = snapshot(path)
        except ProtegeError as exc:
            read = f"error:{type(exc).__name__}"
        except Exception as exc:
            return f"foreign:{type(exc).__name__}: {exc}"[:300]
        else:
            if _same(snap, original):
                read = "identical"
            elif _prefix(snap, original) and mutation.startswith(
                ("truncate episodes.jsonl", "line delete", "delete episodes.jsonl")
            ):
                read = "prefix"
            else:
                return "changed"
        before = _bytes(path)
        try:
            Store.open(path, writable=True).close()
        except ProtegeError:
            if read in ("identical", "prefix") and ".lock" not in mutation:
                return f"writer:refused a store that reads {read}"
            return read if _bytes(path) == before else "writer:changed a refused store"
        except Exception as exc:
            return f"foreign:{type(exc).__name__} (writer): {exc}"[:300]
        if read.startswith("error"):
            return "writer:accepted a store readers refuse"
        try:
            again = snapshot(path)
        except Exception as exc:
            return f"writer:left an unreadable store ({type(exc).__name__}: {exc})"[:300]
        if not (_same(again, original) or (read == "prefix" and _prefix(again, original))):
            return "writer:changed the data"
        return read


def fuzz(n: int, seed: int) -> Iterator[tuple[str, str, str]]:
    """``n`` mutated stores: yields (store kind, mutation, outcome) for each."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        templates = {}
        for kind in KINDS:
            for variant in range(3):
                src = root / f"{kind}-{variant}"
                make_store(kind, src, seed * 10 + variant)
                templates[kind, variant] = (src, snapshot(src))
        for i in range(n):
            kind = KINDS[i % len(KINDS)]
            src, original = templates[kind, int(rng.integers(3))]
            work = root / f"w{i}"
            shutil.copytree(src, work, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
            mutation = mutate(work, kind, rng)
            yield kind, mutation, outcome(work, original, mutation)
            shutil.rmtree(work, ignore_errors=True)
