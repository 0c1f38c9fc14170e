"""What a command prints: for people, tables (lists) and key/value tables (single objects); with
`--output json`, exactly the REST API's `data` for the response, compact, one document and a newline.

JSON goes through the same two functions the gateway writes `data` with (`rest_data.field_json` and
`rest_data.dumps`), so the CLI's output equals the REST body's `data` byte for byte whichever transport
carried the call. Streams print one document per message and line; `--all` prints the items of every page
as one JSON array. Notes for people (the next page's cursor, waits) go to stderr, so stdout stays data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from google.protobuf.message import Message
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from athena_client.contract import message_to_json
from athena_client.rest_data import dumps, field_json, js_numbers
from athena_client.rpcs import NEXT_CURSOR_FIELD, Rpc

NEXT_CURSOR_KEY = "nextCursor"
NONE = "(none)"


def data_of(rpc: Rpc, message: Message) -> Any:
    """The REST `data` of a response (or of one streamed message) as JSON values."""
    return field_json(message, rpc.route.response_body)


def json_text(rpc: Rpc, message: Message) -> str:
    return dumps(data_of(rpc, message))


def items_json(items: Iterable[Message]) -> str:
    """The items of every page as one JSON array, each item as it is inside a page's `data`."""
    return dumps([message_to_json(item) for item in items])


def cell(value: Any) -> str:
    """One value as table text: strings as they are, JSON for anything structured."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(js_numbers(value))
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(cell(v) for v in value)
    return dumps(value)


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested objects as dotted keys (`usage.inputTokens`), so a single object reads as one table."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def key_values(data: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in flatten(data):
        table.add_row(Text(key), Text(cell(value) if value not in ([], {}) else NONE))
    return table


# A column of free text keeps at least this width when the table must shrink; ids and timestamps fold first.
_TEXT_MIN_WIDTH = 24


def rows(items: list[dict[str, Any]], title: str | None = None, columns: Sequence[str] = ()) -> Table:
    """A table of objects: the `columns` asked for, else a column per key that any item has a value for, in
    first-seen order."""
    shown: list[str] = []
    for item in items:
        for key, value in item.items():
            if key not in shown and value not in (None, "", [], {}):
                shown.append(key)
    if columns:
        shown = [key for key in columns if key in shown]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    cells = [[cell(item.get(key)) for key in shown] for item in items]
    for index, key in enumerate(shown):
        values = [row[index] for row in cells]
        structured = any(isinstance(item.get(key), (dict, list)) for item in items)
        text = structured or any(any(c.isspace() for c in v) for v in values)
        widest = max(len(key), *(len(line) for v in values for line in v.splitlines() or [""]))
        table.add_column(key, overflow="fold", min_width=min(widest, _TEXT_MIN_WIDTH) if text else None)
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    return table


def renderables(data: Any, columns: Sequence[str] = ()) -> list[RenderableType]:
    """`data` for people: lists of objects as tables, an object as key/value rows plus a table per list of
    objects it holds (a page's items alone when that is all it holds; `columns` picks that table's
    columns). The next-page cursor is left out: the printer notes it on stderr."""
    if data is None:
        return [Text(NONE, style="dim")]
    if isinstance(data, list):
        if not data:
            return [Text(NONE, style="dim")]
        if _is_rows(data):
            return [rows(data, columns=columns)]
        return [Text("\n".join(cell(item) for item in data))]
    if not isinstance(data, dict):
        return [Text(cell(data))]
    lists = {key: value for key, value in data.items() if _is_rows(value)}
    rest = {key: value for key, value in data.items() if key not in lists and key != NEXT_CURSOR_KEY}
    if not lists and len(rest) == 1 and next(iter(rest.values())) == []:
        return [Text(NONE, style="dim")]  # an empty page
    out: list[RenderableType] = []
    if rest:
        out.append(key_values(rest))
    titled = bool(rest) or len(lists) > 1
    if titled:
        out.extend(rows(value, key) for key, value in lists.items())
    else:
        out.extend(rows(value, columns=columns) for value in lists.values())
    return out or [Text(NONE, style="dim")]


def line(data: Any) -> Text:
    """One streamed message on one line: `key=value` for each field that has a value."""
    if not isinstance(data, dict):
        return Text(cell(data))
    text = Text()
    for key, value in data.items():
        if value in (None, "", [], {}):
            continue
        if text:
            text.append("  ")
        text.append(f"{key}=", style="dim")
        text.append(cell(value))
    return text


# Width of tables written to a pipe or file (rich's default there is 80, which folds ids and timestamps):
# wide enough for a page of events on one line each; COLUMNS overrides it.
PIPE_WIDTH = 200


def _pipe_width(out: TextIO) -> int | None:
    if "COLUMNS" in os.environ:
        return None
    try:
        return None if out.isatty() else PIPE_WIDTH
    except (AttributeError, ValueError):
        return PIPE_WIDTH


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


class Printer:
    """Prints responses in the chosen format: `table` or `json`."""

    def __init__(
        self, fmt: str, out: TextIO | None = None, err: Console | None = None, columns: Sequence[str] = ()
    ) -> None:
        self.fmt = fmt
        # The columns people see in a list (json prints every field).
        self.columns = tuple(columns)
        self.out = out or sys.stdout
        self.console = Console(file=self.out, highlight=False, width=_pipe_width(self.out))
        self.err = err or stderr_console()

    @property
    def json(self) -> bool:
        return self.fmt == "json"

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A remark for people, on stderr."""
        self.err.print(Text(text, style="dim"), soft_wrap=True)

    def response(self, rpc: Rpc, message: Message) -> None:
        if self.json:
            self._write(json_text(rpc, message))
            return
        for renderable in renderables(data_of(rpc, message), self.columns):
            self.console.print(renderable)
        if rpc.items_field is not None and message.HasField(NEXT_CURSOR_FIELD):
            cursor = getattr(message, NEXT_CURSOR_FIELD)
            self.note(f"more: --cursor {cursor} for the next page, --all for every page")

    def all_items(self, items: Iterable[Message]) -> None:
        collected = list(items)
        if self.json:
            self._write(items_json(collected))
            return
        for renderable in renderables([message_to_json(item) for item in collected], self.columns):
            self.console.print(renderable)

    def item(self, data: Any) -> None:
        """One message of a stream (or one entry printed like one): a JSON line, or a line for people."""
        if self.json:
            self._write(dumps(data))
            return
        self.console.print(line(data), soft_wrap=True)
        self.out.flush()

    def streamed(self, rpc: Rpc, message: Message) -> None:
        self.item(data_of(rpc, message))

    def text(self, text: str) -> None:
        """Plain text on stdout (a run's output), as it is."""
        self._write(text.rstrip("\n"))
