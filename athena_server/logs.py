"""The server's log output: one formatter per `--log-format` (`text` for a terminal, `json` for a log
pipeline), both carrying the trace id of the request a record was logged for, and a quiet start-up.

Quiet: at INFO only Athena's own loggers speak at INFO; every library (Alembic's plugin and migration
lines, uvicorn's "Started server process") is held to WARNING, so starting a server prints its listening
addresses and little else. DEBUG lets everything through. Every record, uvicorn's included, goes through
the one root handler, so a JSON log has no line that is not JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from json.encoder import encode_basestring_ascii
from typing import Final

from athena_server.otel import current_span_id
from athena_server.timefmt import iso
from athena_server.tracing import current_trace_id

LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The loggers that stay at the configured level when libraries are held to WARNING: Athena's own
# (`athena`, `athena.server`, `athena.access`, ... and the packages' `__name__` loggers).
ATHENA_LOGGERS: Final = ("athena", "athena_server", "athena_gateway", "athena_client")
# The attribute a record may carry (`extra={"traceId": ...}`) for work logged outside the request's
# context, e.g. the gateway's middleware; otherwise the trace id comes from the request's context.
TRACE_ATTR: Final = "traceId"
# The active span's id on a JSON line, when tracing is on (athena_server/otel.py) and a span is active.
SPAN_ATTR: Final = "spanId"

# Every attribute a LogRecord has of its own; whatever else a record carries came from `extra=`.
_BLANK: Final = logging.LogRecord("", 0, "", 0, "", None, None).__dict__
_NOT_EXTRA: Final = frozenset(_BLANK) | {"message", "asctime", "taskName", TRACE_ATTR}
_BASE_COUNT: Final = len(_BLANK)
# The fields a JSON line names itself; an extra of the same name is dropped.
_NAMED: Final = frozenset({"time", "level", "logger", "worker", "message", TRACE_ATTR, SPAN_ATTR, "exc", "stack"})
# ASCII-only throughout: a line stays valid JSON whatever encoding stderr has (a non-UTF-8 stream would
# otherwise write `\xe9`-style replacements, which are not JSON). Strings go through the C escaper directly
# (1 µs a line where a JSONEncoder over a dict takes 5); extras through the encoder, where a value JSON has
# no type for (or NaN, which JSON cannot write) becomes its text.
_str: Final = encode_basestring_ascii
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)


def _value(value: object) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError):  # keys JSON cannot have, circular references, NaN
        return _str(str(value))


def _time(record: logging.LogRecord) -> str:
    """`2026-02-16T15:00:00.123Z`: UTC with milliseconds, the API's own time format."""
    return iso(int(record.created * 1000))


def _trace(record: logging.LogRecord) -> str | None:
    given = record.__dict__.get(TRACE_ATTR)
    return str(given) if given is not None else current_trace_id()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time`, `level`, `logger`, `worker` (in a worker of `--workers N`: its
    number, 0 to N-1, kept by its replacement), `message`, `traceId` (when the record was logged while
    handling a request), `spanId` (when tracing is on and a span is active), `exc` / `stack` (when there is
    one), then the `extra=` fields. The named fields win over an extra of the same name, so an extra cannot
    disguise a record's level."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = f',"worker":{worker}' if worker is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f'{{"time":"{_time(record)}","level":{_str(record.levelname)},"logger":{_str(record.name)}'
            f'{self._worker},"message":{_str(record.getMessage())}'
        )
        trace = _trace(record)
        if trace is not None:
            line += f',"traceId":{_str(trace)}'
        span = current_span_id()
        if span is not None:
            line += f',"spanId":"{span}"'
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += f',"exc":{_str(record.exc_text)}'
        if record.stack_info:
            line += f',"stack":{_str(self.formatStack(record.stack_info))}'
        attrs = record.__dict__
        if len(attrs) > _BASE_COUNT:  # only a record given `extra=` (or formatted before) has more
            for key, value in attrs.items():
                if key not in _NOT_EXTRA and key not in _NAMED:
                    line += f",{_str(key)}:{_value(value)}"
        return line + "}"


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message> [worker=<n>] [trace=<id>]`, the worker's number in a worker of
    `--workers N` and the trace id only when there is one; an exception's traceback follows on its own
    lines, as the standard formatter writes it."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = f" [worker={worker}]" if worker is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}{self._worker}"
        trace = _trace(record)
        if trace is not None:
            line += f" [trace={trace}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def formatter(log_format: str, worker: int | None = None) -> logging.Formatter:
    """The formatter `log_format` names (`text` or `json`, any case), naming `worker` on every line when
    given; ValueError naming the allowed formats."""
    match log_format.strip().lower():
        case "text":
            return TextFormatter(worker)
        case "json":
            return JsonFormatter(worker)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")


def level_number(level: str) -> int:
    """The number of a level name (any case); ValueError naming the allowed ones."""
    name = level.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return logging.getLevelNamesMapping()[name]


def configure(level: str, log_format: str, worker: int | None = None) -> None:
    """Route every record through one stderr handler with the chosen formatter, replacing whatever
    handlers the root logger had; Athena's loggers at `level`, every other library at WARNING or above
    unless `level` is DEBUG. Python warnings become log records too (`py.warnings`). `worker`: this
    process is that worker of `--workers N`, and every line says so."""
    number, chosen = level_number(level), formatter(log_format, worker)  # both checked before anything changes
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(chosen)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number if number <= logging.DEBUG else max(number, logging.WARNING))
    for name in ATHENA_LOGGERS:
        logging.getLogger(name).setLevel(number)
    logging.captureWarnings(True)
