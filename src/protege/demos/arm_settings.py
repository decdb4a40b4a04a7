"""The settings of ``protege demo arm`` (:mod:`protege.demos.arm`): which task, how many
demonstrations, and the lesson each shows."""

from __future__ import annotations

from dataclasses import dataclass


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
    # "camera": Setting("camera", "Camera + proprioception", "metaworld/pick-place-camera",
    #                   "demos", ...)  -- once dict observations land (issue 14, part 2)
}
