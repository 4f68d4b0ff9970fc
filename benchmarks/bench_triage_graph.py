"""Per-email cost of the whole Email Triage graph next to a bare LangGraph graph.

Both run with the same SQLite checkpointer, the same durability mode (each step's checkpoint on
disk before the next step starts) and the same number of steps per email; the bare graph's
nodes do nothing. The ratio is the cost of the product's work (gate, guard, scoping,
policy retrieval, validation, case store, audit log) over LangGraph's own per-step overhead.

    python benchmarks/bench_triage_graph.py [--emails 40]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from mediavault.agent.api import DURABILITY, triage_email
from mediavault.agent.mail.csv_inbox import read_inbox_csv
from mediavault.graph.context import Context
from mediavault.tools.business_db.demo_database import build_demo_database

INBOX = Path(__file__).resolve().parents[1] / "examples" / "inbox.csv"


class BareState(TypedDict, total=False):
    email: dict[str, Any]
    step: int


def bare_graph(steps: int, saver: SqliteSaver) -> Any:
    builder = StateGraph(BareState)
    names = [f"step_{i}" for i in range(steps)]
    for name in names:
        builder.add_node(name, lambda state: {"step": state.get("step", 0) + 1})
    builder.add_edge(START, names[0])
    for first, second in pairwise(names):
        builder.add_edge(first, second)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=saver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=40)
    args = parser.parse_args()
    emails = read_inbox_csv(INBOX).emails
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        db = home / "demo.sqlite"
        build_demo_database(db, seed=42, as_of=date(2026, 3, 2))
        context = Context(home=home, db=str(db), review="none")
        # warm up imports, caches and the policy index
        triage_email(emails[0].model_copy(update={"email_id": "warmup"}), context=context)
        # Count the steps one email takes, then build the bare graph to match.
        triage_email(emails[1].model_copy(update={"email_id": "count"}), context=context)
        connection = sqlite3.connect(home / "checkpoints.sqlite")
        rows = connection.execute(
            "SELECT thread_id, count(*) FROM checkpoints GROUP BY thread_id").fetchall()
        connection.close()
        mean_steps = round(statistics.mean(int(n) for _, n in rows))
        bare_connection = sqlite3.connect(home / "bare.sqlite", check_same_thread=False)
        graph = bare_graph(max(1, mean_steps - 2), SqliteSaver(bare_connection))

        # Alternate the two so that load from elsewhere on the machine hits both alike.
        full: list[float] = []
        bare: list[float] = []
        for index in range(args.emails):
            email = emails[index % len(emails)].model_copy(update={"email_id": f"bench-{index}"})
            started = time.perf_counter()
            triage_email(email, context=context)
            full.append(time.perf_counter() - started)
            started = time.perf_counter()
            graph.invoke({"email": email.model_dump(mode="json")},
                         {"configurable": {"thread_id": f"bare-{index}"}}, durability=DURABILITY)
            bare.append(time.perf_counter() - started)
        bare_connection.close()
    full_ms = statistics.median(full) * 1000
    bare_ms = statistics.median(bare) * 1000
    print(f"emails: {args.emails}, checkpoints per email: {mean_steps}, durability: {DURABILITY}")
    print(f"full graph (rules model, SQLite checkpoints): {full_ms:.1f} ms per email (median)")
    print(f"bare graph, same steps and saver:             {bare_ms:.1f} ms per email (median)")
    print(f"ratio: {full_ms / bare_ms:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
