"""The complete `mediavault` command: the application's commands plus evals and red team.

The evaluation commands import the application (they run triage), so they are attached here,
above both, rather than inside the application's own CLI.
"""

from __future__ import annotations

from mediavault.agent.cli.app import app
from mediavault.evals.cli import eval_command
from mediavault.evals.redteam.cli import redteam_command

app.command(name="eval")(eval_command)
app.command(name="redteam")(redteam_command)

__all__ = ["app"]
