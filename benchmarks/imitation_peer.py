"""Run HumanCompatibleAI's `imitation` (v1.0.1) as a peer, in its own throw-away venv.

imitation must never enter protege's venv: it pins gymnasium~=0.29 and
stable-baselines3~=2.2.1. This module builds a separate venv once, at
``<repo>/.bench/imitation-venv`` (gitignored), and runs scripts in it:

    from imitation_peer import ensure_venv, run_in_venv   # with benchmarks/ on sys.path

    ensure_venv()                                          # no-op after the first time
    res = run_in_venv("bc_train.py", ["--data", "demo.npz", "--batch-size", "256"])

The install is ``torch==2.13.0`` first (the local CPU wheel; a constraints file
keeps every later step on it), then ``imitation==1.0.1``, then
``gymnasium[box2d]==1.4.0`` and ``stable-baselines3==2.9.2`` forced over imitation's
pins, so the task is LunarLander-v3 exactly as in protege's venv. pip reports the
pin conflict; BC and SimpleDAgger are then checked by a tiny ``dagger_run.py``
run. A marker file, written last, makes later calls skip all of this.

Also runnable: ``python benchmarks/imitation_peer.py [--force]`` builds (or
rebuilds) the venv and prints the resolved versions as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_DIR = REPO_ROOT / ".bench" / "imitation-venv"
SIDE_DIR = Path(__file__).resolve().parent / "imitation_side"
MARKER_NAME = "protege-peer-install.json"

TORCH_SPEC = "torch==2.13.0"
IMITATION_SPEC = "imitation==1.0.1"
FORCED_SPECS = ("gymnasium[box2d]==1.4.0", "stable-baselines3==2.9.2")
REPORTED_PACKAGES = (
    "imitation",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "box2d",
    "numpy",
    "seals",
    "pygame",
)

# The smoke test run at the end of the install: one DAgger round (which trains BC).
SMOKE_ARGS = ("--rounds", "1", "--steps-per-round", "300", "--eval-episodes", "1")


def _log(msg: str) -> None:
    print(f"[imitation-peer] {msg}", file=sys.stderr, flush=True)


def venv_python(venv_dir: Path = VENV_DIR) -> Path:
    """Path of the peer venv's python (it may not exist yet)."""
    return Path(venv_dir) / "bin" / "python"


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment minus anything that would leak protege's venv into the peer."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"}
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if extra:
        env.update(extra)
    return env


def _run(cmd: Sequence[str | os.PathLike[str]], *, check: bool = True) -> float:
    """Run a command with output streamed to stderr; return its wall time."""
    _log("$ " + " ".join(str(c) for c in cmd))
    t = time.perf_counter()
    proc = subprocess.run(
        [str(c) for c in cmd], env=_clean_env(), stdout=sys.stderr, stderr=sys.stderr
    )
    dt = time.perf_counter() - t
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed (exit {proc.returncode}): {cmd}")
    _log(f"  done in {dt:.1f} s (exit {proc.returncode})")
    return dt


@contextlib.contextmanager
def _install_lock(venv_dir: Path) -> Iterator[None]:
    """Serialize installs across processes (two benchmarks may start at once)."""
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(venv_dir.parent / f".{venv_dir.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code, *REPORTED_PACKAGES],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def read_marker(venv_dir: Path = VENV_DIR) -> dict | None:
    """The install record (versions, timings, smoke result), or None if not installed."""
    marker = Path(venv_dir) / MARKER_NAME
    if not marker.is_file():
        return None
    return json.loads(marker.read_text())


def ensure_venv(venv_dir: Path = VENV_DIR, *, force: bool = False) -> Path:
    """Create the imitation venv once (install + smoke test); return its python.

    Skips everything when the marker file exists, unless ``force``. A venv left
    without a marker (an interrupted install) is deleted and rebuilt.
    """
    venv_dir = Path(venv_dir)
    python = venv_python(venv_dir)
    if not force and (venv_dir / MARKER_NAME).is_file():
        return python
    with _install_lock(venv_dir):
        if not force and (venv_dir / MARKER_NAME).is_file():  # built while we waited
            return python
        if venv_dir.exists():
            _log(f"removing incomplete or forced venv {venv_dir}")
            shutil.rmtree(venv_dir)
        _log(f"creating the imitation peer venv at {venv_dir} (takes a few minutes)")
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        timings["venv"] = _run(["python3", "-m", "venv", venv_dir])
        # Every later pip call is constrained to this torch, so none can pull another build.
        constraints = venv_dir / "protege-constraints.txt"
        constraints.write_text(TORCH_SPEC + "\n")
        pip = [python, "-m", "pip", "install", "--no-input", "-c", constraints]
        timings["torch"] = _run([*pip, TORCH_SPEC])
        timings["imitation"] = _run([*pip, IMITATION_SPEC])
        # pip exits 0 here but warns that imitation 1.0.1 wants gymnasium~=0.29, sb3~=2.2.1.
        timings["forced"] = _run([*pip, *FORCED_SPECS])
        _run([python, "-m", "pip", "check"], check=False)  # shows the (expected) conflicts
        versions = _installed_versions(python)
        _log(f"resolved: {versions}")
        if versions.get("torch", "").split("+")[0] != TORCH_SPEC.split("==")[1]:
            raise RuntimeError(f"peer venv got torch {versions.get('torch')}, not {TORCH_SPEC}")

        _log("smoke test: one SimpleDAgger round (BC inside) on LunarLander-v3")
        t = time.perf_counter()
        smoke = _run_script(python, SIDE_DIR / "dagger_run.py", SMOKE_ARGS, timeout=600)
        timings["smoke"] = time.perf_counter() - t
        if smoke.get("env") != "LunarLander-v3" or not smoke.get("rounds"):
            raise RuntimeError(f"smoke test gave unexpected output: {smoke}")
        timings["total"] = time.perf_counter() - t0

        record = {
            "specs": [TORCH_SPEC, IMITATION_SPEC, *FORCED_SPECS],
            "versions": versions,
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "smoke_expert_return": smoke.get("expert", {}).get("mean_return"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (venv_dir / MARKER_NAME).write_text(json.dumps(record, indent=1) + "\n")
        _log(f"peer venv ready in {timings['total']:.0f} s")
    return python


def _parse_json_output(stdout: str) -> dict:
    """The script's JSON: the whole of stdout, else its last line that parses."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object in the script's output:\n{stdout[-2000:]}")


def _run_script(
    python: Path,
    script: Path,
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float | None,
    env: Mapping[str, str] | None = None,
) -> dict:
    cmd = [str(python), str(script), *(str(a) for a in args)]
    _log("$ " + " ".join(cmd))
    proc = subprocess.run(
        cmd,
        env=_clean_env(env),
        stdout=subprocess.PIPE,
        stderr=None,  # the script's logs go straight to our stderr
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script.name} failed (exit {proc.returncode}); stdout tail:\n{proc.stdout[-2000:]}"
        )
    return _parse_json_output(proc.stdout)


def run_in_venv(
    script: str | os.PathLike[str],
    args: Sequence[str | os.PathLike[str]] = (),
    *,
    venv_dir: Path = VENV_DIR,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    ensure: bool = True,
) -> dict:
    """Run ``script`` with the peer venv's python and return its parsed JSON output.

    A bare name (``"bc_train.py"``) that is not an existing path is looked up in
    ``benchmarks/imitation_side/``. ``env`` adds variables (e.g. OMP_NUM_THREADS).
    The script's stderr is passed through; its stdout must end with one JSON object.
    """
    path = Path(script)
    if not path.exists() and (SIDE_DIR / path).exists():
        path = SIDE_DIR / path
    if not path.exists():
        raise FileNotFoundError(script)
    python = ensure_venv(venv_dir) if ensure else venv_python(venv_dir)
    return _run_script(python, path.resolve(), args, timeout=timeout, env=env)


def main() -> None:
    p = argparse.ArgumentParser(description="Build the imitation peer venv (once).")
    p.add_argument("--force", action="store_true", help="delete and rebuild the venv")
    p.add_argument("--venv-dir", type=Path, default=VENV_DIR)
    a = p.parse_args()
    ensure_venv(a.venv_dir, force=a.force)
    print(json.dumps(read_marker(a.venv_dir), indent=1))


if __name__ == "__main__":
    main()
