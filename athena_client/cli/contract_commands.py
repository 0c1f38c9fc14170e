"""Commands generated from the contract: one per row of the command table (`commands.py`), its flags
from the RPC's request fields (`fields.py`), its help and example from the RPC, its output from the RPC's
REST binding (`output.py`).

A generated command builds the request from its flags, opens a connection (`connection.py`), makes the
call and prints the answer: one page of a paged list (`--all`: every page), every message of a stream
(resuming after the last one delivered when the connection drops; `--count N` stops after N), or the
response. Failures print `CODE: message` on stderr and exit with the code of their class (`exits.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click
from google.protobuf.message import Message

from athena_client.cli import fields
from athena_client.cli.commands import COMMANDS, GROUPS, CommandSpec
from athena_client.cli.comments import comments
from athena_client.cli.connection import (
    OPTION_NAMES,
    Connection,
    ConnectionSettings,
    connect,
    connection_options,
    resolve,
    starts_work,
)
from athena_client.cli.exits import INTERRUPTED, CommandFailure, error_lines, exit_code, report
from athena_client.cli.output import Printer
from athena_client.contract import json_to_message
from athena_client.errors import TRANSPORT_DEADLINE_EXCEEDED, AthenaError, AthenaTransportError
from athena_client.rpcs import Rpc, rpcs

# Click parameter names of the options every generated command may add besides its fields (none is a
# request field name: `_check_names` makes sure).
ALL_PAGES = "all_pages"
REQUEST_FILE = "request_file"
COUNT = "count"


@dataclass
class Invocation:
    """One run of a command: what it calls with, how it prints; `extras` holds a composite's own flags."""

    spec: CommandSpec
    rpc: Rpc
    request: Message
    settings: ConnectionSettings
    printer: Printer
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Composite:
    """A hand-written command: extra click parameters and the action that replaces the generated call."""

    params: Callable[[], list[click.Parameter]]
    action: Callable[[Invocation, Connection], None]


def _composites() -> dict[str, Composite]:
    # Imported when needed: the composites build on this module.
    from athena_client.cli.composites import COMPOSITES

    return COMPOSITES


def rpc_of(spec: CommandSpec) -> Rpc:
    return rpcs()[spec.full_name]


def _request_fields(rpc: Rpc) -> list[fields.Field]:
    return list(rpc.request_class.DESCRIPTOR.fields)


def _flag_of(spec: CommandSpec, f: fields.Field) -> str:
    if f.name in spec.positional:
        return fields.metavar(f)
    decls = spec.flags.get(f.name)
    return decls.split("/")[0] if decls else fields.flag_name(f)


def example(spec: CommandSpec) -> str:
    """The help's example: the table's, else the command with its positional and path-parameter flags."""
    if spec.example:
        return f"athena {spec.name} {spec.example}"
    rpc = rpc_of(spec)
    by_name = rpc.request_class.DESCRIPTOR.fields_by_name
    words = [fields.metavar(by_name[name]) for name in spec.positional]
    for name in rpc.route.path_params:
        if name not in spec.positional:
            words += [_flag_of(spec, by_name[name]), fields.metavar(by_name[name])]
    return " ".join(["athena", spec.name, *words])


def _epilog(spec: CommandSpec, rpc: Rpc) -> str:
    calls = ", ".join(name.removeprefix("athena.v1.") for name in spec.rpcs)
    route = rpc.route
    # "\b" keeps click from re-wrapping the paragraph that follows it.
    return f"\b\nExample:\n  {example(spec)}\n\n\bCalls {calls} (REST: {route.http_method} {route.path})."


def _params(spec: CommandSpec, rpc: Rpc) -> list[click.Parameter]:
    by_name = rpc.request_class.DESCRIPTOR.fields_by_name
    path_params = set(rpc.route.path_params)
    params: list[click.Parameter] = [fields.argument(by_name[name]) for name in spec.positional]
    for f in _request_fields(rpc):
        if f.name in spec.positional:
            continue
        required = f.name in path_params and spec.file_field != ""
        params.append(fields.option(f, spec.flags.get(f.name), required=required))
    if spec.file_field is not None:
        what = "the request (the REST body)" if spec.file_field == "" else f"the `{spec.file_field}`"
        params.append(
            click.Option(
                ["--file", REQUEST_FILE],
                metavar="PATH",
                help=f"JSON of {what}; `-` reads stdin. Flags given as well override it.",
            )
        )
    if rpc.items_field is not None:
        params.append(click.Option(["--all", ALL_PAGES], is_flag=True, default=False, help="Every page, not one."))
    if rpc.streaming:
        params.append(
            click.Option(
                [f"--{COUNT}", COUNT], type=click.IntRange(min=1), metavar="N", help="Stop after this many messages."
            )
        )
    if spec.composite is not None:
        params.extend(_composites()[spec.composite].params())
    params.extend(connection_options())
    _check_names(spec, params)
    return params


def _check_names(spec: CommandSpec, params: list[click.Parameter]) -> None:
    """A request field must not shadow a connection option or an extra flag (a contract change that adds
    `transport` to a request is caught when the command is built, i.e. by the tests)."""
    seen: set[str] = set()
    for param in params:
        names = [param.name or "", *(getattr(param, "opts", []) if isinstance(param, click.Option) else [])]
        for name in names:
            if name in seen:
                raise ValueError(f"athena {spec.name}: {name} is declared twice")
            seen.add(name)


def _load_file(spec: CommandSpec, message: Message, source: str) -> None:
    document = fields.parse_json(f"@{source}", "--file")
    if spec.file_field == "":
        if not isinstance(document, dict):
            raise click.BadParameter("--file: expected a JSON object (the request body)")
        try:
            json_to_message(document, message)
        except ValueError as exc:
            raise click.BadParameter(f"--file: {exc}") from None
        return
    assert spec.file_field is not None
    target = message.DESCRIPTOR.fields_by_name[spec.file_field]
    if isinstance(document, dict) and set(document) == {target.json_name}:
        document = document[target.json_name]  # the REST body form, `{"definition": {...}}`
    fields.fill(message, target, document, "--file")


def _check_one_of(spec: CommandSpec, rpc: Rpc, values: dict[str, Any]) -> None:
    by_name = rpc.request_class.DESCRIPTOR.fields_by_name
    for group in spec.one_of:
        given = [name for name in group if values.get(name) not in (None, ())]
        if len(given) != 1:
            flags = " or ".join(_flag_of(spec, by_name[name]) for name in group)
            raise click.UsageError(f"give exactly one of {flags}")


def build_request(spec: CommandSpec, rpc: Rpc, values: dict[str, Any]) -> Message:
    """The request from the command's values (popped from `values`: what is left are extras)."""
    message = rpc.request_class()
    source = values.pop(REQUEST_FILE, None)
    if source is not None:
        _load_file(spec, message, source)
    field_values = {f.name: values.pop(f.name) for f in _request_fields(rpc) if f.name in values}
    if source is None:
        _check_one_of(spec, rpc, field_values)
    flags = {f.name: _flag_of(spec, f) for f in _request_fields(rpc)}
    fields.apply_flags(message, field_values, flags)
    return message


@contextlib.contextmanager
def waiting(printer: Printer, rpc: Rpc, text: str) -> Iterator[None]:
    """A spinner on stderr while a call that starts work waits for it (only when stderr is a terminal)."""
    if starts_work(rpc) and printer.err.is_terminal:
        with printer.err.status(text, spinner="dots"):
            yield
    else:
        yield


def call(inv: Invocation, conn: Connection, request: Message | None = None, rpc: Rpc | None = None) -> Message:
    target = rpc or inv.rpc
    with waiting(inv.printer, target, f"athena {inv.spec.name}: waiting for the answer…"):
        return conn.client.call(target, request if request is not None else inv.request, timeout=conn.timeout(target))


def stream(inv: Invocation, conn: Connection, rpc: Rpc, request: Message, count: int | None) -> None:
    """Print each message of a stream; the SDK reconnects after the last one delivered."""
    messages = conn.client.stream(rpc, request)
    try:
        for index, message in enumerate(messages, start=1):
            inv.printer.streamed(rpc, message)
            if count is not None and index >= count:
                return
    finally:
        close = getattr(messages, "close", None)  # a generator: closing it ends the call
        if close is not None:
            close()


def generated_action(inv: Invocation, conn: Connection) -> None:
    if inv.rpc.streaming:
        stream(inv, conn, inv.rpc, inv.request, inv.extras.get(COUNT))
    elif inv.extras.get(ALL_PAGES):
        inv.printer.all_items(conn.client.items(inv.rpc, inv.request, timeout=conn.timeout(inv.rpc)))
    else:
        inv.printer.response(inv.rpc, call(inv, conn))


def _settle_note(printer: Printer) -> Callable[[int], None]:
    def notify(count: int) -> None:
        printer.note(
            f"athena: waiting for {count} run(s) this command started to finish: the local transport's "
            "control plane stops when athena exits (Ctrl-C cancels them; a server keeps them running)."
        )

    return notify


def _hint(error: AthenaError, settings: ConnectionSettings, transport: str | None) -> str | None:
    if not isinstance(error, AthenaTransportError) or transport != "api":
        return None
    if error.code == TRANSPORT_DEADLINE_EXCEEDED:
        return f"the API at {settings.api_base_url} did not answer within --api-timeout-ms"
    return (
        f"no answer from the API at {settings.api_base_url}: is `athena api serve` running there? "
        "(`--transport local` runs the control plane in this process)"
    )


def execute(inv: Invocation, action: Callable[[Invocation, Connection], None]) -> None:
    """Open the connection, run the action, report a failure and exit with its code."""
    err = inv.printer.err
    transport: str | None = None
    try:
        fallback = inv.printer.note if err.is_terminal else None
        with connect(inv.settings, _settle_note(inv.printer), fallback) as conn:
            transport = conn.transport
            action(inv, conn)
    except AthenaError as error:
        report(err, error_lines(error, _hint(error, inv.settings, transport or inv.settings.transport)))
        raise SystemExit(exit_code(error)) from None
    except CommandFailure as failure:
        report(err, [failure.message])
        raise SystemExit(failure.code) from None
    except KeyboardInterrupt:
        report(err, ["interrupted"])
        raise SystemExit(INTERRUPTED) from None


def _callback(spec: CommandSpec) -> Callable[..., None]:
    def run(**values: Any) -> None:
        ctx = click.get_current_context()
        inner = {name: values.pop(name, None) for name in OPTION_NAMES}
        settings = resolve(ctx.find_root().params, inner, os.environ)
        rpc = rpc_of(spec)
        request = build_request(spec, rpc, values)
        printer = Printer(settings.output, columns=spec.columns)
        inv = Invocation(spec, rpc, request, settings, printer, extras=values)
        action = _composites()[spec.composite].action if spec.composite else generated_action
        execute(inv, action)

    return run


def build_command(spec: CommandSpec) -> click.Command:
    rpc = rpc_of(spec)
    return click.Command(
        spec.path[-1],
        params=_params(spec, rpc),
        callback=_callback(spec),
        help=comments().get(spec.full_name, ""),
        epilog=_epilog(spec, rpc),
        short_help=_short_help(spec),
    )


def _short_help(spec: CommandSpec) -> str:
    text = comments().get(spec.full_name, "")
    first = " ".join(text.split("\n\n")[0].split())
    cut = first.find(". ")
    return first if cut < 0 else first[: cut + 1]


class ContractGroup(click.Group):
    """A command group (`athena schedule ...`) whose commands are built when first asked for."""

    def __init__(self, name: str, specs: list[CommandSpec]) -> None:
        text = GROUPS.get(name, "")
        super().__init__(name, help=text, short_help=text, no_args_is_help=True)
        self._specs = {spec.path[-1]: spec for spec in specs}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self._specs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._specs:
            self.add_command(build_command(self._specs[cmd_name]))
        return self.commands.get(cmd_name)


def top_level() -> dict[str, CommandSpec | list[CommandSpec]]:
    """What the table puts under `athena`: a command (`run`, `fleet`) or a group's rows, in table order."""
    out: dict[str, CommandSpec | list[CommandSpec]] = {}
    for spec in COMMANDS:
        if len(spec.path) == 1:
            out[spec.path[0]] = spec
        else:
            group = out.setdefault(spec.path[0], [])
            assert isinstance(group, list), f"{spec.path[0]} is both a command and a group"
            group.append(spec)
    return out


def build_top_level(name: str) -> click.Command | None:
    entry = top_level().get(name)
    if entry is None:
        return None
    if isinstance(entry, CommandSpec):
        return build_command(entry)
    return ContractGroup(name, entry)
