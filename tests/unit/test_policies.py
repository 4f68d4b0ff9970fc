"""The policy document and the Email Triage skill say what the policy companion says."""

from __future__ import annotations

import re
from dataclasses import fields
from importlib.resources import files

import pytest

from mediavault.graph.context import Context
from mediavault.policies import policy_document, policy_rules
from mediavault.tools.policy_retrieval import default_policy_library

GRAPH_NODES = (
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
PATH_FOR_ROUTE = {"escalate": "A", "draft": "B", "policy": "C"}


def flat(text: str) -> str:
    """Text with line wrapping undone, so phrases match however the markdown is wrapped."""
    return " ".join(text.split())


def skill_document() -> str:
    return files("mediavault.skills").joinpath("email-triage/SKILL.md").read_text(encoding="utf-8")


def markdown_section(markdown: str, heading: str) -> str:
    """The body under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    for end in range(start, len(lines)):
        if re.match(rf"^#{{1,{level}}}\s", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of every body row of the markdown tables in ``markdown`` (header rows skipped)."""
    rows: list[list[str]] = []
    lines = [line.strip() for line in markdown.splitlines()]
    for index, line in enumerate(lines):
        if not line.startswith("|") or re.fullmatch(r"\|[\s|:-]+\|", line):
            continue
        is_header = index + 1 < len(lines) and re.fullmatch(r"\|[\s|:-]+\|", lines[index + 1])
        if not is_header:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def backticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- the policy document ------------------------------------------------------------------


def test_document_states_the_late_fee_and_lost_item_rules() -> None:
    rules = policy_rules().late_fees
    text = flat(policy_document())
    assert f"${rules.fee_per_started_day:.2f} per started day past the due date" in text
    assert "the due date is the rental date plus the film's rental duration in days" in text
    assert "capped at the film's " + rules.capped_at.replace("_", " ") in text
    assert f"{rules.lost_after_days_past_due} days or more past its due date" in text
    assert "charged the film's " + rules.lost_charge.replace("_", " ") in text


def test_document_states_who_may_grant_waivers_and_refunds() -> None:
    waivers = policy_rules().waivers
    assert not waivers.agent_may_grant and not waivers.agent_may_promise
    text = flat(policy_document())
    limit = f"${waivers.staff_courtesy_waiver_max:.2f}"
    count = {1: "one", 2: "two", 3: "three"}[waivers.staff_courtesy_waivers_per_period]
    period = f"per customer per {waivers.staff_courtesy_period_months} months"
    assert f"Store staff may grant {count} courtesy waiver of up to {limit} {period}" in text
    assert f"Refunds, duplicate charges and waivers above {limit} go to the billing team" in text
    assert "Internal: do not promise a refund before billing approves it." in text


def test_document_states_the_email_change_rule() -> None:
    assert policy_rules().account.email_change_only_from_address_on_file
    assert (
        "A change of the e-mail address on file is accepted only when it is requested from the "
        "address on file" in flat(policy_document())
    )


def test_document_states_sign_off_and_every_forbidden_phrase_and_length_limit() -> None:
    communication = policy_rules().communication
    text = flat(policy_document())
    assert f'the sign-off "{communication.sign_off}"' in text
    for phrase in communication.forbidden_phrases:
        assert f'"{phrase}"' in text, phrase
    assert f"between {communication.draft_min_chars} and {communication.draft_max_chars}" in text


def test_queue_table_matches_the_companion_queues_and_routing() -> None:
    rules = policy_rules()
    section = markdown_section(policy_document(), "### Routing queues {#escalation.queues}")
    table = {backticked(row[0])[0]: row for row in table_rows(section)}
    assert list(table) == list(rules.queues)
    for queue, row in table.items():
        assert row[1] == rules.queues[queue], queue
    routed = {code: queue for code, queue in rules.routing.items() if code != "default"}
    for code, queue in routed.items():
        assert code in backticked(table[queue][2]), code
    listed = [code for row in table.values() for code in backticked(row[2])]
    assert sorted(listed) == sorted(routed)
    assert table[rules.routing["default"]][2] == "every other reason code"


def test_every_heading_has_a_unique_stable_id() -> None:
    headings = re.findall(r"^#{2,6} .*$", policy_document(), flags=re.MULTILINE)
    ids = [re.search(r"\{#([a-z0-9.-]+)\}$", heading) for heading in headings]
    assert all(ids), [h for h, found in zip(headings, ids, strict=True) if not found]
    found_ids = [match.group(1) for match in ids if match]
    assert len(found_ids) == len(set(found_ids))


def test_customer_safe_text_never_trips_the_forbidden_phrase_check() -> None:
    # Drafts may quote customer_text; a forbidden phrase in it would poison every such draft.
    forbidden = [phrase.lower() for phrase in policy_rules().communication.forbidden_phrases]
    for section in default_policy_library().sections():
        lowered = section.customer_text.lower()
        assert not [phrase for phrase in forbidden if phrase in lowered], section.id


def test_forbidden_phrase_list_is_staff_only() -> None:
    internal = " ".join(default_policy_library().internal_phrases()).lower()
    for phrase in policy_rules().communication.forbidden_phrases:
        assert f'"{phrase}"' in internal, phrase


def test_sign_off_is_in_customer_safe_text() -> None:
    sign_off = policy_rules().communication.sign_off
    assert sign_off in default_policy_library().get("communication.sign-off").customer_text


# --- the Email Triage skill ---------------------------------------------------------------


def test_skill_stage_table_names_exactly_the_graph_nodes_in_order() -> None:
    section = markdown_section(skill_document(), "## Stages in the graph")
    rows = table_rows(section)
    assert [backticked(row[0])[0] for row in rows] == list(GRAPH_NODES)
    assert all(len(row) == 2 and len(row[1]) > 20 for row in rows)


def test_skill_reason_code_table_matches_the_companion() -> None:
    rules = policy_rules()
    section = markdown_section(skill_document(), "## Reason codes")
    table = {backticked(row[0])[0]: row[1:] for row in table_rows(section)}
    assert list(table) == list(rules.reason_codes)
    for code, (route, path, queue) in table.items():
        assert route == rules.reason_codes[code], code
        assert path == PATH_FOR_ROUTE[route], code
        assert backticked(queue) == [rules.queue_for(code)], code


@pytest.mark.parametrize(
    ("setting", "phrase"),
    [
        ("max_tool_calls", "Tool calls (lookups) | {} per email"),
        ("max_model_calls", "Model calls | {} per email"),
        ("time_budget_seconds", "Wall-clock time | {:g} seconds per email"),
        ("max_draft_retries", "Draft fixes after a failed check | {}"),
    ],
)
def test_skill_budgets_match_the_runtime_defaults(setting: str, phrase: str) -> None:
    default = {field.name: field.default for field in fields(Context)}[setting]
    assert phrase.format(default) in skill_document()


def test_skill_describes_gate_verdicts_review_modes_and_paths() -> None:
    text = skill_document()
    for verdict in ("`allow`", "`deny(reason)`", "`review(description)`", "`all`", "`none`"):
        assert verdict in text
    stages = ("## Stage 1: safety check", "## Stage 2: investigate", "## Stage 3: decide and act")
    for heading in (*stages, "### Path A", "### Path B", "### Path C"):
        assert heading in text
    assert text.startswith("---\nname: email-triage\n")
    for code in policy_rules().auto_approval.never:
        assert f"`{code}`" in markdown_section(text, "## Review modes")


def test_the_severity_order_is_stated_in_the_policy_document() -> None:
    order = policy_rules().escalation.severity_order
    criteria = markdown_section(policy_document(), "### When to escalate {#escalation.criteria}")
    stated = criteria.split("the most severe decides the queue, in this order:", 1)[1]
    assert backticked(stated.split(".", 1)[0]) == list(order)
