"""HTTP request headers -> gRPC metadata: which headers the server reads, and the bounds they must keep.

Each forwarded header is checked before the call, so a bad one is a CONFIG_ERROR naming it rather than
whatever gRPC makes of it: a value over its bound (`contract.HEADER_MAX_CHARS`) would otherwise hit
gRPC's 8 KiB metadata limit and fail as an internal error, and a value gRPC cannot carry (non-printable
or non-ASCII) used to be dropped, which turned a mangled `Authorization` into a confusing
AUTH_TOKEN_MISSING. A header sent twice is refused too (which copy counts is exactly what a proxy and the
server could disagree on), except `tracestate`, a list whose lines join with commas (W3C trace context).
"""

from __future__ import annotations

from collections.abc import Iterable

from athena_client.contract import (
    API_TOKEN_HEADER,
    AUTHORIZATION_HEADER,
    CLIENT_ADDRESS_HEADER,
    DEFAULT_IDENTITY_HEADER,
    HEADER_MAX_CHARS,
    IDEMPOTENCY_HEADER,
    IDENTITY_HEADER_MAX_CHARS,
    TRACE_HEADER,
    header_repeated,
    header_too_long,
)
from athena_gateway.errors import config_error

# Request headers the server reads (idempotency, auth, W3C trace context), passed on as gRPC metadata; the
# identity header is added under its configured name.
FORWARDED_HEADERS = (IDEMPOTENCY_HEADER, AUTHORIZATION_HEADER, API_TOKEN_HEADER, "traceparent", "tracestate")
_LIST_HEADERS = frozenset({"tracestate"})

Metadata = tuple[tuple[str, str], ...]


class HeaderForwarding:
    """The forwarded headers of one gateway, with their bounds, looked up by their raw ASGI names."""

    def __init__(self, identity_header: str = DEFAULT_IDENTITY_HEADER) -> None:
        bounds = {name: HEADER_MAX_CHARS[name] for name in FORWARDED_HEADERS}
        bounds[identity_header] = IDENTITY_HEADER_MAX_CHARS
        self.identity_header = identity_header
        self.names = tuple(bounds)
        self._limits = bounds
        self._by_raw_name = {name.encode(): name for name in bounds}

    def metadata(self, raw_headers: Iterable[tuple[bytes, bytes]], trace_id: str, client_host: str | None) -> Metadata:
        """The trace id, the client's address and the forwarded headers present; GatewayError
        (CONFIG_ERROR) for a header out of bounds, unprintable or repeated."""
        found: dict[str, str] = {}
        for raw_name, raw_value in raw_headers:
            name = self._by_raw_name.get(raw_name)
            if name is None:
                continue
            value = raw_value.decode("latin-1")
            if name in found:
                if name not in _LIST_HEADERS:
                    raise config_error(header_repeated(name))
                value = f"{found[name]},{value}"
            found[name] = value
        metadata = [(TRACE_HEADER, trace_id)]
        if client_host and len(client_host) <= HEADER_MAX_CHARS[CLIENT_ADDRESS_HEADER]:
            metadata.append((CLIENT_ADDRESS_HEADER, client_host))
        for name, value in found.items():
            limit = self._limits[name]
            if len(value) > limit:
                raise config_error(header_too_long(name, limit))
            if not (value.isascii() and value.isprintable()):
                raise config_error(f"header '{name}' must be printable ASCII.")
            metadata.append((name, value))
        return tuple(metadata)
