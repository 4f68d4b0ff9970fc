"""The Email Triage state machine: nodes, edges and the compiled graph.

``build_graph()`` returns the uncompiled builder; callers compile it with the checkpointer they
need (tests compile one per test, the Python API uses SQLite, Studio brings its own).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from mediavault.graph import nodes
from mediavault.graph.audit_trail import audited
from mediavault.graph.context import Context
from mediavault.graph.gates import investigation_tools
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


def build_graph() -> StateGraph[TriageState, Context, TriageInput, TriageOutput]:
    """The uncompiled Email Triage graph."""
    builder = StateGraph(
        TriageState, context_schema=Context, input_schema=TriageInput, output_schema=TriageOutput
    )
    builder.add_node("ingest", audited(nodes.ingest))
    builder.add_node("safety_check", audited(nodes.safety_check))
    builder.add_node("investigate", audited(nodes.investigate))
    builder.add_node("investigation_gate", audited(nodes.investigation_gate))
    builder.add_node("investigation_tools", audited(investigation_tools))
    builder.add_node("decide", audited(nodes.decide))
    builder.add_node("draft", audited(nodes.draft))
    builder.add_node("draft_gate", audited(nodes.draft_gate))
    builder.add_node("draft_tool", audited(nodes.draft_tool))
    builder.add_node("escalate", audited(nodes.escalate))
    builder.add_node("escalation_gate", audited(nodes.escalation_gate))
    builder.add_node("ticket_tool", audited(nodes.ticket_tool))
    builder.add_node("human_review", audited(nodes.human_review))
    builder.add_node("finalize", audited(nodes.finalize))

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


@cache
def _compiled_without_saver() -> Any:
    return build_graph().compile()


def compile_with_checkpointer(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    """The compiled graph bound to ``checkpointer``.

    Compiling inspects every node's code and costs tens of milliseconds; it is done once per
    process and each caller gets a cheap copy bound to its own saver.
    """
    return _compiled_without_saver().copy(update={"checkpointer": checkpointer})


def mermaid_diagram() -> str:
    """The graph as a mermaid diagram (the README embeds it; a test keeps them in sync)."""
    return build_graph().compile().get_graph().draw_mermaid()


DIAGRAM_START = "<!-- graph:start -->"
DIAGRAM_END = "<!-- graph:end -->"


def readme_with_diagram(readme: str) -> str:
    """The README text with the generated diagram between its markers (see `make diagram`)."""
    head, _, rest = readme.partition(DIAGRAM_START)
    _, _, tail = rest.partition(DIAGRAM_END)
    block = f"{DIAGRAM_START}\n```mermaid\n{mermaid_diagram().strip()}\n```\n{DIAGRAM_END}"
    return f"{head}{block}{tail}"


def _studio_graph() -> Any:
    # LangGraph Studio / `langgraph dev` brings its own persistence: compile without a saver.
    return build_graph().compile(name="email_triage")


#: The graph `langgraph.json` exports.
email_triage = _studio_graph()


if __name__ == "__main__":  # `python -m graph.builder README.md` refreshes the diagram
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(readme_with_diagram(target.read_text(encoding="utf-8")), encoding="utf-8")
