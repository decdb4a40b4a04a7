"""Learned rewards.

* :mod:`~protege.rewards.artefact`: the artefact (save, load, wrap an env with it).
* :mod:`~protege.rewards.discriminator`: adversarial imitation's networks (GAIL, AIRL).
* :mod:`~protege.rewards.compare`: a learned reward against the true one along trajectories.
* :mod:`~protege.rewards.preference_data`: segments, pairs and the durable preference file.
* :mod:`~protege.rewards.oracle`: the synthetic oracle (the true reward, exact or noisy).
* :mod:`~protege.rewards.preference_model`: the Bradley–Terry reward model and its files.
* :mod:`~protege.rewards.preference_source`: the PPO learner's reward source from preferences.
"""
