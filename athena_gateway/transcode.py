"""HTTP request -> proto request, following the rule: the body (for `body: "*"`), then query parameters,
then path parameters, path winning. The gateway only rejects what can never become a request message
(oversized, undeclared or malformed bodies, non-object bodies, parameters of the wrong type, JSON of the
wrong type; `body.py` and `params.py` say why each); every other check is the server's, so gRPC and REST
callers get the same answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from athena_client.contract import json_to_message
from athena_client.message_parse import parse_request
from athena_gateway.body import read_body
from athena_gateway.errors import config_error
from athena_gateway.params import query_json
from athena_gateway.routes import RouteSpec

_MAX_MESSAGE_CHARS = 300


def _capped(message: str) -> str:
    """A parser's message, which may quote the offending value, cut to a readable length."""
    return message if len(message) <= _MAX_MESSAGE_CHARS else message[: _MAX_MESSAGE_CHARS - 3] + "..."


def _put(data: dict[str, Any], field: FieldDescriptor, value: Any) -> None:
    """Set `field` in a JSON dict, dropping the other spelling of its name so ParseDict sees one key."""
    data.pop(field.name, None)
    data.pop(field.json_name, None)
    data[field.json_name] = value


async def build_request(
    spec: RouteSpec,
    headers: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    path_params: Mapping[str, str],
    body: AsyncIterator[bytes],
) -> Message:
    """The request message for one HTTP request (headers with lowercase names). Routes without a body
    never read one."""
    request_type = spec.method.input_type
    data: dict[str, Any] = {}
    if spec.body == "*":
        data = await read_body(headers, body)
    elif spec.body:
        data[request_type.fields_by_name[spec.body].json_name] = await read_body(headers, body)
    by_name = request_type.fields_by_name
    for json_name, value in query_json(spec.query_params, query).items():
        _put(data, spec.fields_by_json_name[json_name], value)
    if spec.sse is not None and spec.sse.resume_field and "last-event-id" in headers:
        _put(data, by_name[spec.sse.resume_field], headers["last-event-id"])
    parsers = spec.path_param_parsers
    for name, text in path_params.items():
        _put(data, by_name[name], parsers[name].parse(name, text))
    # The compiled parser takes the common well-typed body; anything else (errors included) is the slow
    # path's, run from scratch on the same, unmodified dict.
    fast = parse_request(request_type, data)
    if fast is not None:
        return fast
    message = message_factory.GetMessageClass(request_type)()
    try:
        return json_to_message(data, message)
    except json_format.ParseError as exc:
        raise config_error(_capped(str(exc))) from None
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:
        # A JSON shape the contract helpers cannot walk (say, a list where a map is expected).
        raise config_error(_capped(f"request does not match {request_type.name}: {exc}")) from None
