"""Obstacle course: which output heads survive demonstrators who disagree (issue 4).

The comparison lives in the package: this runs ``protege demo obstacle`` with the same flags
(see :mod:`protege.demos.obstacle` for what is trained and measured), then prints its
``results.md`` (the tables with 95% Wilson intervals) for the benchmark's log. Writes
``results.md``, ``results.json``, the report page and its figures into ``--out``.

    .venv/bin/python benchmarks/obstacle.py --out reports/obstacle --seed 0 --episodes 200
"""

import argparse
import sys
from pathlib import Path

from protege.cli import main


def run(argv: list[str]) -> int:
    """``protege demo obstacle ARGV``, then print the tables it wrote."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--out", default="reports/demo-obstacle")
    out = Path(where.parse_known_args(argv)[0].out)
    code = main(["demo", "obstacle", *argv])
    if code == 0:
        print((out / "results.md").read_text())
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
