"""A few seconds of the store fuzzer (tests/store_fuzzing.py), fixed seed: every mutated store
reads back as a protege error, identical data, or the committed prefix a crash would leave,
and a writer never changes what a reader refuses. The long run: benchmarks/store_fuzz.py."""

from collections import Counter

from store_fuzzing import KINDS, fuzz


def test_mutated_stores_give_a_protege_error_or_identical_data():
    seen: Counter[str] = Counter()
    defects = []
    for kind, mutation, outcome in fuzz(450, seed=12):
        seen[outcome] += 1
        seen[kind] += 1
        if not outcome.startswith(("error:", "identical", "prefix")):
            defects.append((kind, mutation, outcome))
    assert defects == []
    # The fuzzer reaches every outcome that is allowed, on every kind of store.
    assert seen["error:DataError"] > 200 and seen["identical"] > 20 and seen["prefix"] > 0
    assert all(seen[kind] == 150 for kind in KINDS)
