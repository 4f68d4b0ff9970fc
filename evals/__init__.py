"""Evaluation: labelled datasets, the runner, deterministic scoring and reports.

- :mod:`mediavault.evals.dataset`: the JSON Lines case format and the project's datasets;
- :mod:`evals.runner`: runs cases through the real triage graph and observes each outcome;
- :mod:`mediavault.evals.scoring`: checks each observation against its labels; the run's figures;
- :mod:`mediavault.evals.report`: results JSONL, markdown summary, HTML report with plots.

``mediavault eval`` (``evals/cli.py``) is the command line over these modules.
"""
