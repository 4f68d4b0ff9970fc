"""The graph ``langgraph.json`` exports to LangGraph Studio, ``langgraph dev`` and the server.

Compiled without a checkpointer (the server brings its own persistence), with the
application's services; models are built lazily inside nodes, so the server starts with no
API key.
"""

from __future__ import annotations

from typing import Any

from mediavault.agent.wiring import build_graph

#: The graph `langgraph.json` exports.
email_triage: Any = build_graph().compile(name="email_triage")
