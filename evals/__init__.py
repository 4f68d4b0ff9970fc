"""Evaluation: labelled datasets, the runner, deterministic scoring and reports.

- :mod:`evals.dataset`: the JSON Lines case format and the project's datasets;
- :mod:`evals.runner`: runs cases through the real triage graph and observes each outcome;
- :mod:`evals.scoring`: checks each observation against its labels; the run's figures;
- :mod:`evals.report`: results JSONL, markdown summary, HTML report with plots.

``mediavault eval`` (``agent/cli_eval.py``) is the command line over these modules.
"""
