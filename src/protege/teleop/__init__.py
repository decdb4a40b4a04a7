"""A person at the keyboard (or gamepad): demonstrations and HG-DAgger's human supervisor.

One module per job; import what you need from it (this package imports nothing, so reaching
the key mappings never starts pygame):

* :mod:`~protege.teleop.supervisor`: :class:`~protege.teleop.supervisor.HumanSupervisor`, the
  person as the rollout loop's gate and expert.
* :mod:`~protege.teleop.clock`: the fixed-rate clock and the wall time charged to each step.
* :mod:`~protege.teleop.window`: the pygame window, the gamepad, the env view feeding frames.
* :mod:`~protege.teleop.controls`: key and gamepad mappings to actions (no pygame).
* :mod:`~protege.teleop.log`: the per-step record of what the person did and what it cost.
* :mod:`~protege.teleop.session`: ``protege teleop``, a session and its summary.
* :mod:`~protege.teleop.desk`: people at teleop windows as a fleet's supervisors (a window
  per person, each its own :mod:`~protege.teleop.station` process).
"""
