"""The horizon experiment's SMILe and AggreVaTe arms alone, at the headline setting
(ε = 2.5e-4, T = 50..1000, W = 5, K = 20, 5 rounds) with one data seed and no saturated sweep
(the other arms' figures are the full run's: ``protege experiment horizon``).

    .venv/bin/python benchmarks/horizon_smile_aggrevate.py   # → results/horizon_smile_aggrevate
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from protege.configs.horizon import HorizonConfig
from protege.experiments.horizon import run_horizon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/horizon_smile_aggrevate"))
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    cfg = HorizonConfig(arms=("smile", "aggrevate"), seeds=args.seeds, saturated_epsilon=None)
    t0 = time.time()
    res = run_horizon(cfg, progress=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.md").write_text(res.to_markdown())
    print(res.to_markdown())
    print(f"seconds {time.time() - t0:.0f}")


if __name__ == "__main__":
    main()
