"""Request fields as command-line flags, and flag values back into a request message.

The mapping, one rule per kind of proto field (the names are the field's, in kebab case):

| field | flag |
|---|---|
| string, bytes | `--name TEXT` |
| int32/int64/... | `--name INTEGER` |
| double/float | `--name FLOAT` |
| bool | `--name/--no-name` (unset unless given) |
| enum | `--name [spelling|...]`: the contract's JSON spellings (`followup`, `collect`) |
| repeated scalar | the flag once per item, singular name (`types` -> `--type a --type b`) |
| map<string, V> | `--name KEY=VALUE` once per entry, singular name (`default_params` -> `--default-param`) |
| message | `--name JSON`, or `@FILE` to read the JSON from a file (`@-`: stdin); repeated: once per item |

Only flags that were given are set, so the server applies its own defaults to the rest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import click
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from athena_client.cli.comments import comments, first_paragraph
from athena_client.contract import enum_json_values
from athena_client.requests import set_field

_INTEGERS = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})

# A request field's descriptor. At run time it comes from protobuf's C implementation, whose stub type is
# not the Python `FieldDescriptor`, so the helpers take either.
Field: TypeAlias = Any


def is_map(field: Field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def is_message(field: Field) -> bool:
    return field.message_type is not None and not is_map(field)


def singular(name: str) -> str:
    """`types` -> `type`, `context_refs` -> `context_ref`, `verification_policies` -> `verification_policy`;
    `metadata`, `allowed_egress` and `params`' singular `param` as English has them."""
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def flag_name(field: Field) -> str:
    """The flag of a field: `--session-id`; repeated and map fields by their singular (one item per flag)."""
    name = singular(field.name) if field.is_repeated else field.name
    return "--" + name.replace("_", "-")


def metavar(field: Field) -> str:
    """`N` for numbers, the field's name for text (`SESSION_ID`)."""
    if field.type in _INTEGERS:
        return "N"
    if field.type in _FLOATS:
        return "NUMBER"
    return field.name.upper()


def _scalar_type(field: Field) -> click.ParamType:
    if field.enum_type is not None:
        return click.Choice(enum_json_values(field.enum_type))
    if field.type in _INTEGERS:
        return click.INT
    if field.type in _FLOATS:
        return click.FLOAT
    if field.type == FieldDescriptor.TYPE_BOOL:
        return click.BOOL
    return click.STRING


def field_help(field: Field) -> str:
    text = first_paragraph(comments().get(f"{field.containing_type.full_name}.{field.name}", ""))
    if is_map(field):
        text = f"{text} KEY=VALUE, once per entry.".strip()
    elif is_message(field):
        kind = field.message_type.name
        text = f"{text} A {kind} as JSON, or @FILE.".strip()
        if field.is_repeated:
            text += " Once per item."
    elif field.is_repeated:
        text = f"{text} Once per item.".strip()
    return text


def option(field: Field, decls: str | None = None, required: bool = False) -> click.Option:
    """The click option of one request field (`decls` overrides the flag, e.g. `--enabled/--disabled`)."""
    help_text = field_help(field)
    if field.type == FieldDescriptor.TYPE_BOOL and not field.is_repeated:
        flag = decls or f"{flag_name(field)}/--no-{flag_name(field)[2:]}"
        return click.Option([flag, field.name], default=None, help=help_text, required=required)
    multiple = field.is_repeated
    if is_map(field):
        return click.Option([decls or flag_name(field), field.name], multiple=True, metavar="KEY=VALUE", help=help_text)
    if is_message(field):
        return click.Option(
            [decls or flag_name(field), field.name], multiple=multiple, metavar="JSON|@FILE", help=help_text
        )
    return click.Option(
        [decls or flag_name(field), field.name],
        type=_scalar_type(field),
        multiple=multiple,
        required=required,
        metavar=None if field.enum_type is not None else metavar(field),
        help=help_text,
    )


def argument(field: Field, required: bool = True) -> click.Argument:
    """A positional argument for a scalar field (`athena runs get RUN_ID`)."""
    return click.Argument([field.name], type=_scalar_type(field), required=required, metavar=metavar(field))


def read_text(source: str) -> str:
    """The text of a file, `-` for stdin; a readable error naming the file otherwise."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror or exc}") from None


def parse_json(text: str, where: str) -> Any:
    """JSON given inline, or `@FILE` (`@-`: stdin)."""
    if text.startswith("@"):
        text = read_text(text[1:])
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{where}: not JSON ({exc})") from None


def parse_pairs(items: Sequence[str], where: str) -> dict[str, str]:
    """`KEY=VALUE` items as a dict (a later key wins); the value may contain `=`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{where}: expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _map_values(field: Field, pairs: dict[str, str], where: str) -> dict[str, Any]:
    value_field = field.message_type.fields_by_name["value"]
    if value_field.message_type is not None:
        return {k: parse_json(v, where) for k, v in pairs.items()}
    kind = _scalar_type(value_field)
    return {k: kind.convert(v, None, None) for k, v in pairs.items()}


def flag_value(field: Field, value: Any, where: str) -> Any:
    """What `set_field` takes for a flag's raw value; None when the flag was not given."""
    if value is None or (field.is_repeated and not value):
        return None
    if is_map(field):
        return _map_values(field, parse_pairs(value, where), where)
    if is_message(field):
        if field.is_repeated:
            return [parse_json(item, where) for item in value]
        return parse_json(value, where)
    if field.is_repeated:
        return list(value)
    return value


def fill(message: Message, field: Field, value: Any, where: str) -> None:
    """`set_field` with its complaint as a usage error naming the flag."""
    try:
        set_field(message, field, value)
    except (TypeError, ValueError) as exc:  # json_format.ParseError is a ValueError
        raise click.BadParameter(f"{where}: {exc}") from None


def apply_flags(message: Message, values: Mapping[str, Any], flags: Mapping[str, str]) -> None:
    """Set the fields whose flags were given (`values` by field name; `flags` names the flag in errors)."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in values:
            continue
        where = flags.get(field.name, flag_name(field))
        value = flag_value(field, values[field.name], where)
        if value is not None:
            fill(message, field, value, where)
