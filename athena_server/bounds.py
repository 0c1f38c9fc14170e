"""Request bounds: the contract's `(athena.v1.limit)` on every field of every request, the request size and
the request headers the server reads, checked before any servicer runs.

Why one checker in the interceptor rather than checks in each service: the bounds are part of the contract
(`athena_client.contract.field_bounds` reads them from the descriptors), the REST gateway calls the same
RPCs, so gRPC and REST callers get the same CONFIG_ERROR naming the same field; and domain code then only
ever sees values that fit every column on either store (PostgreSQL refuses what SQLite silently keeps).

A request message type is compiled once into a flat tuple of checks, one per bounded field, recursing only
into message fields, so a request costs a few attribute reads and `len` calls (about 5 µs for a typical
`CreateRunRequest`, against ~1.8 ms of server CPU per run). Messages name the field by its JSON path and the
RPC: `createRun.sessionId must be at most 128 characters.`, `createWorkflow.definition.steps[3].id must ...`.

Characters: no string may hold U+0000 (PostgreSQL text cannot store it). Strings bounded at
DEFAULT_MAX_CHARS or less (identifiers, names, keys, filters) and every map key must not hold control
characters either: they are echoed in messages, events and logs, where a newline would forge a line. Strings
with a larger bound are free text (inputs, payloads, reasons) and may hold newlines and tabs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from athena_client.contract import (
    DEFAULT_MAX_CHARS,
    HEADER_MAX_CHARS,
    MAX_REQUEST_BYTES,
    PAYLOAD_TOO_LARGE_MESSAGE,
    TRACE_HEADER,
    field_bounds,
    header_too_long,
)
from athena_server.errors import AthenaError, ErrorCode, config_error

# What `x-trace-id` may hold: ids like UUIDs, W3C trace ids and ULIDs; it is stored in 64-character columns
# and echoed in messages and logs.
TRACE_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{HEADER_MAX_CHARS[TRACE_HEADER]}}}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Messages whose strings have no sensible default bound: a request field of these types needs a decision.
_UNBOUNDABLE = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any"}
)

# check(message, path prefix such as "createRun." or "createWorkflow.definition.steps[3].")
Check = Callable[[Message, str], None]


def _fault(value: str, max_chars: int, identifier: bool) -> str | None:
    """What is wrong with one string, as the end of a message, or None."""
    if len(value) > max_chars:
        return f"must be at most {max_chars} characters."
    if identifier:
        # Printable ASCII (the usual case) holds no control character; only other text needs the scan.
        if not (value.isascii() and value.isprintable()) and _CONTROL.search(value):
            return "must not contain control characters."
    elif "\x00" in value:
        return "must not contain NUL characters (U+0000)."
    return None


def _string(name: str, path: str, max_chars: int) -> Check:
    identifier = max_chars <= DEFAULT_MAX_CHARS

    def check(msg: Message, prefix: str) -> None:
        value = getattr(msg, name)
        if value:
            fault = _fault(value, max_chars, identifier)
            if fault:
                raise config_error(f"{prefix}{path} {fault}")

    return check


def _strings(name: str, path: str, max_chars: int, max_items: int) -> Check:
    identifier = max_chars <= DEFAULT_MAX_CHARS

    def check(msg: Message, prefix: str) -> None:
        values = getattr(msg, name)
        if not values:
            return
        if len(values) > max_items:
            raise config_error(f"{prefix}{path} must have at most {max_items} items.")
        for i, value in enumerate(values):
            fault = _fault(value, max_chars, identifier)
            if fault:
                raise config_error(f"{prefix}{path}[{i}] {fault}")

    return check


def _items(name: str, path: str, max_items: int) -> Check:
    """Repeated scalars other than strings (numbers, enums): only their count."""

    def check(msg: Message, prefix: str) -> None:
        if len(getattr(msg, name)) > max_items:
            raise config_error(f"{prefix}{path} must have at most {max_items} items.")

    return check


def _message(name: str, path: str) -> Check:
    def check(msg: Message, prefix: str) -> None:
        if msg.HasField(name):
            _run(getattr(msg, name), f"{prefix}{path}.")

    return check


def _messages(name: str, path: str, max_items: int) -> Check:
    def check(msg: Message, prefix: str) -> None:
        values = getattr(msg, name)
        if not values:
            return
        if len(values) > max_items:
            raise config_error(f"{prefix}{path} must have at most {max_items} items.")
        for i, value in enumerate(values):
            _run(value, f"{prefix}{path}[{i}].")

    return check


def _map(name: str, path: str, field: FieldDescriptor) -> Check:
    bounds = field_bounds(field)
    entry = field.message_type
    assert entry is not None
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    max_items = bounds.max_items or 0
    max_key = bounds.max_key_chars if key_field.type == FieldDescriptor.TYPE_STRING else None
    max_value = bounds.max_chars
    identifier = max_value is not None and max_value <= DEFAULT_MAX_CHARS
    messages = value_field.message_type is not None

    def check(msg: Message, prefix: str) -> None:
        entries = getattr(msg, name)
        if not entries:
            return
        if len(entries) > max_items:
            raise config_error(f"{prefix}{path} must have at most {max_items} entries.")
        for key in entries:  # keys then lookups: half the cost of .items() on protobuf maps
            value = entries[key]
            if max_key is not None:
                fault = _fault(key, max_key, True)
                if fault:
                    raise config_error(f"{prefix}{path} keys {fault}")
            if messages:
                _run(value, f"{prefix}{path}.{key}.")
            elif max_value is not None:
                fault = _fault(value, max_value, identifier)
                if fault:
                    raise config_error(f"{prefix}{path}.{key} {fault}")

    return check


def _field_check(field: FieldDescriptor) -> Check | None:
    name, path = field.name, field.json_name
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        if message.fields_by_name["value"].message_type is not None:
            _checks(message.fields_by_name["value"].message_type)  # refuse unboundable types now
        return _map(name, path, field)
    bounds = field_bounds(field)
    if message is not None:
        if not _checks(message) and not field.is_repeated:
            return None
        if field.is_repeated:
            return _messages(name, path, bounds.max_items or 0)
        return _message(name, path)
    if bounds.max_chars is not None:
        if field.is_repeated:
            return _strings(name, path, bounds.max_chars, bounds.max_items or 0)
        return _string(name, path, bounds.max_chars)
    if field.is_repeated:
        return _items(name, path, bounds.max_items or 0)
    return None  # numbers, booleans, enums, bytes: their meaning is the domain's to check


@functools.cache
def _checks(descriptor: Descriptor) -> tuple[Check, ...]:
    """The checks of one message type, in field order, compiled on first use."""
    if descriptor.full_name in _UNBOUNDABLE:
        raise TypeError(f"{descriptor.full_name} in a request has no bound: declare how to bound it")
    checks = (_field_check(field) for field in descriptor.fields)
    return tuple(c for c in checks if c is not None)


def _run(message: Message, prefix: str) -> None:
    for check in _checks(message.DESCRIPTOR):
        check(message, prefix)


_BY_TYPE: dict[type[Message], tuple[Check, ...]] = {}


def _request_checks(message_type: type[Message]) -> tuple[Check, ...]:
    """The checks of a request type, by class (cheaper to look up than its descriptor): the contract's
    requests only; other services' (health, reflection) get the size bound alone."""
    checks = _BY_TYPE.get(message_type)
    if checks is None:
        descriptor = message_type.DESCRIPTOR
        checks = _checks(descriptor) if descriptor.full_name.startswith("athena.") else ()
        _BY_TYPE[message_type] = checks
    return checks


@functools.cache
def rpc_name(method_name: str) -> str:
    """`/athena.v1.RunService/CreateRun` -> `createRun`, the context messages start with."""
    method = method_name.rsplit("/", 1)[-1]
    return method[:1].lower() + method[1:]


def valid_trace_id(value: str) -> bool:
    """Whether `x-trace-id` may be kept as the request's trace id (else the server mints one)."""
    return TRACE_ID_PATTERN.fullmatch(value) is not None


def check_headers(metadata: Iterable[tuple[str, str | bytes]], limits: Mapping[str, int] = HEADER_MAX_CHARS) -> None:
    """The request headers the server reads, each within its length (`limits`: the contract's
    `HEADER_MAX_CHARS`, plus the configured identity header when auth is on): an over-long one is refused
    rather than cut or ignored, so nothing unbounded reaches a column, a log or the gate. `x-trace-id` must
    also match TRACE_ID_PATTERN; an empty one counts as absent."""
    for key, value in metadata:
        limit = limits.get(key)
        if limit is None or not isinstance(value, str):
            continue
        if len(value) > limit:
            raise config_error(header_too_long(key, limit))
        if key == TRACE_HEADER and value and not valid_trace_id(value):
            raise config_error(f"header '{key}' must match {TRACE_ID_PATTERN.pattern}.")


def check_message(request: Message, rpc: str) -> None:
    """Size, then every field bound of an athena request (other services' messages only get the size).
    The size comes first, as in the gateway, which refuses an oversized body before parsing it."""
    if request.ByteSize() > MAX_REQUEST_BYTES:
        raise AthenaError(ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE, PAYLOAD_TOO_LARGE_MESSAGE)
    checks = _request_checks(type(request))
    if checks:
        prefix = f"{rpc}."
        for check in checks:
            check(request, prefix)
