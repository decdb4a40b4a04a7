"""Learned rewards: reward learning from preferences (Christiano et al. 2017).

* :mod:`~protege.rewards.preference_data`: segments, pairs and the durable preference file.
* :mod:`~protege.rewards.oracle`: the synthetic oracle (the true reward, exact or noisy).
* :mod:`~protege.rewards.preference_model`: the Bradley–Terry reward model and its files.
* :mod:`~protege.rewards.preference_source`: the PPO learner's reward source from preferences.
"""
