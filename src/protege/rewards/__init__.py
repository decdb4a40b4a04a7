"""Learned rewards: the artefact (save, load, wrap an env: :mod:`protege.rewards.artefact`),
adversarial imitation's networks (:mod:`protege.rewards.discriminator`) and the comparison
of a learned reward with the true one (:mod:`protege.rewards.compare`)."""
