"""Who may call the API and how often, how long a request may take, and the headers every response carries.

Pure ASGI middleware (no `BaseHTTPMiddleware`): each one sees the request before any body is read, and answers
with the API's JSON error body. `create_app` installs them; the order is explained there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from detecteur.api.limits import send_json_error

# Routes that cost inference or expose the running service. Everything else — /health, the dashboard's static
# files, the API documentation — stays open so that probes and the sign-in page of the dashboard work without a key.
PROTECTED_PREFIXES: tuple[str, ...] = ("/v1/", "/predict", "/metrics")
# Where AccessGuard leaves the name of the caller's API key in the ASGI scope.
API_KEY_NAME = "detecteur.api_key_name"

# The dashboard is a static Next.js export served from this origin: its scripts and styles are same-origin files
# plus the inline bootstrap scripts and style attributes Next writes into every page ('unsafe-inline' — a static
# export has no server to add nonces). Previews of the chosen files are blob: URLs; Grad-CAM heatmaps come back as
# base64 data: URLs; the video view plays the chosen clip from a blob: URL (media-src). Nothing may frame the
# dashboard, nothing is loaded from another origin.
DASHBOARD_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from the jsDelivr CDN and start them with an inline
# script: they get a policy that allows exactly that (offline, those two pages stay blank; /openapi.json works).
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
        "font-src 'self' https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def display_filename(filename: str | None) -> str | None:
    """The client's file name as it may be shown back: no directories (`../../etc/passwd` → `passwd`), no control
    characters (NUL, newlines), at most 255 characters. The service never uses it as a path."""
    if filename is None:
        return None
    name = _CONTROL_CHARACTERS.sub("", filename).replace("\\", "/").rsplit("/", 1)[-1]
    return name[:255] or None


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIXES)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` and a Content-Security-Policy to every response, errors included; a header the
    response already sets is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CSP if scope["path"] in DOCS_PATHS else DASHBOARD_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (*SECURITY_HEADERS, ("Content-Security-Policy", policy)):
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenBuckets:
    """One token bucket per caller: `burst` requests at once, refilled at `per_minute` a minute.

    Buckets that have refilled completely carry no information and are dropped when more than `max_callers` are
    tracked, so a stream of new callers cannot grow memory without bound.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        self.rate, self.burst, self.clock, self.max_callers = per_minute / 60.0, float(burst), clock, max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, time of that count)

    def take(self, caller: str) -> float:
        """Spend one token: 0.0 when the request may go ahead, else the seconds until a token is available."""
        now = self.clock()
        tokens, then = self._buckets.get(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_callers:
            self._forget_full_buckets(now)
        return 0.0

    def _forget_full_buckets(self, now: float) -> None:
        for caller, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self._buckets[caller]


def presented_api_key(headers: Headers) -> str | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer <key>`."""
    if key := headers.get("x-api-key"):
        return key.strip()
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class AccessGuard:
    """API-key authentication and per-caller rate limiting of the `PROTECTED_PREFIXES` routes.

    With no `api_keys` every caller is let in; with `per_minute` 0 nobody is rate limited. A caller is its key (as
    a hash: keys never sit in memory longer than needed or reach a log) or, without keys, its client address.
    CORS preflights (OPTIONS) pass: browsers send them without credentials.
    """

    def __init__(self, app: ASGIApp, api_keys: Sequence[str | tuple[str, str]], per_minute: float, burst: int) -> None:
        self.app = app
        named = [key if isinstance(key, tuple) else (f"key-{index}", key) for index, key in enumerate(api_keys, 1)]
        self._key_digests = [(name, _digest(key)) for name, key in named if key]
        self.buckets = TokenBuckets(per_minute, burst) if per_minute > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        caller = f"address:{(scope.get('client') or ('unknown', 0))[0]}"
        if self._key_digests:
            presented = presented_api_key(Headers(scope=scope))
            if presented is None:
                await _unauthorized(send, "missing_api_key", "send your API key in the X-API-Key header")
                return
            digest = _digest(presented)
            name = _matching_name(digest, self._key_digests)
            if name is None:
                await _unauthorized(send, "invalid_api_key", "the API key is not valid")
                return
            caller = f"key:{digest}"
            # The key's name (never the key) for the cases store: `request.scope[API_KEY_NAME]`.
            scope[API_KEY_NAME] = name
        if self.buckets is not None and (wait := self.buckets.take(caller)) > 0:
            seconds = math.ceil(wait)
            await send_json_error(
                send,
                429,
                "rate_limited",
                f"too many requests; retry in {seconds} s",
                {"Retry-After": str(seconds)},
            )
            return
        await self.app(scope, receive, send)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _matching_name(digest: str, known: Iterable[tuple[str, str]]) -> str | None:
    # Compare against every key, in constant time each: timing tells neither which key nor how much matched.
    found: str | None = None
    for name, candidate in known:
        if hmac.compare_digest(digest, candidate):
            found = name
    return found


async def _unauthorized(send: Send, code: str, message: str) -> None:
    await send_json_error(send, 401, code, message, {"WWW-Authenticate": 'Bearer realm="detecteur"'})


class RequestTimeout:
    """Answers a request still unanswered after `seconds`: 408 while its body is still arriving (a slow or stalled
    client), 503 + Retry-After once it is being processed. Paths in `exempt` (none by default) are not timed."""

    def __init__(self, app: ASGIApp, seconds: float, exempt: Iterable[str] = ()) -> None:
        self.app, self.seconds, self.exempt = app, seconds, frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # A request without Content-Length or Transfer-Encoding has no body to wait for.
        body_complete = "content-length" not in headers and "transfer-encoding" not in headers
        response_started = False

        async def tracking_receive() -> Message:
            nonlocal body_complete
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_complete = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            await send(message)
            # Only once it went out: a send interrupted by the timeout has sent nothing, and the 503 can follow.
            if message["type"] == "http.response.start":
                response_started = True

        with anyio.move_on_after(self.seconds) as timer:
            await self.app(scope, tracking_receive, tracking_send)
        if not timer.cancelled_caught or response_started:
            return
        if not body_complete:
            await send_json_error(
                send, 408, "request_timeout", f"the request body did not arrive within {self.seconds:g} s"
            )
        else:
            await send_json_error(
                send,
                503,
                "timeout",
                f"the request took longer than {self.seconds:g} s; the server is busy, retry shortly",
                {"Retry-After": "5"},
            )
