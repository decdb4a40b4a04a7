"""Fuzz N mutated stores and count the outcomes (issue 12, item 7).

Each store (small Box-observation, Discrete-action and compressed-frame stores in turn) gets
one random mutation — bit flips, overwritten bytes, truncations, appended bytes, deleted
files, deleted/repeated/swapped index lines, index and meta.json fields given other values,
FIFOs, directories and symlink loops in place of files — and is then read back and opened
for writing (see ``tests/store_fuzzing.py``). Outcomes: a protege error by class, identical
data, a committed prefix (the end of episodes.jsonl removed: what a crash leaves), and the
defects — foreign exceptions, silent changes, writers that destroyed or accepted what readers
refuse. Target: 0 defects.

    .venv/bin/python benchmarks/store_fuzz.py [N=10000] [--seed 0]

Writes benchmarks/results/store_fuzz.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from store_fuzzing import fuzz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=10_000, help="stores to fuzz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "store_fuzz.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    outcomes: Counter[str] = Counter()
    by_mutation: dict[str, Counter[str]] = {}
    defects = []
    for i, (kind, mutation, outcome) in enumerate(fuzz(args.n, args.seed)):
        kind_of = outcome.split(":")[0] if outcome.startswith(("foreign", "writer")) else outcome
        outcomes[kind_of] += 1
        by_mutation.setdefault(mutation.split(" ")[0], Counter())[kind_of] += 1
        if kind_of.startswith(("foreign", "changed", "writer")):
            defects.append({"store": i, "kind": kind, "mutation": mutation, "outcome": outcome})
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} stores, {len(defects)} defects", flush=True)
    result = {
        "stores": args.n,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": platform.platform(),
        "outcomes": dict(sorted(outcomes.items())),
        "foreign_exceptions": outcomes["foreign"],
        "silent_changes": outcomes["changed"],
        "writer_defects": outcomes["writer"],
        "by_mutation": {k: dict(sorted(v.items())) for k, v in sorted(by_mutation.items())},
        "defects": defects[:100],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "by_mutation"}, indent=2))


if __name__ == "__main__":
    main()
