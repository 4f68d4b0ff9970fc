"""Batch throughput against a model server with real latency, next to the ideal.

An OpenAI-compatible stub (tests/integration/openai_stub.py, answering like the rules model) runs
in its own process and holds every model call for a fixed time (200 ms by default). A batch of
emails from the sample inbox, each under a new id, is triaged with ``agent.ops.batch`` at each
concurrency, with SQLite checkpoints, against the stub via ``MEDIAVAULT_MODEL=openai:...``.

The ideal is what the model's latency alone allows: concurrency / (model calls per email x
latency). The target at concurrency 32 is at least 80% of it.

With ``--processes`` the same concurrency is also run spread over that many worker processes
(``run_triage_batch(processes=...)``): the graph's own work is CPU-bound, and one process keeps
at most one core busy.

    python benchmarks/bench_throughput.py [--emails 200] [--latency 0.2] [--concurrency 1 32]
                                          [--processes 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import date
from pathlib import Path

from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.agent.ops.batch import run_triage_batch
from mediavault.graph.context import Context
from mediavault.graph.inbound_email import InboundEmail
from mediavault.tools.business_db.demo_database import build_demo_database

REPO = Path(__file__).resolve().parents[1]
INBOX = REPO / "examples" / "inbox.csv"
STUB = REPO / "tests" / "integration" / "openai_stub.py"
TARGET = 0.8


def start_stub(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The stub server in its own process (so it does not share this one's interpreter lock)."""
    process = subprocess.Popen(
        [sys.executable, str(STUB), "--latency", str(latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the stub server did not start (said {base_url!r})")
    return process, base_url


def stub_requests(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/stub/stats", timeout=5) as response:
        return int(json.load(response)["requests"])


def batch(emails: list[InboundEmail], count: int, tag: str) -> list[InboundEmail]:
    return [emails[i % len(emails)].model_copy(update={"email_id": f"{tag}-{i:04d}"})
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emails", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    inbox = read_inbox_csv(INBOX).emails
    stub, base_url = start_stub(args.latency)
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ.pop("OPENAI_API_KEY", None)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "demo.sqlite"
            build_demo_database(db, seed=42, as_of=date(2026, 3, 2))
            runs = [(c, p) for c in args.concurrency for p in args.processes if p <= c]
            for concurrency, processes in runs:
                # A fresh home per run: its own checkpoint file, case store and audit log.
                context = Context(home=Path(tmp) / f"home-c{concurrency}-p{processes}",
                                  db=str(db), model="openai:stub-model")
                run_triage_batch(batch(inbox, 1, "warmup"), context=context)
                emails = batch(inbox, args.emails, f"c{concurrency}")
                calls_before = stub_requests(base_url)
                started = time.perf_counter()
                results = run_triage_batch(emails, context=context, concurrency=concurrency,
                                           processes=processes)
                elapsed = time.perf_counter() - started
                calls = (stub_requests(base_url) - calls_before) / len(emails)
                rate = len(emails) / elapsed
                ideal = concurrency / (calls * args.latency)
                statuses = Counter(result.status for result in results)
                rows.append((concurrency, processes, rate, ideal, calls, elapsed, statuses))
    finally:
        if stub.stdin is not None:
            stub.stdin.close()  # the stub stops when its stdin closes
        stub.wait(timeout=10)

    print(f"{args.emails} emails per run, {args.latency * 1000:.0f} ms per model call, "
          "SQLite checkpoints")
    print(f"{'concurrency':>11}  {'processes':>9}  {'emails/s':>8}  {'ideal':>7}  "
          f"{'of ideal':>8}  {'calls/email':>11}  {'seconds':>7}  outcomes")
    for concurrency, processes, rate, ideal, calls, elapsed, statuses in rows:
        outcomes = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        print(f"{concurrency:>11}  {processes:>9}  {rate:>8.2f}  {ideal:>7.2f}  "
              f"{rate / ideal:>8.0%}  {calls:>11.2f}  {elapsed:>7.1f}  {outcomes}")
    top = max(rows, key=lambda row: (row[0], row[2] / row[3]))
    verdict = "meets" if top[2] / top[3] >= TARGET else "misses"
    print(f"concurrency {top[0]} (best with {top[1]} process(es)): {top[2] / top[3]:.0%} of "
          f"ideal, {verdict} the {TARGET:.0%} target")


if __name__ == "__main__":
    main()
