"""Learning algorithms: behavioral cloning (:mod:`~protege.algos.bc`), the round engine every
interactive method runs on (:mod:`~protege.algos.engine`), one module per interactive method
(``dagger``, ``hg_dagger``, ``ensemble_dagger``, ``thrifty``, ``dart``, ``smile``,
``aggrevate``) and the registry that finds them by name (:mod:`~protege.algos.registry`)."""
