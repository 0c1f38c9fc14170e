"""The REST envelope: `{"ok": true, "data": ...}` and `{"ok": false, "error": {...}}`. What becomes `data`
(the whole response message, or the field the rule's `response_body` names) is `athena_client.rest_data`,
which the SDK reads back."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from athena_client.rest_data import dumps
from athena_gateway.errors import GatewayError

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


def success_body(data: Any) -> str:
    return dumps({"ok": True, "data": data})


def error_body(err: GatewayError, trace_id: str) -> str:
    return dumps(
        {
            "ok": False,
            "error": {"code": err.code, "message": err.message, "retryable": err.retryable, "traceId": trace_id},
        }
    )


def success_response(data: Any, status: int = 200) -> Response:
    return Response(success_body(data), status_code=status, media_type=JSON_MEDIA_TYPE)


def error_response(err: GatewayError, trace_id: str) -> Response:
    return Response(
        error_body(err, trace_id), status_code=err.http_status, media_type=JSON_MEDIA_TYPE, headers=err.headers
    )
