"""The console's HTML pages: sign-in, queue, case, escalations, metrics, audit, policy text.

Every page but sign-in needs a signed-in reviewer; every form carries the CSRF token. Pages
are rendered on the server with autoescaping, so email text is always shown as text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from mediavault.agent.ops import review_desk
from mediavault.agent.stores.case_store import REVIEW_REASON_CATEGORIES, CaseStore
from mediavault.agent.web import reports
from mediavault.agent.web.auth import (
    Reviewer,
    audit_sign_in,
    check_csrf,
    client_address,
    csrf_token,
    flash,
    page_reviewer,
    pop_flashes,
    safe_next,
    sign_in,
    sign_out,
    signed_in,
)
from mediavault.agent.web.case_view import review_token as token_of
from mediavault.agent.web.charts import horizontal_bars, stacked_columns
from mediavault.agent.web.decisions import Decision, DecisionOutcome, apply_decision
from mediavault.agent.web.runtime import console
from mediavault.agent.wiring import services_for
from mediavault.policies import policy_rules
from mediavault.tools.policy_retrieval import default_policy_library

router = APIRouter(include_in_schema=False)

PageReviewer = Annotated[Reviewer, Depends(page_reviewer)]
FormText = Annotated[str | None, Form()]
CsrfField = Annotated[str | None, Form(alias="csrf_token")]


def _store(request: Request) -> CaseStore:
    return services_for(console(request).settings.context).case_store


def render(
    request: Request,
    reviewer: Reviewer | None,
    template: str,
    status_code: int = 200,
    **values: Any,
) -> Response:
    """A page from ``template`` with what every page shows (nav, reviewer, messages)."""
    waiting = _store(request).count_by_status()["awaiting_review"] if reviewer else 0
    values.update(
        reviewer=reviewer,
        csrf_token=csrf_token(request),
        waiting=waiting,
        flashes=pop_flashes(request),
    )
    return console(request).templates.TemplateResponse(
        request, template, values, status_code=status_code
    )


# --------------------------------------------------------------------------------- sign-in


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if signed_in(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, None, "login.html", next=safe_next(next), error=None, username="")


_THROTTLED = {
    "name": "Too many failed attempts for this name. Wait 15 minutes and try again.",
    "client": "Too many failed attempts from this address. Wait 15 minutes and try again.",
    "overall": "Too many failed sign-ins on this console. Wait 15 minutes and try again.",
}


@router.post("/login")
def login(
    request: Request,
    username: FormText = None,
    password: FormText = None,
    csrf_token_field: CsrfField = None,
    next_field: Annotated[str | None, Form(alias="next")] = None,
) -> Response:
    check_csrf(request, csrf_token_field)
    state = console(request)
    name, secret, target = (username or "").strip(), password or "", safe_next(next_field)
    now = state.now()
    client = client_address(request)
    refusal = state.throttle.refusal(name, client, now)
    if refusal is not None:
        audit_sign_in(request, name, ok=False, reason=f"too many failed attempts ({refusal})")
        error = _THROTTLED[refusal]
    elif name and secret and state.accounts.verify(name, secret):
        state.throttle.succeeded(name)
        sign_in(request, name)
        audit_sign_in(request, name, ok=True, reason="password")
        return RedirectResponse(target, status_code=303)
    else:
        state.throttle.failed(name, now, client)
        audit_sign_in(request, name, ok=False, reason="wrong name or password")
        error = "Wrong name or password."
    return render(
        request, None, "login.html", status_code=401, next=target, error=error, username=name[:64]
    )


@router.post("/logout")
def logout(request: Request, csrf_token_field: CsrfField = None) -> Response:
    check_csrf(request, csrf_token_field)
    sign_out(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def home(reviewer: PageReviewer) -> Response:
    return RedirectResponse("/queue", status_code=303)


# ----------------------------------------------------------------------------------- queue


@router.get("/queue")
def queue_page(
    request: Request,
    reviewer: PageReviewer,
    reason_code: str | None = None,
    queue: str | None = None,
    search: str | None = None,
) -> Response:
    queue_data = reports.review_queue(
        _store(request),
        console(request).business_now(),
        reason_code=reason_code or None,
        queue=queue or None,
        search=(search or "").strip()[:200] or None,
    )
    rules = policy_rules()
    return render(
        request,
        reviewer,
        "queue.html",
        queue=queue_data,
        reason_codes=list(rules.reason_codes),
        queues=list(rules.queues),
        selected_reason=reason_code or "",
        selected_queue=queue or "",
        search=(search or "").strip()[:200],
    )


# ------------------------------------------------------------------------------------ case


def _case_page(
    request: Request,
    reviewer: Reviewer,
    email_id: str,
    *,
    status_code: int = 200,
    outcome: DecisionOutcome | None = None,
    edit_text: str | None = None,
    open_panel: str | None = None,
) -> Response:
    state = console(request)
    try:
        case = review_desk.show_case(email_id, state.settings.context)
    except review_desk.CaseNotFound:
        raise HTTPException(status_code=404, detail=f"There is no case {email_id!r}.") from None
    draft_text = case.draft.text if case.draft else ""
    refused = list(case.refused_problems)
    if outcome is not None and open_panel == "edit":
        refused = list(outcome.problems)
    return render(
        request,
        reviewer,
        "case.html",
        status_code=status_code,
        case=case,
        token=token_of(case),
        titles={c.section_id: c.title for c in case.policy_citations},
        outcome=outcome,
        edit_text=draft_text if edit_text is None else edit_text,
        edit_problems=refused,
        open_panel=open_panel or ("edit" if refused else None),
        categories=REVIEW_REASON_CATEGORIES,
        queues=policy_rules().queues,
    )


@router.get("/cases/{email_id:path}")
def case_page(request: Request, email_id: str, reviewer: PageReviewer) -> Response:
    return _case_page(request, reviewer, email_id)


_STATUS_FOR = {"done": 303, "invalid": 422, "already_decided": 409, "stale": 409, "not_found": 404}


def _decide(
    request: Request,
    reviewer: Reviewer,
    email_id: str,
    token: str | None,
    decision: Decision,
    edit_text: str | None = None,
) -> Response:
    outcome = apply_decision(
        console(request).settings.context, email_id, decision, expected_token=token or None
    )
    if outcome.result == "not_found":
        raise HTTPException(status_code=404, detail=outcome.message)
    if outcome.applied:
        # On to the next draft that waits (oldest first); the queue when none is left.
        upcoming = next((case.email_id for case in _store(request).pending_reviews()
                         if case.email_id != email_id), None)
        flash(request, "ok", outcome.message + (
            " Next, the oldest draft still waiting:" if upcoming else " No other draft waits."))
        target = f"/cases/{quote(upcoming, safe='')}" if upcoming else "/queue"
        return RedirectResponse(target, status_code=303)
    return _case_page(
        request,
        reviewer,
        email_id,
        status_code=_STATUS_FOR[outcome.result],
        outcome=outcome,
        edit_text=edit_text,
        open_panel=decision.kind,
    )


@router.post("/cases/{email_id:path}/approve")
def approve(
    request: Request,
    email_id: str,
    reviewer: PageReviewer,
    csrf_token_field: CsrfField = None,
    review_token: FormText = None,
) -> Response:
    check_csrf(request, csrf_token_field)
    return _decide(request, reviewer, email_id, review_token, Decision("approve", reviewer.name))


@router.post("/cases/{email_id:path}/edit")
def edit(
    request: Request,
    email_id: str,
    reviewer: PageReviewer,
    csrf_token_field: CsrfField = None,
    review_token: FormText = None,
    body: FormText = None,
) -> Response:
    check_csrf(request, csrf_token_field)
    # Browsers send CRLF line ends from a textarea; the reply is kept with LF.
    text = (body or "").replace("\r\n", "\n")
    return _decide(
        request,
        reviewer,
        email_id,
        review_token,
        Decision("edit", reviewer.name, body=text),
        edit_text=text,
    )


@router.post("/cases/{email_id:path}/reject")
def reject(
    request: Request,
    email_id: str,
    reviewer: PageReviewer,
    csrf_token_field: CsrfField = None,
    review_token: FormText = None,
    reason_category: FormText = None,
    message: FormText = None,
) -> Response:
    check_csrf(request, csrf_token_field)
    return _decide(
        request,
        reviewer,
        email_id,
        review_token,
        Decision(
            "reject", reviewer.name, reason_category=reason_category or "", message=message or ""
        ),
    )


@router.post("/cases/{email_id:path}/escalate")
def escalate(
    request: Request,
    email_id: str,
    reviewer: PageReviewer,
    csrf_token_field: CsrfField = None,
    review_token: FormText = None,
    queue: FormText = None,
    message: FormText = None,
) -> Response:
    check_csrf(request, csrf_token_field)
    return _decide(
        request,
        reviewer,
        email_id,
        review_token,
        Decision(
            "escalate", reviewer.name, queue=queue or "", message=(message or "").strip() or None
        ),
    )


# ------------------------------------------------------------------------ other pages


@router.get("/policies/{section_id}")
def policy_page(request: Request, section_id: str, reviewer: PageReviewer) -> Response:
    try:
        section = default_policy_library().get(section_id)
    except KeyError:
        raise HTTPException(
            status_code=404, detail=f"There is no policy section {section_id!r}."
        ) from None
    return render(
        request, reviewer, "policy.html", section=section, version=default_policy_library().version
    )


@router.get("/escalations")
def escalations_page(
    request: Request, reviewer: PageReviewer, queue: str | None = None
) -> Response:
    groups = reports.escalation_queues(_store(request), queue=queue or None)
    return render(
        request,
        reviewer,
        "escalations.html",
        groups=groups,
        queues=list(policy_rules().queues),
        selected_queue=queue or "",
        total=sum(len(g.tickets) for g in groups),
    )


def _day(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise HTTPException(
            status_code=422, detail=f"{what} {value[:20]!r} is not a date; use YYYY-MM-DD"
        ) from None


def _percent(value: float) -> str:
    return f"{value:.0%}"


@router.get("/metrics")
def metrics_page(
    request: Request,
    reviewer: PageReviewer,
    since: Annotated[str | None, Query(max_length=10)] = None,
    until: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    report = reports.metrics_report(
        _store(request), since=_day(since, "since"), until=_day(until, "until")
    )
    m = report.metrics
    rates = [
        ("deflection", m.deflection_rate),
        ("re-open", m.reopen_rate),
        ("escalation", m.escalation_rate),
        ("tone rejection", m.tone_rejection_rate),
        ("edit", m.edit_rate),
    ]
    charts = {
        "rates": horizontal_bars(
            "Pilot rates", [(n, v or 0.0) for n, v in rates], maximum=1.0, label=_percent
        ),
        "queues": horizontal_bars(
            "Escalations by queue",
            [(queue, float(count)) for queue, count in m.escalations_by_queue.items()],
        ),
        "outcomes": stacked_columns(
            "Review outcomes per day",
            [d.day[5:] for d in report.review_outcomes],
            {
                kind: [getattr(d, kind) for d in report.review_outcomes]
                for kind in reports.DECISION_KINDS
            },
        ),
    }
    return render(
        request,
        reviewer,
        "metrics.html",
        report=report,
        m=m,
        charts=charts,
        since=since or "",
        until=until or "",
    )


@router.get("/audit")
def audit_page(request: Request, reviewer: PageReviewer) -> Response:
    status = reports.audit_status(console(request).settings.context)
    return render(request, reviewer, "audit.html", status=status)
