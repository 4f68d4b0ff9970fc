"""The review console: a small web app where support staff review the agent's drafts.

    from mediavault.agent.web import create_app, ConsoleSettings
    app = create_app(ConsoleSettings.from_env())

``mediavault serve`` runs it; see the README, section "Review console".
"""

from __future__ import annotations

from mediavault.agent.web.app import create_app
from mediavault.agent.web.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "create_app"]
