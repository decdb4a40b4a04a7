"""Meta-World's scripted policies as protege experts.

Meta-World ships a hand-written policy for each of its 50 tasks (``metaworld.policies``): a
stateless function of the 39-number observation (hand, gripper, object, previous frame, goal),
so it can label any state a learner reaches. :class:`MetaWorldExpert` batches it, clips its
actions to the action space (the env clips them the same way) and, when the learner's
observation lacks what the policy needs (the goal hidden, or camera pixels), reads the full
state from ``info["state"]``: the privileged, asymmetric expert DAgger is made for.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

OBS_DIM = 39


class MetaWorldExpert:
    """The scripted policy of Meta-World task ``env_name`` (without ``-v3``).

    Args:
        privileged: act on ``infos["state"]`` (the simulator's full observation, goal
            included) instead of the learner's observation. Needed for the hidden-goal and
            pixel variants; without it the expert is a pure function of the observation.
    """

    def __init__(self, env_name: str, privileged: bool = False) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.env_name = env_name
        self.privileged = privileged
        self.name = f"Meta-World's scripted {env_name} policy"
        policy_cls: Any = ENV_POLICY_MAP[f"{env_name}-v3"]
        self._policy = policy_cls()

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        if self.privileged:
            if infos is None or "state" not in infos:
                raise ValueError(
                    f"{self.name} reads the simulator's state: pass the env's infos (info['state'])"
                )
            states = np.asarray(infos["state"], np.float64)
        else:
            states = np.asarray(obs, np.float64)
        if states.ndim != 2 or states.shape[1] != OBS_DIM:
            raise ValueError(f"expected states of shape (N, {OBS_DIM}), got {states.shape}")
        with warnings.catch_warnings():
            # "Constant(s) may be too high. Environments clip response to [-1, 1]": we clip.
            warnings.simplefilter("ignore", UserWarning)
            actions = np.stack([self._policy.get_action(s) for s in states])
        return np.clip(actions, -1.0, 1.0).astype(np.float32)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""
