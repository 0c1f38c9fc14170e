"""The log formatters and the logging set-up (athena_server/logs.py), in-process: what a JSON or text line
holds, and which loggers speak at INFO."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from athena_server import logs
from athena_server.tracing import set_trace_id, trace_id

# 2026-02-16T15:00:00.250Z, exact in binary so the milliseconds do not depend on rounding.
CREATED = 1771254000.25
TIME = "2026-02-16T15:00:00.250Z"


def record(
    msg: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    """A record as `logging.getLogger("athena.test").<level>(msg, *args, extra=...)` makes it."""
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.getLogger("athena.test").makeRecord(
        "athena.test", level, __file__, 1, msg, args, exc_info, extra=extra
    )
    rec.created = CREATED
    return rec


def in_request(trace: str, fn: Callable[[], str]) -> str:
    """`fn` run as if while handling a request whose trace id is `trace` (a context of its own)."""

    def run() -> str:
        set_trace_id(trace)
        return fn()

    return contextvars.copy_context().run(run)


def outside_request(fn: Callable[[], str]) -> str:
    return contextvars.copy_context().run(fn)


def as_json(line: str) -> dict[str, Any]:
    assert "\n" not in line, line
    value = json.loads(line)
    assert isinstance(value, dict), line
    return value


# -------------------------------------------------------------------------------------------------- JSON


def test_json_line_without_a_trace_has_exactly_the_named_fields() -> None:
    line = outside_request(lambda: logs.JsonFormatter().format(record()))
    assert as_json(line) == {"time": TIME, "level": "INFO", "logger": "athena.test", "message": "hello world"}
    assert line.startswith('{"time":"2026-02-16T15:00:00.250Z","level":"INFO",'), line


def test_a_workers_lines_name_it_in_both_formats() -> None:
    line = in_request("t-1", lambda: logs.JsonFormatter(worker=1).format(record(extra={"worker": 7})))
    assert as_json(line) == {
        "time": TIME,
        "level": "INFO",
        "logger": "athena.test",
        "worker": 1,
        "message": "hello world",
        "traceId": "t-1",
    }
    text = in_request("t-1", lambda: logs.TextFormatter(worker=0).format(record()))
    assert text == f"{TIME} INFO athena.test: hello world [worker=0] [trace=t-1]"
    assert isinstance(logs.formatter("JSON", 3), logs.JsonFormatter)
    assert logs.formatter("text").format(record()).endswith("hello world")


def test_json_line_carries_the_request_trace_id() -> None:
    line = in_request("trace-abc.1", lambda: logs.JsonFormatter().format(record(level=logging.WARNING)))
    assert as_json(line) == {
        "time": TIME,
        "level": "WARNING",
        "logger": "athena.test",
        "message": "hello world",
        "traceId": "trace-abc.1",
    }


def test_a_minted_trace_id_is_not_a_request_trace_id() -> None:
    """Work outside a request gets a trace id for its events (`trace_id()`), but its log lines name none:
    the start-up lines would otherwise all carry one minted there."""

    def fmt() -> str:
        assert trace_id()  # mints one in this context
        return logs.JsonFormatter().format(record())

    assert "traceId" not in as_json(outside_request(fmt))


def test_json_trace_id_given_as_extra_wins_over_the_context() -> None:
    line = in_request("ctx", lambda: logs.JsonFormatter().format(record(extra={"traceId": "given"})))
    assert as_json(line)["traceId"] == "given"


def test_json_exception_text_in_exc_on_one_line() -> None:
    line = outside_request(lambda: logs.JsonFormatter().format(record("failed %s", ("run-1",), exc=True)))
    obj = as_json(line)
    assert set(obj) == {"time", "level", "logger", "message", "exc"}
    assert obj["message"] == "failed run-1"
    assert obj["exc"].startswith("Traceback (most recent call last):\n")
    assert obj["exc"].endswith("\nValueError: boom")
    assert 'raise ValueError("boom")' in obj["exc"]


def test_json_extras_kept_and_named_fields_win() -> None:
    extra = {"runId": "r-1", "attempt": 2, "ratio": 0.5, "ok": True, "none": None, "path": Path("/tmp/x")}
    line = outside_request(lambda: logs.JsonFormatter().format(record(extra={**extra, "level": "FAKE"})))
    assert as_json(line) == {
        "time": TIME,
        "level": "INFO",
        "logger": "athena.test",
        "message": "hello world",
        "runId": "r-1",
        "attempt": 2,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "path": "/tmp/x",  # no JSON type: its text
    }


def test_json_extras_json_cannot_write_become_text() -> None:
    loop: list[Any] = []
    loop.append(loop)
    extra = {"nan": float("nan"), "tupleKeys": {(1, 2): "x"}, "loop": loop, "nested": {"a": [1, "é"]}}
    obj = as_json(outside_request(lambda: logs.JsonFormatter().format(record(extra=extra))))
    assert (obj["nan"], obj["tupleKeys"], obj["loop"], obj["nested"]) == (
        "nan",
        "{(1, 2): 'x'}",
        "[[...]]",
        extra["nested"],
    )


def test_json_non_ascii_round_trips_in_an_ascii_line() -> None:
    message = 'café ✓ 日本語 \U0001f680 "quoted" back\\slash\ttab'
    line = outside_request(lambda: logs.JsonFormatter().format(record("%s", (message,), extra={"who": "Zoë"})))
    assert line.isascii(), line  # valid JSON whatever encoding stderr has
    obj = as_json(line)
    assert (obj["message"], obj["who"]) == (message, "Zoë")


def test_json_multi_line_message_stays_one_line() -> None:
    line = outside_request(lambda: logs.JsonFormatter().format(record("a\nb", ())))
    assert as_json(line)["message"] == "a\nb"


def test_json_stack_info() -> None:
    rec = record()
    rec.stack_info = "Stack (most recent call last):\n  frame"
    assert as_json(outside_request(lambda: logs.JsonFormatter().format(rec)))["stack"] == rec.stack_info


# -------------------------------------------------------------------------------------------------- text


def test_text_line_without_and_with_a_trace() -> None:
    assert outside_request(lambda: logs.TextFormatter().format(record())) == f"{TIME} INFO athena.test: hello world"
    assert (
        in_request("t-1", lambda: logs.TextFormatter().format(record(level=logging.ERROR)))
        == f"{TIME} ERROR athena.test: hello world [trace=t-1]"
    )


def test_text_exception_follows_the_line() -> None:
    text = outside_request(lambda: logs.TextFormatter().format(record("failed", (), exc=True)))
    first, rest = text.split("\n", 1)
    assert first == f"{TIME} INFO athena.test: failed"
    assert rest.startswith("Traceback (most recent call last):\n")
    assert rest.endswith("\nValueError: boom")


# --------------------------------------------------------------------------------------- names and levels


def test_formatter_by_name() -> None:
    assert type(logs.formatter("json")) is logs.JsonFormatter
    assert type(logs.formatter(" JSON ")) is logs.JsonFormatter
    assert type(logs.formatter("text")) is logs.TextFormatter
    with pytest.raises(ValueError) as exc:
        logs.formatter("xml")
    assert str(exc.value) == "log format must be one of text, json, not 'xml'"


def test_level_by_name() -> None:
    assert [logs.level_number(n) for n in ("debug", "INFO", " warning ", "Error", "CRITICAL")] == [10, 20, 30, 40, 50]
    with pytest.raises(ValueError) as exc:
        logs.level_number("verbose")
    assert str(exc.value) == "log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'verbose'"


# ------------------------------------------------------------------------------------------------- set-up


@pytest.fixture
def pristine_logging() -> Iterator[None]:
    """Levels restored and the handler `logs.configure` installed removed after the test. (configure drops
    the root's other handlers, pytest's capture handlers of the test's call phase among them: pytest
    removes those itself.)"""
    root = logging.getLogger()
    level = root.level
    named = {name: logging.getLogger(name).level for name in logs.ATHENA_LOGGERS}
    # As in a fresh server process (where uvicorn gets log_config=None): another test's uvicorn.Config may
    # have given uvicorn's loggers handlers and levels of their own in this one.
    libraries = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "alembic")]
    saved = [(lg.handlers, lg.level, lg.propagate) for lg in libraries]
    for lg in libraries:
        lg.handlers, lg.level, lg.propagate = [], logging.NOTSET, True
    try:
        yield
    finally:
        for lg, (handlers, lvl, propagate) in zip(libraries, saved, strict=True):
            lg.handlers, lg.level, lg.propagate = handlers, lvl, propagate
        for handler in root.handlers[:]:
            if isinstance(handler.formatter, logs.JsonFormatter | logs.TextFormatter):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        for name, lvl in named.items():
            logging.getLogger(name).setLevel(lvl)
        logging.captureWarnings(False)


def emit_library_and_athena_lines() -> None:
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("athena.server").info("gRPC listening on 127.0.0.1:1")
    logging.getLogger("athena_server.storage.migrate").debug("athena debug")
    logging.getLogger("uvicorn.error").warning("uvicorn warning")


@pytest.mark.usefixtures("pristine_logging")
def test_configure_json_at_info_lets_only_athena_speak_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    emit_library_and_athena_lines()
    lines = [as_json(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"], line["message"]) for line in lines] == [
        ("athena.server", "INFO", "gRPC listening on 127.0.0.1:1"),
        ("uvicorn.error", "WARNING", "uvicorn warning"),
    ]


@pytest.mark.usefixtures("pristine_logging")
def test_configure_debug_lets_everything_through(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("debug", "text")
    emit_library_and_athena_lines()
    err = capsys.readouterr().err
    assert [line.split(" ", 1)[1] for line in err.splitlines()] == [
        "INFO alembic.runtime.migration: Context impl SQLiteImpl.",
        "INFO alembic.runtime.plugins: setup plugin alembic.autogenerate.schemas",
        "INFO uvicorn.error: Started server process [1]",
        "INFO athena.server: gRPC listening on 127.0.0.1:1",
        "DEBUG athena_server.storage.migrate: athena debug",
        "WARNING uvicorn.error: uvicorn warning",
    ]


@pytest.mark.usefixtures("pristine_logging")
def test_configure_warning_holds_athena_too_and_replaces_old_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "text")
    logs.configure("WARNING", "json")  # again: one handler, not two
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("athena.access").info("/athena.v1.RunService/CreateRun OK")
    logging.getLogger("athena").warning("careful")
    lines = [as_json(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [("athena", "careful")]


@pytest.mark.usefixtures("pristine_logging")
def test_configure_routes_python_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    logs.configure("INFO", "json")
    warnings.warn("old thing", DeprecationWarning, stacklevel=1)
    lines = [as_json(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [("py.warnings", "WARNING")]
    assert "DeprecationWarning: old thing" in lines[0]["message"]


@pytest.mark.usefixtures("pristine_logging")
def test_configure_rejects_unknown_names_before_touching_logging() -> None:
    root = logging.getLogger()
    before = (root.handlers[:], root.level, logging.getLogger("athena").level)
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        logs.configure("INFO", "yaml")
    with pytest.raises(ValueError, match="log level must be one of"):
        logs.configure("LOUD", "json")
    assert (root.handlers, root.level, logging.getLogger("athena").level) == before
