"""Cursors and paging: what a client may send back as a cursor (exact bounds), keyset pages newest first
over a real SQLite store (no row lost or repeated across pages), and byte-bounded pages."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from sqlalchemy import select

from athena_server import cursors
from athena_server.control import pages
from athena_server.errors import AthenaError
from athena_server.storage import keyset, schedules
from athena_server.storage.store import Store
from athena_server.storage.tables import schedules as schedules_table


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def keyset_cursor(**values: Any) -> str:
    return b64(json.dumps(values))


def test_encode_is_unpadded_base64url_of_compact_json_or_decimal() -> None:
    assert cursors.encode(12) == "MTI"
    assert cursors.encode({"kind": "k", "n": 1}) == b64('{"kind":"k","n":1}')
    assert cursors.decode_number("MTI", "x") == 12
    assert cursors.decode_number(b64("0"), "x") == 0


def test_number_bounds() -> None:
    assert cursors.number("9007199254740992") == 2**53
    assert cursors.number("9007199254740993") is None
    assert cursors.number("0000000000000001") == 1
    assert cursors.number("00000000000000001") is None  # 17 digits
    for bad in ("", "-1", "+1", "1.0", " 1", "\uff11"):
        assert cursors.number(bad) is None


@pytest.mark.parametrize("bad", ["A" * 513, "%%%", "_w", b64("12a")])
def test_a_cursor_that_is_no_number_is_invalid(bad: str) -> None:
    with pytest.raises(AthenaError) as exc:
        cursors.decode_number(bad, "events.list")
    assert exc.value.code_name == "CONFIG_ERROR" and exc.value.message == "events.list.cursor is invalid."


def test_the_longest_cursor_is_accepted() -> None:
    padded = b64("0" * 10 + "7")
    assert cursors.decode_keyset(padded + "", "k", "x", {}) == 7
    token = keyset_cursor(kind="k", id="i" * 200, pad="p" * 150)
    assert len(token) <= cursors.MAX_CURSOR_CHARS
    assert cursors.decode_keyset(token, "k", "x", {"id": "text"}) == {"id": "i" * 200}
    longest = token + "A" * (cursors.MAX_CURSOR_CHARS - len(token))
    with pytest.raises(AthenaError):  # 512 characters pass the length check and fail as base64 JSON
        cursors.decode_keyset(longest + "A", "k", "x", {"id": "text"})


FIELDS: dict[str, cursors.KeyField] = {"n": "number", "at": "instant", "id": "text"}


def test_keyset_fields_accept_their_whole_range() -> None:
    ok = keyset_cursor(kind="k", n=2**53, at="9999-12-31T23:59:59.999Z", id="x" * 200, extra=1)
    assert cursors.decode_keyset(ok, "k", "c", FIELDS) == {"n": 2**53, "at": 253_402_300_799_999, "id": "x" * 200}
    low = keyset_cursor(kind="k", n=0, at="0001-01-01T00:00:00.000Z", id="a")
    assert cursors.decode_keyset(low, "k", "c", FIELDS) == {"n": 0, "at": -62_135_596_800_000, "id": "a"}


@pytest.mark.parametrize(
    "values",
    [
        {"n": 2**53 + 1},
        {"n": -1},
        {"n": True},
        {"at": "not a time"},
        {"at": "2026-01-01T00:00:00.000Z" + " " * 41},
        {"at": 5},
        {"id": ""},
        {"id": "x" * 201},
        {"id": "a\x00b"},
        {"id": "a\x9fb"},
        {"id": 7},
        {"kind": "other"},
    ],
)
def test_keyset_fields_out_of_range_are_invalid(values: dict[str, Any]) -> None:
    fields = {"kind": "k", "n": 1, "at": "2026-01-01T00:00:00.000Z", "id": "a", **values}
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(keyset_cursor(**fields), "k", "runs.list", FIELDS)
    assert exc.value.message == "runs.list.cursor is invalid."


@pytest.mark.parametrize("text", ["[1]", "{", "null", "9007199254740993", "[" * 5000])
def test_keysets_that_are_no_object_are_invalid(text: str) -> None:
    token = b64(text)
    if len(token) > cursors.MAX_CURSOR_CHARS:
        token = token[: cursors.MAX_CURSOR_CHARS - 4]
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(token, "k", "runs.list", FIELDS)
    assert exc.value.message == "runs.list.cursor is invalid."


def test_an_instant_at_the_64_character_limit_is_read() -> None:
    at = "2026-01-01T00:00:00.0000000000000000000000000000000000000000000Z"
    assert len(at) == 64
    assert cursors.decode_keyset(keyset_cursor(kind="k", at=at), "k", "c", {"at": "instant"}) == {
        "at": 1_767_225_600_000
    }


# ---- keyset pages over a real store ---------------------------------------------------------------------


async def test_newest_first_pages_cover_every_row_once(store: Store) -> None:
    base = uuid.uuid4().hex
    # Ties on the first column are ordered by the second, both descending.
    keys = [(3, f"{base}-a"), (2, f"{base}-d"), (2, f"{base}-c"), (2, f"{base}-b"), (1, f"{base}-e")]
    for created, sid in keys:
        row = schedules.ScheduleRow(sid, "s", "i", 5, None, None, True, False, created, created, 0, None)
        await store.write(lambda conn, row=row: schedules.upsert(conn, row))
    cols = [schedules_table.c.created_at_ms, schedules_table.c.id]

    def page(before: tuple[int, str] | None, limit: int, offset: int = 0) -> list[tuple[int, str]]:
        q = keyset.newest_first(select(*cols), cols, before, limit, offset)
        return [(r.created_at_ms, r.id) for r in store.engine.connect().execute(q).all()]

    expected = sorted(keys, reverse=True)
    assert page(None, 10) == expected
    seen: list[tuple[int, str]] = []
    before = None
    while True:
        rows = page(before, 2)
        if not rows:
            break
        seen += rows
        before = rows[-1]
    assert seen == expected
    assert page((2, f"{base}-c"), 10) == expected[3:]
    assert page(None, 2, offset=2) == expected[2:4]


async def test_oldest_first_pages_cover_every_row_once(store: Store) -> None:
    base = uuid.uuid4().hex
    # Ties on the first column are ordered by the second, both ascending.
    keys = [(1, f"{base}-e"), (2, f"{base}-b"), (2, f"{base}-c"), (2, f"{base}-d"), (3, f"{base}-a")]
    for created, sid in reversed(keys):
        row = schedules.ScheduleRow(sid, "s", "i", 5, None, None, True, False, created, created, 0, None)
        await store.write(lambda conn, row=row: schedules.upsert(conn, row))
    cols = [schedules_table.c.created_at_ms, schedules_table.c.id]

    def page(after: tuple[int, str] | None, limit: int) -> list[tuple[int, str]]:
        q = keyset.oldest_first(select(*cols), cols, after, limit)
        return [(r.created_at_ms, r.id) for r in store.engine.connect().execute(q).all()]

    assert page(None, 10) == keys
    assert page(None, 2) == keys[:2]
    seen: list[tuple[int, str]] = []
    after = None
    while rows := page(after, 2):
        seen += rows
        after = rows[-1]
    assert seen == keys
    assert page((2, f"{base}-c"), 10) == keys[3:]
    assert page((2, f"{base}-d"), 1) == keys[4:]


# ---- byte-bounded pages ---------------------------------------------------------------------------------


def item(text: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=text)


def test_a_page_holds_at_most_limit_items_and_says_where_to_continue() -> None:
    rows = ["a", "b", "c", "d"]
    page = pages.fill(rows, 3, item)
    assert [m.value for m in page.items] == ["a", "b", "c"] and page.last == "c"
    whole = pages.fill(rows[:3], 3, item)
    assert len(whole.items) == 3 and whole.last is None
    assert pages.fill([], 3, item) == pages.Page([], None)


def test_a_page_stops_before_the_item_that_passes_the_budget() -> None:
    rows = ["x" * 8, "y" * 8, "z" * 8, "w"]  # 10 bytes each serialized (tag, length, 8 bytes)
    exact = pages.fill(rows, 10, item, budget=20)
    assert [m.value for m in exact.items] == rows[:2] and exact.last == rows[1]
    short = pages.fill(rows, 10, item, budget=19)
    assert [m.value for m in short.items] == rows[:1] and short.last == rows[0]
    alone = pages.fill(["q" * 100, "r"], 10, item, budget=5)
    assert [m.value for m in alone.items] == ["q" * 100] and alone.last == "q" * 100
    assert pages.PAGE_BYTES == 1 << 20
    big = pages.fill(["a" * 600_000, "b" * 600_000], 10, item)
    assert len(big.items) == 1 and big.last == "a" * 600_000
