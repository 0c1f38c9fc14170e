"""Run-path writes on SQLite through the driver, with the SQL compiled once from the Core statement.

A run makes about a dozen small writes, all on the one SQLite writer thread. Through SQLAlchemy's
execution machinery each costs ~40-50 us (more than SQLite itself, ~5 us), and that thread is the limit
of run throughput. `Prepared` keeps the Core statement as the single definition of the SQL, compiles it
per dialect and set of parameter names, and on SQLite hands the compiled SQL and the processed
parameters (JSON serialised, booleans as integers: the types' own bind processors) straight to the
driver cursor of the same connection, inside the same transaction. Other dialects execute the statement
through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select
from sqlalchemy.sql.dml import UpdateBase


class Outcome(NamedTuple):
    """One per statement, so a tuple: a frozen dataclass's __init__ costs several times more."""

    rowcount: int
    # The new row's integer primary key after an INSERT.
    lastrowid: int | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # (name, bind processor, value when the caller does not pass it: constants such as IN-list members)
    binds: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]


def _values(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
    out = []
    for name, processor, default in compiled.binds:
        value = params[name] if name in params else default
        out.append(processor(value) if processor is not None else value)
    return out


class Prepared:
    def __init__(self, statement: UpdateBase | Select[Any]) -> None:
        self.statement = statement
        self._cache: dict[frozenset[str], _Compiled] = {}

    def _compile(self, conn: Connection, keys: frozenset[str]) -> _Compiled:
        # Statements must not use expanding parameters (`in_()`): their SQL is only final per call.
        compiled = self.statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
        defaults = compiled.construct_params(_check=False)
        binds = []
        for name in compiled.positiontup or ():
            bind = compiled.binds.get(name)
            processor = bind.type._cached_bind_processor(conn.dialect) if bind is not None else None
            binds.append((name, processor, defaults.get(name)))
        entry = _Compiled(compiled.string, tuple(binds))
        self._cache[keys] = entry
        return entry

    def run(self, conn: Connection, params: Mapping[str, Any]) -> Outcome:
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, dict(params))
            key = result.inserted_primary_key if result.context.isinsert else None
            new_id = key[0] if key else None
            return Outcome(result.rowcount, new_id if isinstance(new_id, int) else None)
        keys = frozenset(params)
        compiled = self._cache.get(keys) or self._compile(conn, keys)
        values = _values(compiled, params)
        cursor = conn.connection.driver_connection.execute(compiled.sql, values)  # type: ignore[union-attr]
        return Outcome(cursor.rowcount, cursor.lastrowid)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """A SELECT's rows as plain tuples. Only for columns the driver returns as they are stored
        (strings, integers): no result processing is applied on SQLite."""
        if conn.dialect.name != "sqlite":
            return [tuple(r) for r in conn.execute(self.statement, dict(params)).all()]
        keys = frozenset(params)
        compiled = self._cache.get(keys) or self._compile(conn, keys)
        values = _values(compiled, params)
        return list(conn.connection.driver_connection.execute(compiled.sql, values).fetchall())  # type: ignore[union-attr]
