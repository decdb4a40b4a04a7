"""The end-to-end demos, each a ``protege demo NAME`` command that writes a report folder.

* :mod:`protege.demos.lunarlander`: expert demonstrations → BC → DAgger, HG-DAgger,
  ThriftyDAgger → evaluation → a report (``protege demo``, ``make demo``);
* :mod:`protege.demos.obstacle`: which output heads survive demonstrators who disagree;
* :mod:`protege.demos.carracing`: BC, DAgger and DART from pixels on CarRacing.

Their settings are stdlib dataclasses in :mod:`protege.configs.demos` (the commands' flags are
derived from them); what they share is in :mod:`protege.demos.common`. Importing this package
imports nothing heavy.
"""
