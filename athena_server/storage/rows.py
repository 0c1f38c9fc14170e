"""Row classes from SQLAlchemy rows, by column name: a row class lists its fields once (its dataclass), and
reading a row never repeats them positionally, so adding or reordering a column cannot shift a value into
the wrong field."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

R = TypeVar("R")


_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def row_of(cls: type[R], r: Any, **converted: Any) -> R:
    """`cls` with each field read from the row's column of that name; `converted` gives the fields whose
    stored value needs converting (a JSON column's default, say). Columns `cls` does not hold are ignored."""
    m = r._mapping
    return cls(**{name: m[name] for name in _names(cls) if name not in converted}, **converted)
