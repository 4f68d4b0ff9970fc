"""The red-team suite: the model is replaced by an attacker and every attack must fail.

* :mod:`~evals.redteam.hostile_model`: compromised chat models (fully hijacked, or following
  injected instructions once it reads them);
* :mod:`~evals.redteam.attacks`: the catalogue of attacks per attacker goal;
* :mod:`~evals.redteam.injections`: the injected-email matrix (benign emails x goals x
  templates x placements, database fields included);
* :mod:`~evals.redteam.sandbox` and :mod:`~evals.redteam.judge`: a disposable database and home
  per run, and success decided from effects only;
* :func:`run_redteam` runs it all and returns a :class:`RedTeamReport`
  (``mediavault redteam`` prints it).
"""

from __future__ import annotations

from mediavault.evals.redteam.report import RedTeamReport, RunRecord
from mediavault.evals.redteam.runner import run_catalogue, run_injection_matrix, run_redteam

__all__ = ["RedTeamReport", "RunRecord", "run_catalogue", "run_injection_matrix", "run_redteam"]
