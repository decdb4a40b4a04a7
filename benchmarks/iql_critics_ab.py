"""IQL's critic loop now against an earlier revision's, interleaved on one store.

Loads ``src/protege/algos/critics.py`` as it was at ``--rev`` (``git show``) next to the
current one, fits IQL's critics with each on the same store, seed and settings, the two
alternating which goes first, and prints each run's samples/s and how far the advantages
moved (max |difference| over their standard deviation, and their correlation). For changes
that should leave the arithmetic alone (e.g. stacking the twin Q networks) and only the time
per update. One torch thread.

    python benchmarks/iql_critics_ab.py --store STORE --rev 6a978d9 --steps 500 --reps 6
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from protege import Store
from protege.algos import critics
from protege.configs.offline import OfflineConfig

REPO = Path(__file__).resolve().parent.parent


def load_old(rev: str) -> object:
    """``protege.algos.critics`` as it was at ``rev``, as a separate module."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:src/protege/algos/critics.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "critics_old.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("critics_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["critics_old"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--rev", required=True, help="the earlier revision (git)")
    p.add_argument("--steps", type=int, default=500, help="critic updates per run")
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--n-actions", type=int, default=0, help="Discrete actions: how many")
    a = p.parse_args()
    torch.set_num_threads(1)
    old = load_old(a.rev)
    data = Store.open(a.store).transitions()
    config = OfflineConfig("iql", critic_steps=a.steps, discount=0.99)
    speed: dict[str, list[float]] = {"old": [], "new": []}
    adv: dict[str, np.ndarray] = {}
    for rep in range(a.reps):
        order = [("old", old), ("new", critics)]
        for name, module in order if rep % 2 == 0 else order[::-1]:
            adv[name], result = module.iql_advantages(data, config, 0, a.n_actions)  # type: ignore[attr-defined]
            speed[name].append(result.samples_per_s)
            print(f"rep {rep} {name}: {result.samples_per_s:,.0f} samples/s", flush=True)
    ratios = [n / o for n, o in zip(speed["new"], speed["old"], strict=True)]
    moved = float(np.abs(adv["new"] - adv["old"]).max() / adv["old"].std())
    corr = float(np.corrcoef(adv["new"], adv["old"])[0, 1])
    print(
        f"new/old samples/s: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}–{max(ratios):.2f}); advantages: max |diff|/std {moved:.2e}, "
        f"correlation {corr:.6f}"
    )


if __name__ == "__main__":
    main()
