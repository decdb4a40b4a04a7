"""Run d3rlpy 2.8.1 as a peer, in its own throw-away venv, with imitation_peer.py's mechanism.

d3rlpy pins gymnasium==1.0.0, so it never enters protege's venv. ``ensure_venv()`` builds
``<repo>/.bench/d3rlpy-venv`` (gitignored) once, as ``imitation_peer.py`` builds its venv:
``torch==2.13.0`` first (the local CPU wheel; a constraints file keeps every later step on
it, so no CUDA build is pulled), then ``d3rlpy==2.8.1``, then ``gymnasium[box2d]==1.4.0``
forced over d3rlpy's pin so the tasks are protege's exactly (pip reports the conflict). A
smoke test imports d3rlpy and makes LunarLander-v3; then the marker file is written and
later calls skip all of this. ``run_in_venv("d3rlpy_run.py", [...])`` runs a script of
``benchmarks/offline_side/`` with the peer's python and returns the JSON it prints.

    python benchmarks/d3rlpy_peer.py [--force]     # build (or rebuild), print the versions
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from imitation_peer import (
    MARKER_NAME,
    REPO_ROOT,
    TORCH_SPEC,
    _clean_env,
    _install_lock,
    _log,
    _run,
    _run_script,
    read_marker,
    venv_python,
)

VENV_DIR = REPO_ROOT / ".bench" / "d3rlpy-venv"
SIDE_DIR = Path(__file__).resolve().parent / "offline_side"
D3RLPY_SPEC = "d3rlpy==2.8.1"
FORCED_SPECS = ("gymnasium[box2d]==1.4.0",)
REPORTED = ("d3rlpy", "torch", "gymnasium", "box2d", "numpy")
SMOKE = (
    "import d3rlpy, gymnasium as g; g.make('LunarLander-v3').reset(seed=0); "
    "print(d3rlpy.__version__)"
)


def _versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code, *REPORTED], env=_clean_env(), capture_output=True, text=True
    )
    return json.loads(proc.stdout)


def ensure_venv(venv_dir: Path = VENV_DIR, *, force: bool = False) -> Path:
    """Create the d3rlpy venv once (install + smoke test); return its python."""
    venv_dir = Path(venv_dir)
    python = venv_python(venv_dir)
    if not force and (venv_dir / MARKER_NAME).is_file():
        return python
    with _install_lock(venv_dir):
        if not force and (venv_dir / MARKER_NAME).is_file():
            return python
        if venv_dir.exists():
            _log(f"removing incomplete or forced venv {venv_dir}")
            shutil.rmtree(venv_dir)
        _log(f"creating the d3rlpy peer venv at {venv_dir}")
        t0 = time.perf_counter()
        seconds = {"venv": _run(["python3", "-m", "venv", venv_dir])}
        constraints = venv_dir / "protege-constraints.txt"
        constraints.write_text(TORCH_SPEC + "\n")
        pip = [python, "-m", "pip", "install", "--no-input", "-c", constraints]
        seconds["torch"] = _run([*pip, TORCH_SPEC])
        seconds["d3rlpy"] = _run([*pip, D3RLPY_SPEC])
        seconds["forced"] = _run([*pip, *FORCED_SPECS])  # pip warns: d3rlpy wants 1.0.0
        _run([python, "-m", "pip", "check"], check=False)
        versions = _versions(python)
        _log(f"resolved: {versions}")
        if versions.get("torch", "").split("+")[0] != TORCH_SPEC.split("==")[1]:
            raise RuntimeError(f"peer venv got torch {versions.get('torch')}, not {TORCH_SPEC}")
        _run([python, "-c", SMOKE])
        seconds["total"] = time.perf_counter() - t0
        record = {
            "specs": [TORCH_SPEC, D3RLPY_SPEC, *FORCED_SPECS],
            "versions": versions,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (venv_dir / MARKER_NAME).write_text(json.dumps(record, indent=1) + "\n")
    return python


def run_in_venv(
    script: str,
    args: Sequence[str | os.PathLike[str]] = (),
    *,
    venv_dir: Path = VENV_DIR,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> dict:
    """Run ``offline_side/<script>`` with the peer venv's python; return its JSON output."""
    python = ensure_venv(venv_dir)
    return _run_script(python, SIDE_DIR / script, args, timeout=timeout, env=env)


def main() -> None:
    p = argparse.ArgumentParser(description="Build the d3rlpy peer venv (once).")
    p.add_argument("--force", action="store_true", help="delete and rebuild the venv")
    p.add_argument("--venv-dir", type=Path, default=VENV_DIR)
    a = p.parse_args()
    ensure_venv(a.venv_dir, force=a.force)
    print(json.dumps(read_marker(a.venv_dir), indent=1))


if __name__ == "__main__":
    main()
