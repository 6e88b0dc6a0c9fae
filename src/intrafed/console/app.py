"""The console's web application: login, sessions and CSRF around every page, and the
configuration tabs, each a list above its forms (POST, then redirect to GET)."""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from intrafed.config.model import ConfigError, NodeConfig
from intrafed.console.config_pages import config_pages
from intrafed.console.forms import MAX_UPLOAD_BYTES, ConfigPage, FormValues, Upload
from intrafed.console.password import matches, stored_hash
from intrafed.console.security import Admitted, LoginThrottle, Session, Sessions, Wait
from intrafed.pki import PkiError
from intrafed.store import load_staged

COOKIE = "intrafed_console"
_log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4 * MAX_UPLOAD_BYTES
"""A POST larger than this is refused unread."""
HERE = Path(__file__).parent
"""Where the templates and the stylesheet are."""
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LIVE_PAGES = (
    ("status", "Status"),
    ("check", "Check"),
    ("probe", "Probe"),
    ("live", "Registrations"),
    ("trace", "Trace"),
)


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """What the console serves: a node's home, the other nodes' homes (for the
    deployment-wide check and the ladder), and whether it is reached over TLS."""

    home: Path
    peers: tuple[Path, ...] = ()
    secure: bool = False
    in_node: bool = False
    """Served by the node itself: restarting the node restarts the console."""


@dataclass(slots=True)
class Console:
    """The console's state: settings, sessions, the login throttle and the templates."""

    settings: ConsoleSettings
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=HERE / "templates")
    )


@dataclass(slots=True)
class Visit:
    """One request by a logged-in administrator."""

    request: Request
    console: Console
    session: Session
    config: NodeConfig
    form: FormValues | None

    @property
    def source(self) -> str:
        """The address the request came from."""
        client = self.request.client
        return client.host if client else "unknown"

    @property
    def home(self) -> Path:
        """The node's home."""
        return self.console.settings.home

    def pages(self) -> tuple[ConfigPage, ...]:
        """The configuration tabs of this node's role."""
        return config_pages(self.config.role)

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        """A page, with the navigation and the notice left by the last redirect."""
        notice, self.session.notice = self.session.notice, None
        context |= {
            "config": self.config,
            "tabs": [(page.slug, page.title) for page in self.pages()],
            "live_pages": LIVE_PAGES,
            "csrf": self.session.csrf,
            "notice": notice.splitlines() if notice else [],
            "path": self.request.url.path,
        }
        return self.console.templates.TemplateResponse(
            self.request, template, context, status_code, headers=_HEADERS
        )

    def redirect(self, path: str, notice: str | None = None) -> Response:
        """POST-redirect-GET, carrying ``notice`` to the next page."""
        self.session.notice = notice
        return RedirectResponse(path, 303, headers=_HEADERS)


Page = Callable[[Visit], Awaitable[Response]]


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _now() -> float:
    return time.monotonic()


def guarded(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """``page`` for a logged-in session only (else to the login page, or 403 for a POST),
    and a POST only with the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        console = _console(request)
        session = console.sessions.find(request.cookies.get(COOKIE), _now())
        if session is None or not session.authenticated:
            if request.method == "POST":
                return _refuse(403, "not logged in: log in again")
            target = urllib.parse.quote(request.url.path, safe="/")
            return RedirectResponse(f"/login?next={target}", 303, headers=_HEADERS)
        form: FormValues | None = None
        if request.method == "POST":
            submitted = await _read_form(request)
            if isinstance(submitted, Response):
                return submitted
            form = submitted
            if not session.csrf_matches(form.text("csrf")):
                return _refuse(403, "the form's CSRF token is missing or wrong: reload the page")
        try:
            config = load_staged(console.settings.home)
            return await page(Visit(request, console, session, config, form))
        except (ConfigError, PkiError) as exc:
            # What the CLI would print as its one line: the home or a peer cannot be used.
            return _refuse(409, str(exc))

    return endpoint


def _refuse(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(text, status, headers={**_HEADERS, **(headers or {})})


async def _read_form(request: Request) -> FormValues | Response:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return _refuse(411, "a form needs a Content-Length")
    if int(length) > MAX_BODY_BYTES:
        return _refuse(413, f"a form may carry {MAX_BODY_BYTES} bytes at most")
    async with request.form(max_files=4, max_fields=50, max_part_size=MAX_UPLOAD_BYTES) as data:
        values: dict[str, str] = {}
        uploads: dict[str, Upload] = {}
        for name, value in data.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                if value.filename and content:
                    uploads[name] = Upload(value.filename, content)
            else:
                values[name] = value
    return FormValues(values, uploads)


# Login and logout.


def _set_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="strict", secure=secure, path="/"
    )


def _next_path(value: str | None) -> str:
    """Where to go after logging in: a path of this console only."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login(request: Request) -> Response:
    """The login form (GET) and the password check (POST), throttled per source."""
    console = _console(request)
    now = _now()
    session = console.sessions.find(request.cookies.get(COOKIE), now)
    if session is None:
        session = console.sessions.open(now)
    error = None
    status = 200
    next_path = _next_path(request.query_params.get("next"))
    if request.method == "POST":
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        if not session.csrf_matches(form.text("csrf")):
            return _refuse(403, "the form's CSRF token is missing or wrong: reload the page")
        next_path = _next_path(form.text("next"))
        source = request.client.host if request.client else "unknown"
        match console.throttle.admit(source, now):
            case Wait(seconds):
                wait = max(1, math.ceil(seconds))
                _log.warning("login from %s refused: too many wrong passwords", source)
                return _refuse(
                    429,
                    f"too many wrong passwords: try again in {wait} s",
                    {"Retry-After": str(wait)},
                )
            case Admitted():
                pass
            case unexpected:
                assert_never(unexpected)
        stored = stored_hash(console.settings.home)
        password = form.secret("password")
        if stored is not None and await run_in_threadpool(matches, password, stored):
            console.throttle.succeeded(source)
            _log.info("login from %s", source)
            console.sessions.close(session)
            fresh = console.sessions.open(now, authenticated=True)
            redirect = RedirectResponse(next_path, 303, headers=_HEADERS)
            _set_cookie(redirect, fresh, console.settings.secure)
            return redirect
        console.throttle.failed(source, now)
        _log.warning("wrong password from %s", source)
        error, status = "wrong password", 401
    response = console.templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": session.csrf, "error": error, "next": next_path},
        status,
        headers=_HEADERS,
    )
    _set_cookie(response, session, console.settings.secure)
    return response


async def logout(visit: Visit) -> Response:
    """End the session."""
    visit.console.sessions.close(visit.session)
    response = RedirectResponse("/login", 303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response


# The configuration tabs.


async def config_page(visit: Visit) -> Response:
    """A tab: its listing and forms; a POST applies one form."""
    slug = visit.request.path_params["slug"]
    page = next((p for p in visit.pages() if p.slug == slug), None)
    if page is None:
        return _refuse(404, f"no page {slug} for an {visit.config.role.value} node")
    errors: dict[str, dict[str, str]] = {}
    values: dict[str, dict[str, str]] = {}
    if visit.form is not None:
        action = visit.form.text("action") or ""
        form = page.form(action)
        if form is None:
            return _refuse(400, f"no form {action!r} on {page.title}")
        try:
            done = form.apply(visit.home, visit.form)
        except (ConfigError, PkiError) as exc:
            errors[action] = form.errors_of(exc)
            shown = visit.form.shown()
            values[action] = {k: v for k, v in shown.items() if k not in ("password", "csrf")}
        else:
            _log.info("%s (%s): %s", page.title, visit.source, done.splitlines()[0])
            return visit.redirect(f"/config/{slug}", done)
    for form in page.forms:
        if form.current is not None and form.action not in values:
            values[form.action] = form.current(visit.config)
    return visit.render(
        "config.html",
        400 if errors else 200,
        page=page,
        rows=page.rows(visit.home, visit.config),
        errors=errors,
        values=values,
    )


async def home_page(visit: Visit) -> Response:
    """The console opens on the Status page."""
    return RedirectResponse("/status", 303, headers=_HEADERS)
