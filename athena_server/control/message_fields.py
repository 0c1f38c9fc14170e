"""Setting a message's optional fields from a row's nullable columns: a None column leaves the field unset
(absent in JSON), anything else is assigned. One helper instead of an `if x is not None` per field."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message


def set_present(message: Message, **values: Any) -> None:
    """Assign each value that is not None to the field of that name (scalars only; messages use CopyFrom)."""
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)
