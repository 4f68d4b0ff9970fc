"""The Email Triage state machine: nodes, edges and the compiled graph.

``build_graph(services=...)`` returns the uncompiled builder wired to the services it is given
(see :mod:`graph.ports`); callers compile it with the checkpointer they need (tests compile one
per test, the Python API uses SQLite, Studio brings its own). The application's wiring, with
its default services, is ``mediavault.agent.wiring``.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from mediavault.graph import nodes
from mediavault.graph.audit_trail import audited
from mediavault.graph.context import Context
from mediavault.graph.gates import investigation_tools
from mediavault.graph.ports import ServiceProvider, TriageServices
from mediavault.graph.state import TriageInput, TriageOutput, TriageState

#: Node names, in the order of the skill's stages (skills/email-triage/SKILL.md).
NODE_NAMES = (
    "ingest",
    "safety_check",
    "investigate",
    "investigation_gate",
    "investigation_tools",
    "decide",
    "draft",
    "draft_gate",
    "draft_tool",
    "escalate",
    "escalation_gate",
    "ticket_tool",
    "human_review",
    "finalize",
)


def build_graph(
    services: ServiceProvider,
) -> StateGraph[TriageState, Context, TriageInput, TriageOutput]:
    """The uncompiled Email Triage graph; its nodes reach the world only through ``services``."""
    builder = StateGraph(
        TriageState, context_schema=Context, input_schema=TriageInput, output_schema=TriageOutput
    )

    def node(name: str, run: Any) -> None:
        builder.add_node(name, audited(run, services))

    node("ingest", nodes.ingest)
    node("safety_check", nodes.safety_check)
    node("investigate", nodes.investigate)
    node("investigation_gate", nodes.investigation_gate)
    node("investigation_tools", investigation_tools)
    node("decide", nodes.decide)
    node("draft", nodes.draft)
    node("draft_gate", nodes.draft_gate)
    node("draft_tool", nodes.draft_tool)
    node("escalate", nodes.escalate)
    node("escalation_gate", nodes.escalation_gate)
    node("ticket_tool", nodes.ticket_tool)
    node("human_review", nodes.human_review)
    node("finalize", nodes.finalize)

    builder.add_edge(START, "ingest")
    builder.add_edge("ingest", "safety_check")
    builder.add_edge("safety_check", "investigate")
    builder.add_conditional_edges(
        "investigate", nodes.route_after_investigate, ["investigation_gate", "decide"]
    )
    builder.add_conditional_edges(
        "investigation_gate",
        nodes.route_after_investigation_gate,
        ["investigation_tools", "investigate", "decide"],
    )
    builder.add_edge("investigation_tools", "investigate")
    builder.add_conditional_edges("decide", nodes.route_after_decide, ["draft", "escalate"])
    builder.add_conditional_edges(
        "draft", nodes.route_after_draft, ["draft_gate", "draft", "escalate"]
    )
    builder.add_conditional_edges(
        "draft_gate", nodes.route_after_draft_gate, ["draft_tool", "draft", "escalate"]
    )
    builder.add_conditional_edges(
        "draft_tool", nodes.route_after_draft_tool, ["human_review", "draft", "escalate"]
    )
    builder.add_conditional_edges(
        "human_review",
        nodes.route_after_review,
        ["human_review", "draft", "escalate", "finalize"],
    )
    builder.add_edge("escalate", "escalation_gate")
    builder.add_edge("escalation_gate", "ticket_tool")
    builder.add_edge("ticket_tool", "finalize")
    builder.add_edge("finalize", END)
    return builder


def _no_services(context: Context) -> TriageServices:
    raise RuntimeError("this graph is for drawing only; build it with services to run it")


def mermaid_diagram() -> str:
    """The graph as a mermaid diagram (the README embeds it; a test keeps them in sync)."""
    return build_graph(_no_services).compile().get_graph().draw_mermaid()


DIAGRAM_START = "<!-- graph:start -->"
DIAGRAM_END = "<!-- graph:end -->"


def readme_with_diagram(readme: str) -> str:
    """The README text with the generated diagram between its markers (see `make diagram`)."""
    head, _, rest = readme.partition(DIAGRAM_START)
    _, _, tail = rest.partition(DIAGRAM_END)
    block = f"{DIAGRAM_START}\n```mermaid\n{mermaid_diagram().strip()}\n```\n{DIAGRAM_END}"
    return f"{head}{block}{tail}"


if __name__ == "__main__":  # `python -m mediavault.graph.builder README.md` refreshes the diagram
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(readme_with_diagram(target.read_text(encoding="utf-8")), encoding="utf-8")
