"""The 50 Meta-World v3 tasks (metaworld 3.1.1), named without ``-v3``.

A plain list, so protege can register ``metaworld/<name>`` for each without importing
Meta-World or MuJoCo (``tests/test_arm_tasks.py`` checks it against Meta-World's own list).
"""

from __future__ import annotations

METAWORLD_TASKS: tuple[str, ...] = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button",
    "coffee-pull", "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock",
    "door-open", "door-unlock", "hand-insert", "drawer-close", "drawer-open", "faucet-open",
    "faucet-close", "hammer", "handle-press-side", "handle-press", "handle-pull-side",
    "handle-pull", "lever-pull", "pick-place-wall", "pick-out-of-hole", "pick-place",
    "plate-slide", "plate-slide-side", "plate-slide-back", "plate-slide-back-side",
    "peg-insert-side", "peg-unplug-side", "soccer", "stick-push", "stick-pull", "push",
    "push-wall", "push-back", "reach", "reach-wall", "shelf-place", "sweep-into", "sweep",
    "window-open", "window-close",
)  # fmt: skip

HEADLINE_TASKS: tuple[str, ...] = ("pick-place", "push", "reach", "drawer-open", "button-press")
"""The tasks whose scripted expert protege tests (and the ones with a pixels variant)."""

WORKSPACE_TASKS: tuple[str, ...] = ("pick-place", "push", "reach")
"""The tasks whose block and goal lie where protege's ``workspace`` camera looks (a
``-camera-workspace`` variant each; see :data:`protege.tasks.metaworld_env.VIEWS`)."""
