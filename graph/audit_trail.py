"""How a triage run's audit events reach the audit log: through its checkpoints.

Each node's events are gathered while it runs and returned with its state update
(``audit_pending``), so they are saved in the same checkpoint as the node's result: the
transactional outbox pattern. They are written to the log, in one locked append with one fsync,
whenever the run stops: at ``finalize``, before an interrupt that waits for a reviewer, and
when a node fails. The log is therefore complete whenever nobody is running the email.

A crash in between loses nothing: the events wait in the last checkpoint, and the run that
continues the thread writes them; event ids make a second write of the same event a no-op.
Why not append each event as it happens? An fsync per event (about 15 per email) cost more
than the rest of the product's work put together, for no gain in what survives a crash.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite

from mediavault.graph.context import Context
from mediavault.graph.ports import AuditSink, ServiceProvider, node_services, serving
from mediavault.graph.state import TriageState

#: An event from :meth:`graph.ports.AuditSink.prepare`, waiting in the state to be written.
PendingEvent = Mapping[str, Any]

#: The events of the node running in this context; None outside a node.
_GATHERED: ContextVar[list[PendingEvent] | None] = ContextVar(
    "mediavault_audit_gathered", default=None
)

_Node = TypeVar("_Node", bound=Callable[..., Any])


def record_event(runtime: Runtime[Context], action: str, **fields: Any) -> None:
    """Check and stamp one event now; the node's state update carries it to the log.

    ``fields`` are those of :meth:`graph.ports.AuditSink.prepare`. Only a node of a graph
    from ``build_graph(services=...)`` records events (it has the audit sink and gathers them).
    """
    event = node_services(runtime).audit.prepare(action, **fields)
    gathered = _GATHERED.get()
    if gathered is None:  # node_services found a node run, which always gathers
        raise RuntimeError("audit events are recorded inside a graph node only")
    gathered.append(event)


def write_events(audit: AuditSink, events: Iterable[Mapping[str, object]]) -> None:
    """Append events that a run left pending (in order; already-logged ids are skipped)."""
    pending = list(events)
    if pending:
        audit.append_prepared(pending)


def write_pending(state: TriageState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the run's pending events and this node's so far; returns the update that
    empties the pending list (for the node that ends the run)."""
    gathered = _GATHERED.get() or []
    write_events(node_services(runtime).audit, [*state.get("audit_pending", []), *gathered])
    gathered.clear()
    return {"audit_pending": Overwrite([])}


def audited(node: _Node, services: ServiceProvider) -> _Node:
    """Wrap a graph node: it runs with the services of its run's context (see
    :func:`graph.ports.node_services`), and the events it records travel with its update."""

    @functools.wraps(node)
    def run(state: TriageState, runtime: Runtime[Context]) -> Any:
        ports = services(runtime.context)
        gathered: list[PendingEvent] = []
        token = _GATHERED.set(gathered)
        try:
            with serving(runtime.context, ports):
                update = node(state, runtime)
        except BaseException:
            # The run stops here (an interrupt for a reviewer, or an error): write what it
            # has gathered, since this node's update will not be saved.
            write_events(ports.audit, [*state.get("audit_pending", []), *gathered])
            raise
        finally:
            _GATHERED.reset(token)
        return _with_events(update, gathered) if gathered else update

    return run  # type: ignore[return-value]


def _with_events(update: Any, events: list[PendingEvent]) -> Any:
    if isinstance(update, Command):
        return Command(graph=update.graph, update=_with_events(update.update or {}, events),
                       resume=update.resume, goto=update.goto)
    if update is None:
        return {"audit_pending": list(events)}
    if not isinstance(update, dict):
        raise TypeError(f"an audited node must return a dict or a Command, not {type(update)}")
    earlier = update.get("audit_pending")
    if isinstance(earlier, Overwrite):
        return {**update, "audit_pending": Overwrite([*earlier.value, *events])}
    return {**update, "audit_pending": [*(earlier or []), *events]}
