"""The request body: its size, its media type and its JSON, read strictly.

Why each rule:
- Size: bodies over 1,000,000 bytes are refused from the declared Content-Length before reading and from
  the running total while reading, so an oversized body is never buffered whole.
- Media type: a body must be declared JSON (`application/json` or `application/*+json`, parameters such
  as charset allowed). A browser page of another site can send `text/plain`, form or typeless bodies
  without a CORS preflight; refusing them (415) keeps such pages from driving the API. A body of only
  whitespace carries nothing and reads as `{}` whatever its label, so `curl -X POST` without `-d` works.
- JSON: what Python's parser would resolve silently is refused with CONFIG_ERROR: a key repeated in one
  object (which copy wins differs between parsers, so a proxy and the server could disagree), and
  `NaN`/`Infinity` or numbers that overflow to infinity (not JSON numbers, and no field can hold them).
  `null` stays "field absent" (protobuf JSON semantics, the original did the same).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

from athena_client.contract import MAX_REQUEST_BYTES, PAYLOAD_TOO_LARGE_MESSAGE
from athena_gateway.errors import GatewayError, config_error, shown

_WHITESPACE = b" \t\r\n"  # JSON's whitespace


def _too_large() -> GatewayError:
    return GatewayError("PAYLOAD_TOO_LARGE", PAYLOAD_TOO_LARGE_MESSAGE)


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json` or `application/<anything>+json`, any parameters, any case."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def unsupported_media_type(content_type: str | None) -> GatewayError:
    got = shown(content_type) if content_type else "none"
    return GatewayError("UNSUPPORTED_MEDIA_TYPE", f"request.body must be application/json (Content-Type: {got}).")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise config_error(f"request.body has a duplicate key {shown(key)}.")
            seen.add(key)
    return data


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise config_error(f"request.body has a number out of range: {shown(text, 32)}.")
    return value


def _no_constant(text: str) -> Any:
    raise config_error(f"request.body must not contain {text} (not a JSON number).")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_float=_finite, parse_constant=_no_constant)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw` (UTF-8), strictly; an empty or whitespace-only body is `{}`."""
    if not raw.strip(_WHITESPACE):
        return {}
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise config_error("request.body must contain valid JSON.") from None
    if not isinstance(data, dict):
        raise config_error("request.body must be a JSON object.")
    return data


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> dict[str, Any]:
    """The JSON object in the body (headers with lowercase names). A body that is not declared JSON is
    refused at its first non-whitespace chunk, without reading the rest."""
    declared = headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.strip().isdigit()):
            raise config_error("content-length must be a non-negative integer.")
        if int(declared) > MAX_REQUEST_BYTES:
            raise _too_large()
    content_type = headers.get("content-type")
    json_declared = is_json_media_type(content_type)
    raw = bytearray()
    async for chunk in chunks:
        if not json_declared and chunk.strip(_WHITESPACE):
            raise unsupported_media_type(content_type)
        raw += chunk
        if len(raw) > MAX_REQUEST_BYTES:
            raise _too_large()
    return parse_json_object(bytes(raw))
