"""The settings of ``protege demo arm`` (:mod:`protege.demos.arm`): which task, how many
demonstrations, and the lesson each shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CAMERA_ENCODER: dict[str, Any] = {
    "channels": [16, 32, 32],
    "kernels": [8, 4, 3],
    "strides": [4, 2, 1],
    "image_sizes": [64],
}
"""The camera setting's CNN on 84×84 frames (conv 8×8/4 → 4×4/2 → 3×3/1, half the width of
the usual Atari CNN): a learner of about 200k weights that trains at ~30 ms per batch of 64 on
one CPU core."""


@dataclass(frozen=True)
class Setting:
    """One row group of the report: a task and how many demonstrations BC starts from."""

    name: str
    title: str
    task: str
    demos_field: str
    """The :class:`~protege.configs.demos.ArmDemoConfig` field holding its number of
    demonstrations."""
    lesson: str
    steps_field: str = "steps"
    """The config field holding each round's BC gradient steps."""
    batch_field: str = "batch_size"
    """The config field holding the BC batch size."""
    policy: Mapping[str, Any] = field(default_factory=dict)
    """Policy settings besides the config's ``hidden_sizes`` (e.g. the camera's encoder)."""
    retrain: str = "scratch"
    """Each DAgger round's learner: trained from scratch on every label so far, or "warm":
    from the previous round's weights (``DAggerConfig.retrain``)."""


SETTINGS: dict[str, Setting] = {
    "main": Setting(
        "main",
        "State, many demonstrations",
        "metaworld/pick-place",
        "demos",
        "BC from the full state and many demonstrations: the expert's skill is easy to copy.",
    ),
    "few": Setting(
        "few",
        "State, few demonstrations",
        "metaworld/pick-place",
        "few_demos",
        "BC from a handful of demonstrations drifts off them; DAgger labels the states the "
        "learner reaches and success rises round by round.",
    ),
    "hidden": Setting(
        "hidden",
        "Goal hidden from the learner",
        "metaworld/pick-place-hidden",
        "demos",
        "The expert reads the goal from the simulator; the learner cannot see it. Labels on "
        "its own states teach it everything but where the goal is: the gap that remains is "
        "what the privileged expert knows and the learner cannot observe.",
    ),
    "camera": Setting(
        "camera",
        "Camera + proprioception",
        "metaworld/pick-place-camera-workspace",
        "camera_demos",
        "The learner sees a camera on the table (84×84) and the arm's own position and grip, "
        "not where the block or the goal is: a CNN must find them in the image. The expert "
        "reads the simulator (privileged).",
        steps_field="camera_steps",
        batch_field="camera_batch_size",
        policy={"encoder_kwargs": CAMERA_ENCODER, "random_shift": 4},
        retrain="warm",
    ),
}
"""Every setting of the demo; :data:`protege.configs.demos.ARM_SETTINGS` are those run by
default."""
