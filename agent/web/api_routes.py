"""The console's JSON API: the same reads and decisions as the pages, for other tools.

Callers authenticate with HTTP Basic (a reviewer account), or with the browser session or
proxy header plus the ``X-CSRF-Token`` header (from ``GET /api/session``) on every POST.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from mediavault.agent.ops import review_desk
from mediavault.agent.stores.case_store import CaseStore
from mediavault.agent.web import reports
from mediavault.agent.web.auth import Reviewer, api_decider, api_reviewer, csrf_token
from mediavault.agent.web.decisions import Decision, DecisionOutcome, apply_decision
from mediavault.agent.web.runtime import console
from mediavault.agent.web.schemas import (
    ApproveBody,
    AuditStatus,
    CaseDetail,
    DecisionResponse,
    EditBody,
    EscalateBody,
    EscalationQueue,
    MetricsReport,
    RejectBody,
    ReviewQueue,
    SessionInfo,
)
from mediavault.agent.wiring import services_for

ApiReviewer = Annotated[Reviewer, Depends(api_reviewer)]
ApiDecider = Annotated[Reviewer, Depends(api_decider)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in."},
    403: {"description": "The X-CSRF-Token header is missing or wrong."},
}
_DECISION_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": DecisionResponse, "description": "No such case."},
    409: {
        "model": DecisionResponse,
        "description": "Already decided, or the draft changed since review_token was read.",
    },
    422: {
        "model": DecisionResponse,
        "description": "The decision was refused (e.g. an edit "
        "that failed validation); see problems.",
    },
}
_STATUS = {"done": 200, "invalid": 422, "already_decided": 409, "stale": 409, "not_found": 404}

router = APIRouter(prefix="/api", tags=["review"], responses=_ERRORS)


def _store(request: Request) -> CaseStore:
    return services_for(console(request).settings.context).case_store


@router.get("/session", response_model=SessionInfo)
def session_info(request: Request, reviewer: ApiReviewer) -> SessionInfo:
    """Who is signed in, and the CSRF token for POSTs made with browser credentials."""
    token = csrf_token(request) if reviewer.via != "basic" else None
    return SessionInfo(reviewer=reviewer.name, via=reviewer.via, csrf_token=token)


@router.get("/reviews", response_model=ReviewQueue)
def list_reviews(
    request: Request,
    reviewer: ApiReviewer,
    reason_code: str | None = None,
    queue: str | None = None,
) -> ReviewQueue:
    """Cases waiting for review, oldest first, optionally filtered."""
    return reports.review_queue(
        _store(request),
        console(request).now(),
        reason_code=reason_code or None,
        queue=queue or None,
    )


@router.get(
    "/cases/{email_id:path}",
    response_model=CaseDetail,
    responses={404: {"description": "No such case."}},
)
def get_case(request: Request, email_id: str, reviewer: ApiReviewer) -> CaseDetail:
    """Everything a reviewer sees of one case."""
    try:
        case = review_desk.show_case(email_id, console(request).settings.context)
    except review_desk.CaseNotFound:
        raise HTTPException(status_code=404, detail=f"no case {email_id!r}") from None
    return reports.case_detail(case)


def _respond(
    request: Request, email_id: str, token: str | None, decision: Decision
) -> JSONResponse:
    outcome = apply_decision(
        console(request).settings.context, email_id, decision, expected_token=token
    )
    return _json(email_id, outcome)


def _json(email_id: str, outcome: DecisionOutcome) -> JSONResponse:
    body = DecisionResponse(
        email_id=email_id,
        result=outcome.result,
        message=outcome.message,
        status=outcome.status,
        problems=list(outcome.problems),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=_STATUS[outcome.result])


@router.post(
    "/cases/{email_id:path}/approve", response_model=DecisionResponse, responses=_DECISION_ERRORS
)
def approve(
    request: Request, email_id: str, body: ApproveBody, reviewer: ApiDecider
) -> JSONResponse:
    """Approve the draft: the reply goes to the outbox."""
    return _respond(request, email_id, body.review_token, Decision("approve", reviewer.name))


@router.post(
    "/cases/{email_id:path}/edit", response_model=DecisionResponse, responses=_DECISION_ERRORS
)
def edit(request: Request, email_id: str, body: EditBody, reviewer: ApiDecider) -> JSONResponse:
    """Replace the draft's text and approve it, if it passes validation and DLP."""
    return _respond(
        request,
        email_id,
        body.review_token,
        Decision("edit", reviewer.name, body=body.body.replace("\r\n", "\n")),
    )


@router.post(
    "/cases/{email_id:path}/reject", response_model=DecisionResponse, responses=_DECISION_ERRORS
)
def reject(request: Request, email_id: str, body: RejectBody, reviewer: ApiDecider) -> JSONResponse:
    """Reject the draft with a reason category and a message."""
    return _respond(
        request,
        email_id,
        body.review_token,
        Decision(
            "reject", reviewer.name, reason_category=body.reason_category, message=body.message
        ),
    )


@router.post(
    "/cases/{email_id:path}/escalate", response_model=DecisionResponse, responses=_DECISION_ERRORS
)
def escalate(
    request: Request, email_id: str, body: EscalateBody, reviewer: ApiDecider
) -> JSONResponse:
    """Escalate the case to a queue instead of replying."""
    return _respond(
        request,
        email_id,
        body.review_token,
        Decision("escalate", reviewer.name, queue=body.queue, message=body.message),
    )


@router.get("/escalations", response_model=list[EscalationQueue])
def list_escalations(
    request: Request, reviewer: ApiReviewer, queue: str | None = None
) -> list[EscalationQueue]:
    """Escalation tickets grouped by queue."""
    return reports.escalation_queues(_store(request), queue=queue or None)


def _day(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), tzinfo=UTC)


@router.get("/metrics", response_model=MetricsReport)
def metrics(
    request: Request,
    reviewer: ApiReviewer,
    since: Annotated[date | None, Query(description="First day (YYYY-MM-DD).")] = None,
    until: Annotated[date | None, Query(description="Day after the last.")] = None,
) -> MetricsReport:
    """Pilot metrics for cases received in [since, until)."""
    return reports.metrics_report(_store(request), since=_day(since), until=_day(until))


@router.get("/audit", response_model=AuditStatus)
def audit(request: Request, reviewer: ApiReviewer) -> AuditStatus:
    """Verify the audit log's hash chain."""
    return reports.audit_status(console(request).settings.context)


@router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request, reviewer: ApiReviewer) -> JSONResponse:
    """This API's OpenAPI schema."""
    return JSONResponse(request.app.openapi())
