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
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import UpdateBase


@dataclass(frozen=True)
class Outcome:
    rowcount: int
    # The new row's integer primary key after an INSERT.
    lastrowid: int | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]


class Prepared:
    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._cache: dict[frozenset[str], _Compiled] = {}

    def _compile(self, conn: Connection, keys: frozenset[str]) -> _Compiled:
        compiled = self.statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
        binds = []
        for name in compiled.positiontup or ():
            processor = compiled.binds[name].type._cached_bind_processor(conn.dialect)
            binds.append((name, processor))
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
        values = [proc(params[name]) if proc else params[name] for name, proc in compiled.binds]
        cursor = conn.connection.driver_connection.execute(compiled.sql, values)  # type: ignore[union-attr]
        return Outcome(cursor.rowcount, cursor.lastrowid)
