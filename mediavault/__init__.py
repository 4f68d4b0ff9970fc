"""MediaVault support agent: triage support email safely, review drafts, audit.

The public Python API, importable from the package root::

    from mediavault import Context, triage_email

    result = triage_email({"email_id": "e1", "received_at": "2026-03-01T09:00:00Z",
                           "from": "customer@example.com", "subject": "Due date?",
                           "body": "When is my film due back?"})

The layers are subpackages: ``mediavault.agent`` (the application: API, stores, models, CLI,
web console), ``mediavault.graph`` (the Email Triage state machine and the ports it needs),
``mediavault.tools`` (tools and the data-safety layer), ``mediavault.policies``,
``mediavault.skills`` and ``mediavault.evals``. Names are resolved lazily, so importing the
package loads neither the graph nor a model client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The public names are those of the application layer; importing its package is cheap (it
# resolves each name lazily too).
from mediavault.agent import __all__ as __all__

if TYPE_CHECKING:
    from mediavault.agent import *  # noqa: F403 - the same names, for type checkers


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mediavault import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'mediavault' has no attribute {name!r}")
