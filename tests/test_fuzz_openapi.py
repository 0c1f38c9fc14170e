"""Property-based fuzz of the REST API from the OpenAPI document the gateway serves (schemathesis 4).

Why: the gateway hand-parses JSON bodies, query strings, path segments and forwarded headers into protobuf
messages, and the server validates them again; a hand-written test covers the inputs its author thought of.
Generating requests from the OpenAPI document (valid-looking and deliberately invalid ones) checks the
two promises every route makes whatever it is sent: never a 5xx, and always the envelope
(`{"ok": true, "data"}` or `{"ok": false, "error": {code, message, retryable, traceId}}` with the HTTP
status of the code and `traceId` equal to the `x-trace-id` header).

How:
- One real `athena api serve` on SQLite for the module, with the schedule ticker off and the `command`
  provider disabled (only `mock` runs can start).
- One pytest item per operation (`test_fuzz[GET /api/v1/events]`). Schemathesis parametrizes at
  collection time, before any server exists, so the operations come from `build_openapi()` in-process
  (schemathesis' lazy `from_fixture` loader would defer that, but 4.32 fails under pytest 9:
  `'Function' object has no attribute '_nodeid'`). The `served_base_url` fixture fetches `/openapi.json`
  over HTTP and requires it to equal that document, so what is fuzzed is exactly what is served.
- Two schemathesis phases per operation: *coverage* (deterministic boundary and negative cases, every one
  the schema implies: missing/oversized/mistyped values, undeclared methods, foreign media types) and
  *fuzzing* (Hypothesis, `ATHENA_FUZZ_EXAMPLES` examples per operation, positive and negative data).
  Without `ATHENA_FUZZ_SEED` generation is derandomized, so CI sends the same requests on every run.
- Server-sent-event routes never end, so their requests are sent with `stream=True` and only the status
  line and headers are read (200 must be `text/event-stream`); a refusal is a finite JSON envelope and is
  checked like any other answer. No timeout is involved.
- A failure names its check, shows the response and a `curl` command that replays the request (the host
  and port differ per run: the server listens on a free port). Each distinct failure of an operation is
  also printed once as it happens (pytest shows it under "Captured stdout"), because Hypothesis reports
  only one failure per operation.

Budget: about 2,700 coverage-phase requests plus `ATHENA_FUZZ_EXAMPLES` (default 25) per operation,
roughly 3,900 requests and 40-60 s for the file on 2 shared cores.

A longer campaign, locally (more fuzzing examples and a fresh seed each time; the coverage phase sends
the same requests every run). 500 examples per operation take about 7 minutes:

    ATHENA_FUZZ_EXAMPLES=500 ATHENA_FUZZ_SEED=$RANDOM .venv/bin/pytest tests/test_fuzz_openapi.py \
        -p no:cacheprovider -o timeout=3600

Replay a failure with the same `ATHENA_FUZZ_SEED` and `ATHENA_FUZZ_EXAMPLES` (or just its curl command);
narrow to one operation with `-k 'POST and /api/v1/runs]'`.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import Case, CheckContext, CheckFunction, Response
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

from athena_client.contract import ERROR_CODES, TRACE_HEADER
from athena_gateway.openapi import build_openapi
from athena_gateway.routes import route_table
from athena_server.servicers.registry import IMPLEMENTED, contract_modules
from tests.support.processes import AthenaProcess, serving

# Fuzzing-phase examples per operation; the default keeps the whole file about a minute on 2 cores.
EXAMPLES = int(os.environ.get("ATHENA_FUZZ_EXAMPLES") or "25")
# Unset or empty: derandomized (the same requests every run). Set: that seed, for campaigns and replays.
SEED = os.environ.get("ATHENA_FUZZ_SEED") or None
# Generous: only a hung server should hit it, and then the request fails with its curl command.
REQUEST_TIMEOUT_SECONDS = 30

EVENT_STREAM = "text/event-stream"
DOCUMENT: dict[str, Any] = build_openapi()


def _unimplemented_operation_ids() -> list[str]:
    """Operation ids of the RPCs no servicer implements (the generated base class answers them). The
    README promises 501 NOT_IMPLEMENTED for those; a 501 from any other operation is a failure."""
    missing: set[tuple[str, str]] = set()
    for grpc_module in contract_modules():
        pb2 = importlib.import_module(grpc_module.__name__.removesuffix("_grpc"))
        for service in pb2.DESCRIPTOR.services_by_name.values():
            base = getattr(grpc_module, f"{service.name}Servicer")
            impl = IMPLEMENTED.get(service.full_name)
            for method in service.methods:
                if impl is None or getattr(impl, method.name, None) is getattr(base, method.name):
                    missing.add((service.full_name, method.name))
    operations = {(verb.lower(), path): (service, method) for verb, path, service, method in route_table()}
    return sorted(
        op["operationId"]
        for path, item in DOCUMENT["paths"].items()
        for verb, op in item.items()
        if operations[(verb, path)] in missing
    )


UNIMPLEMENTED = _unimplemented_operation_ids()


def _config() -> schemathesis.Config:
    """Both generation modes, bounded fuzzing, no example database (nothing written to the tree), health
    checks off (a real server is slower than Hypothesis expects, and that is not a finding), and reports
    unsanitised: the generated credentials are junk, and a curl command with `[Filtered]` replays nothing."""
    generation: dict[str, Any] = {"mode": "all", "max-examples": EXAMPLES, "database": "none"}
    data: dict[str, Any] = {
        "request-timeout": REQUEST_TIMEOUT_SECONDS,
        "suppress-health-check": ["all"],
        "output": {"sanitization": {"enabled": False}},
        "generation": generation,
        "operations": [
            {
                "include-operation-id": UNIMPLEMENTED,
                "checks": {"not_a_server_error": {"expected-statuses": ["2XX", "3XX", "4XX", "501"]}},
            }
        ],
    }
    if SEED is None:
        generation["deterministic"] = True
    else:
        data["seed"] = int(SEED)
    return schemathesis.Config.from_dict(data)


schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    """A server of its own: fuzzing fills its store with junk other tests should not see. The ticker is
    off (no background runs racing the requests) and `command` disabled whatever the environment says."""
    workdir = tmp_path_factory.mktemp("fuzz")
    with serving(
        workdir,
        env={"ATHENA_SCHEDULE_TICK_SECONDS": "0", "ATHENA_COMMAND_ALLOW": ""},
        extra=["--db", str(Path(workdir) / "fuzz.db")],
    ) as served:
        yield served.process


@pytest.fixture(scope="module")
def served_base_url(fuzz_server: AthenaProcess) -> str:
    """The server's base URL, once its `/openapi.json` (fetched over HTTP, loopback Host) is shown to be
    the document the operations were generated from."""
    response = requests.get(f"{fuzz_server.rest_url}/openapi.json", timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, response.text
    served = response.json()
    assert served == DOCUMENT, (
        "the served /openapi.json is not the document the cases were generated from (was the contract "
        f"regenerated while the test started?); differing: {_differing(DOCUMENT, served)}"
    )
    return fuzz_server.rest_url


def _differing(local: Any, served: Any, at: str = "", depth: int = 4) -> list[str]:
    """Where two documents differ (`paths > /api/v1/runs > post`), `depth` keys deep at most, for the
    message above."""
    if depth == 0 or not (isinstance(local, dict) and isinstance(served, dict)):
        return [at or "(the whole document)"] if local != served else []
    keys = sorted(set(local) | set(served))
    nested = (_differing(local.get(k), served.get(k), f"{at} > {k}" if at else k, depth - 1) for k in keys)
    return [where for found in nested for where in found][:20]


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """One keep-alive session for the module: thousands of requests, no connection set-up for each."""
    with requests.Session() as session:
        yield session


def _header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def _declared_statuses(case: Case[Any]) -> set[int]:
    return {int(code) for code in case.operation.definition.raw["responses"] if code.isdigit()}


def _is_event_stream_operation(case: Case[Any]) -> bool:
    return EVENT_STREAM in case.operation.definition.raw["responses"]["200"]["content"]


def envelope_conformance(ctx: CheckContext, response: Response, case: Case[Any]) -> None:
    """Every answer is the envelope exactly; errors carry a known code whose HTTP status is the response's
    status and the trace id of the `x-trace-id` header. An event stream only has to be one (status 200)."""
    trace_id = _header(response, TRACE_HEADER)
    assert trace_id, f"no {TRACE_HEADER} header"
    content_type = _header(response, "content-type") or ""
    if content_type.startswith(EVENT_STREAM):
        assert _is_event_stream_operation(case), f"{EVENT_STREAM} from an operation that is not a stream"
        assert response.status_code == 200, f"event stream with status {response.status_code}, not 200"
        return
    assert content_type.startswith("application/json"), f"Content-Type is not JSON\n{content_type!r}"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"body is not JSON\n{exc}") from None
    assert isinstance(body, dict), "body is not a JSON object"
    if body.get("ok") is True:
        assert set(body) == {"ok", "data"}, f"success envelope keys {sorted(body)}"
        declared = _declared_statuses(case) & {200, 202}
        assert response.status_code in declared, f"success with status {response.status_code}, not {sorted(declared)}"
        return
    assert body.get("ok") is False, f"`ok` is {body.get('ok')!r}"
    assert set(body) == {"ok", "error"}, f"error envelope keys {sorted(body)}"
    error = body["error"]
    assert isinstance(error, dict), "`error` is not an object"
    assert set(error) == {"code", "message", "retryable", "traceId"}, f"error keys {sorted(error)}"
    code = error["code"]
    assert code in ERROR_CODES, f"unknown error code {code!r}"
    assert ERROR_CODES[code].http_status == response.status_code, (
        f"{code} with status {response.status_code}, the contract says {ERROR_CODES[code].http_status}"
    )
    assert isinstance(error["message"], str) and error["message"], "`message` is not a non-empty string"
    assert isinstance(error["retryable"], bool), "`retryable` is not a boolean"
    assert error["traceId"] == trace_id, (
        f"traceId is not the {TRACE_HEADER} header\n{error['traceId']!r} != {trace_id!r}"
    )


CHECKS: list[CheckFunction] = [not_a_server_error, envelope_conformance]


def _send(case: Case[Any], http: requests.Session, base_url: str) -> Response:
    """`case` as schemathesis sends it, except event streams: only their status line and headers are read
    (the stream never ends), the connection is then dropped. Refusals are JSON and read whole."""
    if not _is_event_stream_operation(case):
        return case.call(base_url=base_url, session=http)
    kwargs = case.as_transport_kwargs(base_url=base_url)
    kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
    with http.request(**kwargs, stream=True) as raw:
        streaming = (raw.headers.get("content-type") or "").startswith(EVENT_STREAM)
        content = b"" if streaming else raw.content
        headers = {name: raw.raw.headers.getlist(name) for name in raw.raw.headers}
        return Response(
            status_code=raw.status_code,
            headers=headers,
            content=content,
            request=raw.request,
            elapsed=raw.elapsed.total_seconds(),
            verify=True,
            message=raw.reason,
            stream_cut_short=streaming,
        )


_reported: set[tuple[str, ...]] = set()


def _print_once(case: Case[Any], response: Response, group: FailureGroup) -> None:
    """Print each distinct failure (operation, status, failing checks and their first lines) once."""
    kinds = sorted(
        f"{failure.title}: {failure.message.splitlines()[0] if failure.message else ''}" for failure in group.exceptions
    )
    key = (case.operation.label, str(response.status_code), *kinds)
    if key not in _reported:
        _reported.add(key)
        print(f"\n=== distinct failure: {' | '.join(key)}\n{group.message}")


@schema.parametrize()
def test_fuzz(case: Case[Any], served_base_url: str, http: requests.Session) -> None:
    """Each generated request gets an answer that is no server error and is the envelope."""
    response = _send(case, http, served_base_url)
    try:
        case.validate_response(response, checks=CHECKS, transport_kwargs={"base_url": served_base_url})
    except FailureGroup as group:
        _print_once(case, response, group)
        raise
