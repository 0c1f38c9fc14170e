"""What keeps browser pages of other sites away from the API: the Host allow-list and the Origin check.

- **Host**: a page on `evil.example` whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) reaches a
  local server with `Host: evil.example`; answering only the host names this server is meant to be reached
  by stops it. The default is the loopback names plus the bind address; `ATHENA_ALLOWED_HOSTS` replaces
  it (`*` any host, `*.example.com` any subdomain). Like Starlette's TrustedHostMiddleware, but the port
  is ignored on bracketed IPv6 too, and the refusal is the error envelope (400 HOST_NOT_ALLOWED). It
  applies to every path, the OpenAPI document and Swagger UI included.
- **Origin**: a page of another origin can send a state-changing request without a CORS preflight (a
  `no-cors` fetch or a form). Browsers name the page's origin in `Origin`, so a POST, PUT, PATCH or
  DELETE whose `Origin` is neither this server's own origin (scheme, host and port of the request) nor
  one of `ATHENA_CORS_ORIGINS` is refused (403 ORIGIN_NOT_ALLOWED). `Origin: null` (sandboxed frames,
  `file:` pages, any site's sandboxed content) is always refused. Clients that are not browsers send no `Origin` and are
  not affected.

A pure ASGI middleware (see tracing.py for why not `@app.middleware`), inside TraceMiddleware so refusals
carry the trace id; per request it does a few string operations on two headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from athena_gateway.envelope import error_response
from athena_gateway.errors import GatewayError, shown

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
# A Host header: a bracketed IPv6 literal or a name without brackets, colons or spaces, then an optional port.
_HOST = re.compile(r"(?:\[([0-9a-f:.]+)\]|([^\[\]:/@\s]*))(?::[0-9]*)?", re.ASCII)


def host_name(value: str) -> str | None:
    """The host name of a Host header value: lowercase, without port, IPv6 brackets or trailing dot;
    None when it is not a host."""
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        return None
    name = match.group(1) or match.group(2)
    return name.removesuffix(".") or None


def split_setting(value: str) -> list[str]:
    """A comma-separated setting as its non-empty items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def default_allowed_hosts(bind_host: str) -> list[str]:
    """The loopback names, plus the bind address when it names one interface (not 0.0.0.0 or ::)."""
    hosts = list(LOOPBACK_HOSTS)
    bind_host = bind_host.strip()
    if bind_host not in WILDCARD_BINDS and bind_host not in hosts:
        hosts.append(bind_host)
    return hosts


class HostAllowList:
    """Exact host names and `*.suffix` patterns, or anything (`*`), matched case-insensitively."""

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        self.any = False
        for pattern in patterns:
            item = pattern.strip().lower()
            if item == "*":
                self.any = True
            elif item.startswith("*."):
                suffixes.append(item[1:].removesuffix("."))
            elif "*" in item or not item:
                raise ValueError(f"allowed host {pattern!r}: use a host name, `*.domain` or `*`")
            else:
                exact.add(item.removeprefix("[").removesuffix("]").removesuffix("."))
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)

    def allows(self, host_header: str | None) -> bool:
        if self.any:
            return True
        name = host_name(host_header) if host_header is not None else None
        if name is None:
            return False
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))


def normalise_origin(origin: str) -> str:
    """An origin as browsers serialise it: lowercase, no trailing slash, no default port."""
    origin = origin.strip().lower().removesuffix("/")
    scheme, _, rest = origin.partition("://")
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and rest.endswith(default_port):
        origin = origin.removesuffix(default_port)
    return origin


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BrowserGuardMiddleware:
    """Refuses requests to hosts this server does not serve, and state changes from foreign origins."""

    def __init__(self, app: ASGIApp, hosts: HostAllowList, cors_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = hosts
        origins = {normalise_origin(origin) for origin in cors_origins}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins - {"*"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        err = self.check(scope)
        if err is not None:
            trace_id = str(scope["state"]["trace_id"])
            await error_response(err, trace_id)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> GatewayError | None:
        """The refusal of this request, or None to let it through."""
        host = _header(scope, b"host")
        if not self.hosts.allows(host):
            message = f"Host {shown(host)} is not allowed (ATHENA_ALLOWED_HOSTS)." if host else "Host is required."
            return GatewayError("HOST_NOT_ALLOWED", message)
        if scope["method"] not in STATE_CHANGING_METHODS:
            return None
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        normalised = normalise_origin(origin)
        if normalised != "null" and (
            self.any_origin
            or normalised in self.origins
            or normalised == normalise_origin(f"{scope['scheme']}://{host or ''}")
        ):
            return None
        return GatewayError(
            "ORIGIN_NOT_ALLOWED",
            f"Origin {shown(origin)} may not change state here: only this server's own origin and "
            "ATHENA_CORS_ORIGINS may.",
        )
