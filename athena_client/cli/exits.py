"""What the `athena` command exits with, and how it reports a failure.

Scripts branch on the class of a failure, not on its code, so every error maps to one of a few exit codes
by the HTTP status the contract gives its code (`proto/athena/v1/errors.proto`), whichever transport
carried it:

- 0: done.
- 1: anything else (an error without a status, e.g. an unknown code from a newer server).
- 2: usage: bad flags or values; the server refused the input: 400, 410, 413, 415, 422 (`CONFIG_ERROR`,
  `EVENT_CURSOR_EXPIRED`, `PAYLOAD_TOO_LARGE`, `CONTEXT_OVERFLOW`, `IDEMPOTENCY_KEY_REUSED`, ...); a local
  setting the in-process plane cannot use.
- 3: not found: 404 (`NOT_FOUND`, `PROVIDER_NOT_FOUND`).
- 4: refused by policy, auth, rate limit or a conflict: 401, 403, 409, 429 (`AUTH_*`, `AUTHZ_DENIED`,
  `SESSION_LOCK_TIMEOUT`, `RUN_CANCELLED`, `POLICY_*`, `RATE_LIMITED`).
- 5: the server, the run or the connection failed: 5xx (`PROVIDER_ERROR`, `UNAVAILABLE`,
  `INTERNAL_ERROR`, ...), 408 (`RUN_TIMEOUT`, `SCHEDULE_TIMEOUT`), no answer (`--transport api` with no
  server listening, a deadline passed).
- 130: interrupted (Ctrl-C).

A failure prints `CODE: message` on stderr, then the trace id (the server's logs and events carry it) and,
for refusals that may pass later, how long the server asked to wait.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from athena_client.errors import AthenaError, AthenaTransportError

OK = 0
OTHER = 1
USAGE = 2
NOT_FOUND = 3
REFUSED = 4
FAILED = 5
INTERRUPTED = 130

_REFUSED_STATUSES = frozenset({401, 403, 409, 429})
_FAILED_4XX = frozenset({408})


class CommandFailure(Exception):
    """A failure of the command itself rather than an answer of the server (the local plane could not
    start, a file could not be read): what to print and the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def exit_code(error: AthenaError) -> int:
    """The exit code of an error, by the table in the module docstring."""
    if isinstance(error, AthenaTransportError):
        return FAILED
    status = error.http_status
    if status is None:
        return OTHER
    if status == 404:
        return NOT_FOUND
    if status in _REFUSED_STATUSES:
        return REFUSED
    if status >= 500 or status in _FAILED_4XX:
        return FAILED
    if 400 <= status < 500:
        return USAGE
    return OTHER


def error_lines(error: AthenaError, hint: str | None = None) -> list[str]:
    """`CODE: message`, then the trace id and the server's retry-after when there are any, then a hint."""
    lines = [f"{error.code}: {error.message}"]
    if error.trace_id:
        lines.append(f"trace id: {error.trace_id}")
    if error.retry_after is not None:
        lines.append(f"retry after: {error.retry_after:g} s")
    if hint:
        lines.append(hint)
    return lines


def report(console: Console, lines: list[str]) -> None:
    """The error on stderr: first line in red, the rest dim; never read as rich markup."""
    first, *rest = lines
    console.print(Text(first, style="bold red"), soft_wrap=True)
    for line in rest:
        console.print(Text(line, style="dim"), soft_wrap=True)
