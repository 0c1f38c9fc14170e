"""The one place a domain outcome becomes a transport status: `accepted` work answers REST 202 (the
gateway reads the status trailer the interceptor sets), for every RPC whose contract option
`(athena.v1.accepted)` allows it."""

from __future__ import annotations

from typing import TypeVar

from athena_server.control.outcomes import Outcome
from athena_server.tracing import set_http_status

T = TypeVar("T")

ACCEPTED_HTTP_STATUS = 202


def answer(outcome: Outcome[T]) -> T:
    """The outcome's value, with the 202 trailer requested when the work was accepted."""
    set_http_status(ACCEPTED_HTTP_STATUS if outcome.accepted else None)
    return outcome.value
