"""Obstacle course: which output heads survive demonstrators who disagree (issue 4).

The comparison lives in the package (``protege demo obstacle`` runs the same thing); this is
its benchmark entry point. See :mod:`protege.demo_obstacle` for what is trained and measured.
Writes ``results.md`` (tables with 95% Wilson intervals), ``results.json``, the report page
and its figures into ``--out``.

    .venv/bin/python benchmarks/obstacle.py --out reports/obstacle --seed 0 --episodes 200
"""

from protege.demo_obstacle import main

if __name__ == "__main__":
    main()
