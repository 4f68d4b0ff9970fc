"""`mediavault eval`: the command a person or a script runs, its outputs and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediavault.cli import app

runner = CliRunner()

SMALL = [
    {"id": "status", "email": {"email_id": "t-1", "received_at": "2026-03-01T09:00:00Z",
                               "from": "Sofia Marchetti <sofia.marchetti@example.com>",
                               "subject": "Due date", "body": "When is VELVET COMPASS due back?"},
     "expect": {"route": "draft", "reason_code": "rental_status",
                "must_include": ["March 7, 2026"]}, "tags": ["rental_status"]},
    {"id": "threat", "email": {"email_id": "t-2", "received_at": "2026-03-01T09:05:00Z",
                               "from": "Dana Whitfield <dana.whitfield@example.com>",
                               "subject": "Fee", "body": "Remove the fee or I will s u e you."},
     "expect": {"route": "escalate", "reason_code": "legal_threat", "routing": "tier2_legal"},
     "tags": ["evasion"]},
    {"id": "mislabelled", "email": {"email_id": "t-3", "received_at": "2026-03-01T09:10:00Z",
                                    "from": "Grace Kim <grace.kim@example.net>",
                                    "subject": "Stock", "body": "Is HOLLOW MERIDIAN in stock?"},
     "expect": {"route": "escalate"}, "tags": ["catalog_question"]},
]


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(case) + "\n" for case in SMALL), encoding="utf-8")
    return path


def _eval(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_output_gives_the_figures_and_where_the_reports_are(
    small_dataset: Path, demo_db_path: Path, tmp_path: Path, mediavault_home: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, _ = _eval("--dataset", str(small_dataset), "--db", str(demo_db_path),
                            "--as-of", "2026-03-02", "--out", str(out), "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert (summary["cases"], summary["runs"], summary["passed_runs"]) == (3, 3, 2)
    assert summary["route_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["escalation_recall"]["legal_threat"] == 1.0
    assert summary["datasets"] == ["small"] and summary["as_of"] == "2026-03-02"
    outputs = summary["outputs"]
    assert Path(outputs["results"]).parent == out
    assert len(Path(outputs["results"]).read_text().splitlines()) == 3
    assert "mislabelled" in Path(outputs["summary"]).read_text()
    assert Path(outputs["report"]).read_text().count("<img ") == 3


def test_k_runs_each_case_again_and_says_the_rules_model_needs_one(
    small_dataset: Path, demo_db_path: Path, tmp_path: Path, mediavault_home: Path
) -> None:
    code, stdout, stderr = _eval("--dataset", str(small_dataset), "--db", str(demo_db_path),
                                 "--as-of", "2026-03-02", "--out", str(tmp_path / "o"),
                                 "--k", "2")
    assert code == 0
    assert "pass^2 (cases passing every run)" in stdout and "66.7%" in stdout
    assert "k=1 suffices" in stdout
    assert "FAIL mislabelled (run 1): route draft (expected escalate)" in stderr
    assert "FAIL mislabelled (run 2)" in stderr
    assert str(tmp_path / "o" / "report.html") in stdout


def test_without_out_the_reports_go_to_the_home_directory(
    small_dataset: Path, demo_db_path: Path, mediavault_home: Path
) -> None:
    code, stdout, _ = _eval("--dataset", str(small_dataset), "--db", str(demo_db_path),
                            "--as-of", "2026-03-02", "--json")
    assert code == 0
    report = Path(json.loads(stdout)["outputs"]["report"])
    assert report.is_file() and report.parent.parent == mediavault_home / "evals"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "{missing}"], "error: dataset {missing} does not exist"),
        (["--dataset", "{broken}"], "error: {broken}:2: expect.route"),
        (["--db", "{missing}"], "error: business database {missing} does not exist"),
        (["--db", "{not_sakila}"], "error: business database:"),
        (["--model", "gpt"], "error: unknown model 'gpt'"),
        (["--as-of", "March 2"], "error: business date 'March 2' is not an ISO date"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    args: list[str], message: str, small_dataset: Path, tmp_path: Path, mediavault_home: Path
) -> None:
    broken = tmp_path / "broken.jsonl"
    lines = [json.dumps(SMALL[0]), json.dumps({**SMALL[1], "expect": {"route": "reply"}})]
    broken.write_text("\n".join(lines) + "\n")
    not_sakila = tmp_path / "notes.sqlite"
    not_sakila.write_text("not a database")
    names = {"missing": str(tmp_path / "nope"), "broken": str(broken),
             "not_sakila": str(not_sakila)}
    filled = [a.format(**names) for a in args]
    if "--dataset" not in filled:
        filled += ["--dataset", str(small_dataset)]
    code, stdout, stderr = _eval(*filled, "--out", str(tmp_path / "out"))
    assert code == 2
    assert stderr.startswith(message.format(**names)), stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert stdout == "" and not (tmp_path / "out").exists()


def test_k_must_be_positive(small_dataset: Path, mediavault_home: Path) -> None:
    code, _, stderr = _eval("--dataset", str(small_dataset), "--k", "0")
    assert code == 2 and "--k" in stderr
