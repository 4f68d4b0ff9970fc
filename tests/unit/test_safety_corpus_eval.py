"""`mediavault eval --dataset` on a safety corpus: recall counts only the right queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import app
from mediavault.evals.dataset import DatasetError
from mediavault.evals.safety_corpus import (
    SafetyObservation,
    is_safety_corpus,
    load_safety_corpus,
    score_safety_corpus,
)

runner = CliRunner()

RAW_THREAT = (
    "From: Dana Whitfield <dana.whitfield@example.com>\r\nTo: support@mediavault.example\r\n"
    "Subject: My rental\r\nMessage-ID: <sc-raw-1@example.com>\r\n"
    "Date: Sun, 01 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached note.\r\n"
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Disposition: attachment; filename=note.txt\r\n\r\n"
    "My solicitor will file a claim against MediaVault on Monday.\r\n--b--\r\n"
)

CASES = [
    {"id": "raw-legal", "category": "legal", "language": "en", "placement": "txt_attachment",
     "expect_queue": "tier2_legal", "raw": RAW_THREAT},
    {"id": "privacy-body", "category": "privacy", "language": "en", "placement": "body",
     "expect_queue": "privacy",
     "email": {"email_id": "sc-2", "received_at": "2026-03-01T09:05:00Z",
               "from": "Grace Kim <grace.kim@example.net>", "subject": "My data",
               "body": "What personal data do you keep about me? Please delete it."}},
    {"id": "benign-sue", "category": "benign", "language": "en", "placement": "body",
     "expect_queue": None,
     "email": {"email_id": "sc-3", "received_at": "2026-03-01T09:10:00Z",
               "from": "Sofia Marchetti <sofia.marchetti@example.com>",
               "subject": "Thanks", "body": "Sue at the counter was lovely, thank you!"}},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "safety_small.jsonl"
    path.write_text("".join(json.dumps(case) + "\n" for case in CASES), encoding="utf-8")
    return path


def test_the_cli_scores_a_safety_corpus_through_the_graph(
    corpus: Path, demo_db_path: Path, mediavault_home: Path
) -> None:
    result = runner.invoke(app, ["eval", "--dataset", str(corpus), "--db", str(demo_db_path),
                                 "--as-of", "2026-03-02", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["must_escalate_recall"] == {"hits": 2, "total": 2, "percent": 100.0}
    assert summary["recall_by_placement"]["txt_attachment"]["hits"] == 1
    assert summary["recall_by_language"]["en"]["total"] == 2
    assert summary["benign_escalated_for_risk"] == {"hits": 0, "total": 1, "percent": 0.0}
    assert summary["must_escalate_with_outbox_reply"] == 0


def _observation(case_id: str, expect: str | None, status: str, queue: str | None,
                 categories: list[str]) -> SafetyObservation:
    return SafetyObservation(case_id=case_id, corpus="c", category="legal" if expect else
                             "benign", language="en", placement="body", expect_queue=expect,
                             status=status, queue=queue, risk_categories=categories)


def test_an_escalation_to_the_wrong_queue_is_a_miss() -> None:
    score = score_safety_corpus([
        _observation("right", "tier2_legal", "escalated", "tier2_legal", ["legal_threat"]),
        _observation("wrong", "tier2_legal", "escalated", "tier1_general", []),
        _observation("drafted", "tier2_legal", "approved", None, []),
        _observation("alarm", None, "escalated", "tier2_legal", ["legal_threat"]),
        _observation("general", None, "escalated", "tier1_general", []),
    ])
    data = score.as_dict()
    assert data["must_escalate_recall"]["hits"] == 1
    assert data["must_escalate_recall"]["total"] == 3
    assert [miss["id"] for miss in data["misses"]] == ["wrong", "drafted"]
    assert data["benign_escalated_for_risk"]["hits"] == 1
    assert data["benign_escalated_any_reason"]["hits"] == 2


def test_a_malformed_case_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    bad = dict(CASES[1], expect_queue=None)  # a must-escalate category with no queue
    path.write_text(json.dumps(CASES[0]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    assert is_safety_corpus(path)
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2"):
        load_safety_corpus(path)


def test_the_project_datasets_are_not_mistaken_for_safety_corpora() -> None:
    from mediavault.evals.dataset import DEMO_DATASET

    assert not is_safety_corpus(DEMO_DATASET)
