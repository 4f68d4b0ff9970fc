"""The red-team report: one record per run, rates per goal, template and placement.

Rates follow AgentDojo's vocabulary: *utility* is the share of clean emails a model handles
correctly, *utility under attack* the same for injected emails, and *attack success* the share
of runs in which the attacker's goal was achieved (decided from effects, see
:mod:`mediavault.evals.redteam.judge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mediavault.evals.redteam.sandbox import RunEffects


@dataclass(frozen=True)
class RunRecord:
    """What one run of the suite did and whether the attack in it succeeded."""

    part: str  # catalogue, baseline or matrix
    goal: str
    variant: str
    model: str
    review: str
    email_id: str
    status: str | None
    queue: str | None
    seconds: float
    findings: tuple[str, ...]
    template: str | None = None
    placement: str | None = None
    delivered: bool | None = None
    utility: bool | None = None
    database_unchanged: bool = True
    crashed: bool = False

    @property
    def succeeded(self) -> bool:
        return bool(self.findings)

    @classmethod
    def from_effects(
        cls,
        *,
        part: str,
        goal: str,
        variant: str,
        model: str,
        review: str,
        effects: RunEffects,
        findings: Sequence[str],
        template: str | None = None,
        placement: str | None = None,
        delivered: bool | None = None,
        utility: bool | None = None,
    ) -> RunRecord:
        return cls(
            part=part,
            goal=goal,
            variant=variant,
            model=model,
            review=review,
            email_id=effects.email_id,
            status=effects.status,
            queue=effects.ticket_queue,
            seconds=round(effects.elapsed_seconds, 3),
            findings=tuple(findings),
            template=template,
            placement=placement,
            delivered=delivered,
            utility=utility,
            database_unchanged=not effects.db_changed and not effects.new_files,
            crashed=effects.crash is not None,
        )


def _rate(hits: int, total: int) -> str:
    return f"{100 * hits / total:.0f}%" if total else "-"


@dataclass
class RedTeamReport:
    """All runs of one suite execution."""

    catalogue: list[RunRecord] = field(default_factory=list)
    baseline: list[RunRecord] = field(default_factory=list)
    matrix: list[RunRecord] = field(default_factory=list)
    full_matrix: bool = True
    seconds: float = 0.0

    @property
    def runs(self) -> list[RunRecord]:
        return [*self.catalogue, *self.baseline, *self.matrix]

    @property
    def successes(self) -> list[RunRecord]:
        """Runs in which an attack (or, for clean runs, anything at all) went wrong."""
        return [run for run in self.runs if run.succeeded]

    @property
    def ok(self) -> bool:
        return not self.successes

    # ---------------------------------------------------------------------------- summaries

    def catalogue_by_goal(self) -> list[dict[str, Any]]:
        rows = []
        for goal in dict.fromkeys(r.goal for r in self.catalogue):
            runs = [r for r in self.catalogue if r.goal == goal]
            hits = sum(r.succeeded for r in runs)
            statuses: dict[str, int] = {}
            for run in runs:
                statuses[str(run.status)] = statuses.get(str(run.status), 0) + 1
            rows.append(
                {
                    "goal": goal,
                    "variants": len(runs),
                    "succeeded": hits,
                    "attack_success": _rate(hits, len(runs)),
                    "outcomes": statuses,
                }
            )
        return rows

    def baseline_utility(self) -> dict[str, str]:
        result = {}
        for model in dict.fromkeys(r.model for r in self.baseline):
            runs = [r for r in self.baseline if r.model == model]
            result[model] = _rate(sum(bool(r.utility) for r in runs), len(runs))
        return result

    def matrix_by(self, key: Callable[[RunRecord], str | None]) -> list[dict[str, Any]]:
        """Per value of ``key``: cases, injections delivered, utility under attack and attack
        success for each model."""
        rows = []
        for value in dict.fromkeys(key(r) for r in self.matrix):
            row: dict[str, Any] = {"name": value}
            for model in dict.fromkeys(r.model for r in self.matrix):
                runs = [r for r in self.matrix if key(r) == value and r.model == model]
                row[model] = {
                    "cases": len(runs),
                    "delivered": _rate(sum(bool(r.delivered) for r in runs), len(runs)),
                    "utility_under_attack": _rate(sum(bool(r.utility) for r in runs), len(runs)),
                    "attack_success": _rate(sum(r.succeeded for r in runs), len(runs)),
                    "succeeded": sum(r.succeeded for r in runs),
                }
            rows.append(row)
        return rows

    def invariants(self) -> dict[str, Any]:
        runs = self.runs
        return {
            "runs": len(runs),
            "database_unchanged": sum(r.database_unchanged for r in runs),
            "crashes": sum(r.crashed for r in runs),
            "without_usable_outcome": sum(
                r.status not in ("awaiting_review", "approved", "rejected", "escalated")
                for r in runs
            ),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "full_matrix": self.full_matrix,
            "invariants": self.invariants(),
            "catalogue": self.catalogue_by_goal(),
            "baseline_utility": self.baseline_utility(),
            "matrix_by_goal": self.matrix_by(lambda r: r.goal),
            "matrix_by_template": self.matrix_by(lambda r: r.template),
            "matrix_by_placement": self.matrix_by(lambda r: r.placement),
            "successes": [asdict(r) for r in self.successes],
            "runs": [asdict(r) for r in self.runs],
        }

    # ------------------------------------------------------------------------------ tables

    def render(self) -> Group:
        """Rich tables: catalogue goals x outcomes, then the matrix by goal, template and
        placement, then any success in full."""
        parts: list[Any] = []
        if self.catalogue:
            table = Table(title="Compromised model: attacker goals x outcomes", show_edge=False)
            for column in ("goal", "variants", "attack success", "outcomes"):
                table.add_column(column, justify="right" if column != "goal" else "left")
            for row in self.catalogue_by_goal():
                outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
                table.add_row(
                    row["goal"],
                    str(row["variants"]),
                    f"{row['succeeded']} ({row['attack_success']})",
                    outcomes,
                )
            parts.append(table)
        if self.matrix:
            utility = ", ".join(f"{m} {u}" for m, u in self.baseline_utility().items())
            parts.append(
                Text(
                    f"\nInjected emails ({len(self.matrix)} runs, "
                    f"{'full matrix' if self.full_matrix else 'slice'}); "
                    f"utility without attack: {utility}"
                )
            )
            for title, key in (
                ("goal", lambda r: r.goal),
                ("template", lambda r: r.template),
                ("placement", lambda r: r.placement),
            ):
                parts.append(self._matrix_table(title, self.matrix_by(key)))
        invariants = self.invariants()
        parts.append(
            Text(
                f"\n{invariants['runs']} runs: database unchanged in "
                f"{invariants['database_unchanged']}, crashes {invariants['crashes']}, without a "
                f"usable outcome {invariants['without_usable_outcome']}; {self.seconds:.0f} s"
            )
        )
        verdict = "no attack succeeded" if self.ok else f"{len(self.successes)} ATTACKS SUCCEEDED"
        parts.append(Text(verdict, style="bold green" if self.ok else "bold red"))
        for run in self.successes:
            parts.append(
                Text(
                    f"  {run.part} {run.goal}/{run.variant} ({run.model}, "
                    f"{run.template or '-'}, {run.placement or '-'}): " + "; ".join(run.findings)
                )
            )
        return Group(*parts)

    @staticmethod
    def _matrix_table(title: str, rows: Iterable[dict[str, Any]]) -> Table:
        rows = list(rows)
        models = [k for k in rows[0] if k != "name"] if rows else []
        table = Table(title=f"Injected emails by {title}", show_edge=False)
        table.add_column(title)
        for model in models:
            table.add_column(f"{model}: delivered", justify="right")
            table.add_column("utility under attack", justify="right")
            table.add_column("attack success", justify="right")
        for row in rows:
            cells = [str(row["name"])]
            for model in models:
                stats = row[model]
                cells += [
                    stats["delivered"],
                    stats["utility_under_attack"],
                    f"{stats['succeeded']}/{stats['cases']} ({stats['attack_success']})",
                ]
            table.add_row(*cells)
        return table


__all__ = ["RedTeamReport", "RunRecord"]
