"""Config dataclasses, importing only the standard library (and :mod:`protege.errors`).

Every setting protege takes from Python, config.json and the command line is a field of one
of these dataclasses, validated on construction. They live apart from the code that uses
them so that the ``protege`` command derives its flags (and ``--help``) from them without
importing torch, and so that any layer (rollout, algorithms, experiments, demos) may import
them: this package imports nothing of protege but its errors.
"""
