"""The review console's FastAPI app: pages, JSON API, sessions and the security headers."""

from __future__ import annotations

import logging
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from mediavault.agent.web import api_routes, pages
from mediavault.agent.web.accounts import ReviewerAccounts
from mediavault.agent.web.auth import CsrfRefused, NotSignedIn, csrf_token, signed_in
from mediavault.agent.web.runtime import ConsoleState, console
from mediavault.agent.web.settings import ConsoleSettings

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mediavault_session"
#: No script at all, styles only from the console itself, no framing: even markup that slipped
#: past escaping could not run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

log = logging.getLogger("mediavault.console")


def _version() -> str:
    try:
        return version("mediavault-agent")
    except PackageNotFoundError:
        return "0+unknown"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: email text is never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["rate"] = _rate
    return Jinja2Templates(env=environment)


async def _security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static/"):
        # Case pages hold customer data: no copies in shared or browser caches.
        response.headers["Cache-Control"] = "no-store"
    return response


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_page(request: Request, status_code: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status_code)
    # Errors caught outside the session middleware (500s) have no session to read.
    has_session = "session" in request.scope
    reviewer = signed_in(request) if has_session else None
    return console(request).templates.TemplateResponse(
        request,
        "error.html",
        {
            "reviewer": reviewer,
            "csrf_token": csrf_token(request) if has_session else "",
            "waiting": None,
            "flashes": [],
            "status_code": status_code,
            "message": message,
        },
        status_code=status_code,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, problem: NotSignedIn) -> Response:
        if problem.api or _wants_json(request):
            return JSONResponse(
                {"detail": "not signed in: sign in, or send reviewer credentials (HTTP Basic)"},
                status_code=401,
            )
        target = request.url.path if request.method == "GET" else "/queue"
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, problem: CsrfRefused) -> Response:
        return _error_page(
            request,
            403,
            "Refused: the form's security token is missing or "
            "expired. Reload the page and try again.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, problem: StarletteHTTPException) -> Response:
        message = problem.detail if isinstance(problem.detail, str) else "Request refused."
        if problem.status_code == 404 and message == "Not Found":
            message = "There is no such page."
        return _error_page(request, problem.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, problem: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": problem.errors()}, status_code=422)
        first = problem.errors()[0] if problem.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_page(request, 422, f"Invalid request: {where}: {first.get('msg', '')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, problem: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error_page(
            request,
            500,
            f"Something went wrong ({type(problem).__name__}); "
            "the details are in the console's log.",
        )


def served_over_https(scope: Scope, settings: ConsoleSettings) -> bool:
    """Whether the browser reached the console over HTTPS: TLS on this server, or a trusted
    proxy saying so (``X-Forwarded-Proto``, or ``Forwarded: proto=``; believed only from the
    proxy addresses, like the user header)."""
    if scope.get("scheme") == "https":
        return True
    client = scope.get("client")
    if not client or client[0] not in settings.trusted_proxies:
        return False
    headers = Headers(scope=scope)
    forwarded_proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    forwarded = headers.get("forwarded", "").split(",")[0].lower()
    return forwarded_proto == "https" or "proto=https" in forwarded.replace(" ", "")


class ConsoleSessionMiddleware:
    """Starlette's signed-cookie sessions, with the cookie marked ``Secure`` whenever the
    request came over HTTPS (or ``MEDIAVAULT_WEB_SECURE_COOKIES`` says always)."""

    def __init__(self, app: ASGIApp, *, settings: ConsoleSettings) -> None:
        self._settings = settings
        options = {"secret_key": settings.secret_key, "session_cookie": SESSION_COOKIE,
                   "max_age": settings.session_max_age_seconds, "same_site": "lax"}
        self._secure = SessionMiddleware(app, https_only=True, **options)  # type: ignore[arg-type]
        self._configured = SessionMiddleware(
            app, https_only=settings.secure_cookies, **options)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = scope["type"] in ("http", "websocket") and served_over_https(
            scope, self._settings)
        await (self._secure if secure else self._configured)(scope, receive, send)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    """The review console app for ``settings`` (from the environment when not given)."""
    settings = settings or ConsoleSettings.from_env()
    app = FastAPI(
        title="MediaVault review console",
        version=_version(),
        description="Review the agent's drafts: approve, edit, reject or escalate. "
        "Authenticate with HTTP Basic (a reviewer account), or with the console's "
        "session plus the X-CSRF-Token header from GET /api/session.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the schema is served behind sign-in
    )
    app.state.console = ConsoleState(
        settings=settings,
        accounts=ReviewerAccounts(settings.reviewers_path),
        templates=_templates(),
    )
    app.include_router(pages.router)
    app.include_router(api_routes.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_error_handlers(app)
    # Added innermost first: the host check runs before anything else.
    app.add_middleware(ConsoleSessionMiddleware, settings=settings)
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    return app
