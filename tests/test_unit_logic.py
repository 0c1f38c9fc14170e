"""Unit tests for logic with no I/O: cursors, context compilation, time format, validation."""

from __future__ import annotations

import pytest

from athena_server import cursors, validation
from athena_server.engine.context import MAX_CONTEXT_CHARS, compile_context
from athena_server.errors import AthenaError
from athena_server.timefmt import iso, parse_iso


def test_cursor_round_trips_and_matches_the_seed() -> None:
    assert cursors.encode(1) == "MQ"
    assert cursors.decode_number("MQ", "x") == 1
    key = {"kind": "sessions", "updatedAt": "2026-02-16T15:00:01.000Z", "id": "s1"}
    token = cursors.encode(key)
    assert token == "eyJraW5kIjoic2Vzc2lvbnMiLCJ1cGRhdGVkQXQiOiIyMDI2LTAyLTE2VDE1OjAwOjAxLjAwMFoiLCJpZCI6InMxIn0"
    fields: dict[str, cursors.KeyField] = {"updatedAt": "instant", "id": "text"}
    assert cursors.decode_keyset(token, "sessions", "x", fields) == {"updatedAt": 1771254001000, "id": "s1"}
    assert cursors.decode_keyset(cursors.encode(7), "sessions", "x", fields) == 7


@pytest.mark.parametrize("bad", ["", "!!", "eyJraW5kIjoiYWN0aXZlIn0", "bm90LWEtbnVtYmVy"])
def test_bad_cursors_are_config_errors(bad: str) -> None:
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(bad, "sessions", "sessions.list", {"id": "text"})
    assert exc.value.code_name == "CONFIG_ERROR"
    assert exc.value.message == "sessions.list.cursor is invalid."


def test_context_first_turn_and_history() -> None:
    assert compile_context([], "hello").prompt == "user: hello"
    ctx = compile_context([("user", "hello"), ("assistant", "Echo: user: hello")], "again")
    assert ctx.prompt == "user: hello\n\nassistant: Echo: user: hello\n\nuser: again"
    assert ctx.strategy == "raw"


def test_context_drops_oldest_turns_to_fit() -> None:
    history = [("user", "a" * 8000), ("assistant", "b" * 8000), ("user", "c" * 8000), ("assistant", "d" * 8000)]
    ctx = compile_context(history, "now")
    assert len(ctx.prompt) <= MAX_CONTEXT_CHARS
    assert ctx.strategy == "truncated-history"
    assert ctx.history_entries == 3
    assert ctx.prompt.startswith("assistant: " + "b" * 10)
    assert ctx.prompt.endswith("user: now")


def test_context_strips_control_characters() -> None:
    assert compile_context([("user", "a\x00b\x07c\nd")], "x").prompt == "user: abc\nd\n\nuser: x"


def test_context_overflow_when_input_alone_is_too_big() -> None:
    with pytest.raises(AthenaError) as exc:
        compile_context([], "x" * MAX_CONTEXT_CHARS)
    assert exc.value.code_name == "CONTEXT_OVERFLOW"


def test_iso_is_to_iso_string_form() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1771254000123) == "2026-02-16T15:00:00.123Z"
    assert parse_iso("2026-02-16T15:00:00.123Z") == 1771254000123
    assert parse_iso("2026-02-16T16:00:00.123+01:00") == 1771254000123
    assert parse_iso("yesterday") is None


@pytest.mark.parametrize("ms", [-1, -1000, -1001, 1, 999, 1000, 1001, 1771254000999, 1771254001000, 253402300799999])
def test_iso_agrees_with_datetime_either_side_of_a_second(ms: int) -> None:
    """The cached seconds never shift an instant across a second, before 1970 included."""
    from datetime import UTC, datetime, timedelta

    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert iso(ms) == expected[:-3] + "Z"
    assert parse_iso(iso(ms)) == ms


@pytest.mark.parametrize(("given", "expected"), [(None, 50), (0, 1), (-5, 1), (1, 1), (500, 500), (501, 500)])
def test_page_limit_clamps(given: int | None, expected: int) -> None:
    assert validation.page_limit(given) == expected


def test_session_id_pattern() -> None:
    assert validation.session_id("  s1.a_b-c ", "ctx") == "s1.a_b-c"
    for bad in ("", "a b", "a/b", "ä"):
        with pytest.raises(AthenaError):
            validation.session_id(bad, "ctx")
