"""The graph runs on the services it is given; the application's services follow their context."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from mediavault.agent.stores.audit import read_events
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.wiring import AppServices, ServicesByContext, build_graph, services_for
from mediavault.graph import nodes
from mediavault.graph.context import Context
from mediavault.graph.ports import TriageServices

EMAIL = {"email_id": "wired-1", "received_at": "2026-03-01T09:00:00Z",
         "from": "nobody@example.org", "subject": "Opening hours?",
         "body": "Hello, when are you open on Sundays?"}


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path), review="none")


def test_the_graph_uses_the_injected_services_not_the_contexts(
    context: Context, tmp_path: Path
) -> None:
    # The provider hands out services for another home: everything the run records lands
    # there, and nothing in the home the run's context names.
    elsewhere = AppServices(context.with_overrides(home=tmp_path / "elsewhere"))
    asked: list[Context] = []

    def provider(run_context: Context) -> TriageServices:
        asked.append(run_context)
        return elsewhere

    graph = build_graph(provider).compile(checkpointer=InMemorySaver())
    result = graph.invoke({"email": EMAIL}, {"configurable": {"thread_id": "t-1"}},
                          context=context)
    assert result["outcome"]["status"] in ("approved", "escalated")
    assert asked and all(seen is context for seen in asked)
    case = CaseStore(tmp_path / "elsewhere" / "cases.sqlite").get_case("wired-1")
    assert case is not None and case.status == result["outcome"]["status"]
    assert {e.action for e in read_events(tmp_path / "elsewhere" / "audit.jsonl")} >= {
        "email.received", "case.outcome"}
    assert not context.cases_path.exists() and not context.audit_path.exists()


def test_a_node_outside_a_graph_with_services_fails_clearly(context: Context) -> None:
    class Runtime:
        pass

    runtime: Any = Runtime()
    runtime.context = context
    with pytest.raises(RuntimeError, match=r"build_graph\(services=\.\.\.\)"):
        nodes.ingest({"email": EMAIL}, runtime)


def test_a_context_keeps_its_services_and_another_gets_its_own(context: Context) -> None:
    same = services_for(context)
    assert services_for(context) is same
    twin = Context(home=context.home, db=context.db, review="none")
    assert twin == context and services_for(twin) is not same
    assert same.context == context and same.context is not context  # a copy: see below


def test_services_go_when_their_context_does(tmp_path: Path) -> None:
    provider = ServicesByContext()
    context = Context(home=tmp_path)
    provider(context)
    assert len(provider) == 1
    del context
    gc.collect()
    assert len(provider) == 0


def test_threads_of_a_batch_share_one_case_store(context: Context) -> None:
    services = AppServices(context)
    stores: list[object] = []
    start = threading.Barrier(8)

    def open_store() -> None:
        start.wait()
        stores.append(services.case_store)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(store) for store in stores}) == 1
