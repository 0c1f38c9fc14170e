"""Writes the SDK's typed service clients (`gen/athena/v1/services_client.py`) from the contract.

Usage: gen_sdk.py CONTRACT_BINPB OUTPUT_PY

Reads the descriptor set `buf build` wrote (with comments, so each method's docstring is its proto comment)
and emits, per service, a blocking and an asyncio client class with one method per RPC: typed keyword
arguments from the request's fields, the response class as the return type. Paged RPCs also get an
`iter_<rpc>` method over every item. Nothing here names an RPC: a new one in the proto is a new method
after `scripts/gen`, and `scripts/gen-check` fails until it is regenerated.
"""

from __future__ import annotations

import keyword
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

FDP = descriptor_pb2.FieldDescriptorProto
PACKAGE = "athena.v1"
# Call options every method takes; a request field with one of these names would collide.
CALL_OPTIONS = {"request", "rpc_timeout", "rpc_retry", "rpc_metadata", "rpc_resume", "idempotency_key"}
_SCALARS = {
    FDP.TYPE_STRING: "str",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_DOUBLE: "float",
    FDP.TYPE_FLOAT: "float",
    **{
        t: "int"
        for t in (
            FDP.TYPE_INT32,
            FDP.TYPE_INT64,
            FDP.TYPE_UINT32,
            FDP.TYPE_UINT64,
            FDP.TYPE_SINT32,
            FDP.TYPE_SINT64,
            FDP.TYPE_FIXED32,
            FDP.TYPE_FIXED64,
            FDP.TYPE_SFIXED32,
            FDP.TYPE_SFIXED64,
        )
    },
}
# Method options read from the raw option bytes (this script runs before the generated modules that would
# register the extensions exist): field numbers of `google.api.http` and `athena.v1` options.
HTTP_OPTION = 72295728
ROLE_OPTION = 50003  # (athena.v1.required_role)
IDEMPOTENCY_OPTION = 50005  # (athena.v1.idempotency_key)
ROLE_NAMES = {1: "Public", 2: "Viewer", 3: "Operator", 4: "Admin"}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass
class TypeRef:
    module: str  # import alias, e.g. runs_pb2
    path: str  # class path inside the module, e.g. CreateRunRequest or Outer.Inner
    proto: descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto

    @property
    def python(self) -> str:
        return f"{self.module}.{self.path}"


class Types:
    """Fully qualified proto type name -> where its Python class lives."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self.by_name: dict[str, TypeRef] = {}
        self.imports: dict[str, str] = {}  # alias -> import line
        self.used: set[str] = set()
        for file in files:
            module = Path(file.name).stem + "_pb2"
            package_path = str(Path(file.name).parent).replace("/", ".")
            self.imports[module] = f"from {package_path} import {module}"
            for message in file.message_type:
                self._add_message(file.package, module, "", message)
            for enum in file.enum_type:
                self.by_name[f".{file.package}.{enum.name}"] = TypeRef(module, enum.name, enum)

    def _add_message(self, package: str, module: str, outer: str, message: descriptor_pb2.DescriptorProto) -> None:
        path = f"{outer}.{message.name}" if outer else message.name
        self.by_name[f".{package}.{path}"] = TypeRef(module, path, message)
        for nested in message.nested_type:
            self._add_message(package, module, path, nested)
        for enum in message.enum_type:
            self.by_name[f".{package}.{path}.{enum.name}"] = TypeRef(module, f"{path}.{enum.name}", enum)

    def ref(self, type_name: str) -> TypeRef:
        found = self.by_name[type_name]
        self.used.add(found.module)
        return found

    def field_type(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        """The Python type a keyword argument for `field` accepts."""
        if field.type == FDP.TYPE_MESSAGE:
            ref = self.ref(field.type_name)
            message = ref.proto
            assert isinstance(message, descriptor_pb2.DescriptorProto)
            if message.options.map_entry:
                key = self.single(message.field[0])
                value = self.single(message.field[1])
                return f"Mapping[{key}, {value}]"
        single = self.single(field)
        return f"Iterable[{single}]" if field.label == FDP.LABEL_REPEATED else single

    def single(self, field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type == FDP.TYPE_MESSAGE:
            return f"{self.ref(field.type_name).python} | Mapping[str, Any]"
        if field.type == FDP.TYPE_ENUM:
            return f"{self.ref(field.type_name).python}.ValueType | str"
        return _SCALARS[field.type]


def comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {tuple(loc.path): textwrap.dedent(loc.leading_comments).strip() for loc in file.source_code_info.location}


def docstring(text: str, indent: str, extra: list[str]) -> str:
    lines = [line.rstrip() for line in text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').splitlines()]
    lines = [*lines, *([""] if lines and extra else []), *extra] or ["(undocumented in the contract)"]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    body = "\n".join(f"{indent}{line}" if line else "" for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}\n{indent}"""\n'


def arg_name(field_name: str) -> str:
    return field_name + "_" if keyword.iskeyword(field_name) else field_name


@dataclass
class Method:
    service: str
    proto: descriptor_pb2.MethodDescriptorProto
    comment: str
    request: TypeRef
    response: TypeRef
    items: TypeRef | None
    keyed: bool
    where: list[str]

    @property
    def full_name(self) -> str:
        return f"{PACKAGE}.{self.service}.{self.proto.name}"


def _items(types: Types, method: descriptor_pb2.MethodDescriptorProto) -> TypeRef | None:
    request = types.by_name[method.input_type].proto
    response = types.by_name[method.output_type].proto
    assert isinstance(request, descriptor_pb2.DescriptorProto) and isinstance(response, descriptor_pb2.DescriptorProto)
    if "cursor" not in {f.name for f in request.field} or "next_cursor" not in {f.name for f in response.field}:
        return None
    repeated = [
        f
        for f in response.field
        if f.label == FDP.LABEL_REPEATED
        and not (f.type == FDP.TYPE_MESSAGE and types.by_name[f.type_name].proto.options.map_entry)  # type: ignore[union-attr]
    ]
    if len(repeated) != 1 or repeated[0].type != FDP.TYPE_MESSAGE:
        raise SystemExit(f"{method.name}: a paged response needs exactly one repeated message field")
    return types.ref(repeated[0].type_name)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def option_fields(options: Message) -> dict[int, int | bytes]:
    """Top-level fields of serialized options (method, enum value, ...) by number (the last occurrence wins,
    as in protobuf)."""
    data, at, found = options.SerializeToString(), 0, {}
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at : at + size], at + size
        else:
            raise SystemExit(f"unexpected wire type {wire} in options")
        found[number] = value
    return found


def _keyed(method: descriptor_pb2.MethodDescriptorProto) -> bool:
    return bool(option_fields(method.options).get(IDEMPOTENCY_OPTION))


def _where(method: descriptor_pb2.MethodDescriptorProto) -> list[str]:
    """The docstring lines naming the REST route and the role: `GET /api/v1/runs/{run_id}`, role Viewer."""
    from google.api import http_pb2

    fields = option_fields(method.options)
    rule_bytes, role = fields.get(HTTP_OPTION), fields.get(ROLE_OPTION)
    lines = []
    if isinstance(rule_bytes, bytes):
        rule = http_pb2.HttpRule.FromString(rule_bytes)
        verb = rule.WhichOneof("pattern")
        if verb and verb != "custom":
            lines.append(f"REST: `{verb.upper()} {getattr(rule, verb)}`.")
    if isinstance(role, int) and role in ROLE_NAMES:
        lines.append(f"Needs role {ROLE_NAMES[role]} when auth is on.")
    return [" ".join(lines)] if lines else []


def _signature(types: Types, method: Method, extra: list[str]) -> tuple[str, str]:
    """The parameter list (after `self`) and the fields dict passed to `build`."""
    request = method.request.proto
    assert isinstance(request, descriptor_pb2.DescriptorProto)
    params = [f"        request: {method.request.python} | None = None,", "        /,", "        *,"]
    fields = []
    for field in request.field:
        if field.name in CALL_OPTIONS:
            raise SystemExit(f"{method.full_name}: request field {field.name!r} collides with a call option")
        name = arg_name(field.name)
        params.append(f"        {name}: {types.field_type(field)} | None = None,")
        fields.append(f'"{field.name}": {name}')
    params.extend(extra)
    return "\n".join(params), "{" + ", ".join(fields) + "}"


UNARY_OPTIONS = [
    "        rpc_timeout: float | None = None,",
    "        rpc_retry: bool | None = None,",
    "        rpc_metadata: Mapping[str, str] | None = None,",
]
STREAM_OPTIONS = [
    "        rpc_resume: bool = True,",
    "        rpc_timeout: float | None = None,",
    "        rpc_metadata: Mapping[str, str] | None = None,",
]


def _method(types: Types, method: Method, asynchronous: bool) -> str:
    name = snake(method.proto.name)
    constant = f'"{method.full_name}"'
    request_class = method.request.python
    response = method.response.python
    out = []
    if method.proto.server_streaming:
        params, fields = _signature(types, method, STREAM_OPTIONS)
        # Closeable types: `close()` / `aclose()` end the call before the stream does.
        stream_type = f"AsyncMessageStream[{response}]" if asynchronous else f"Generator[{response}, None, None]"
        out.append(f"    def {name}(\n        self,\n{params}\n    ) -> {stream_type}:\n")
        resumes = "Reconnects after the last message delivered unless `rpc_resume=False`."
        out.append(docstring(method.comment, "        ", [*method.where, resumes]))
        out.append(f"        message = build({request_class}, request, {fields})\n")
        out.append(
            f'        return cast("{stream_type}", self._client.stream({constant}, message, resume=rpc_resume, '
            "timeout=rpc_timeout, metadata=rpc_metadata))\n"
        )
        return "".join(out)
    extra = [*UNARY_OPTIONS, *(["        idempotency_key: str | None = None,"] if method.keyed else [])]
    params, fields = _signature(types, method, extra)
    key = ", idempotency_key=idempotency_key" if method.keyed else ""
    if asynchronous:
        out.append(f"    async def {name}(\n        self,\n{params}\n    ) -> {response}:\n")
    else:
        out.append(f"    def {name}(\n        self,\n{params}\n    ) -> {response}:\n")
    keyed_note = ["Retries reuse one `Idempotency-Key` (`idempotency_key`, else a fresh one per call)."]
    out.append(docstring(method.comment, "        ", [*method.where, *(keyed_note if method.keyed else [])]))
    out.append(f"        message = build({request_class}, request, {fields})\n")
    awaited = "await " if asynchronous else ""
    out.append(
        f"        return cast({response}, {awaited}self._client.call({constant}, message, timeout=rpc_timeout, "
        f"retry=rpc_retry, metadata=rpc_metadata{key}))\n"
    )
    if method.items is not None:
        item = method.items.python
        iterator = "AsyncIterator" if asynchronous else "Iterator"
        params, fields = _signature(types, method, UNARY_OPTIONS)
        out.append(f"\n    def iter_{name}(\n        self,\n{params}\n    ) -> {iterator}[{item}]:\n")
        out.append(docstring(f"Every item of `{name}`, page after page (each once).", "        ", []))
        out.append(f"        message = build({request_class}, request, {fields})\n")
        out.append(
            f"        return cast({iterator}[{item}], self._client.items({constant}, message, timeout=rpc_timeout, "
            "retry=rpc_retry, metadata=rpc_metadata))\n"
        )
    return "".join(out)


def generate(files: list[descriptor_pb2.FileDescriptorProto]) -> str:
    types = Types(files)
    services: list[tuple[str, str, list[Method]]] = []
    for file in files:
        if file.package != PACKAGE:
            continue
        notes = comments(file)
        for s_index, service in enumerate(file.service):
            methods = [
                Method(
                    service=service.name,
                    proto=method,
                    comment=notes.get((6, s_index, 2, m_index), ""),
                    request=types.ref(method.input_type),
                    response=types.ref(method.output_type),
                    items=_items(types, method),
                    keyed=_keyed(method),
                    where=_where(method),
                )
                for m_index, method in enumerate(service.method)
            ]
            services.append((service.name, notes.get((6, s_index), ""), methods))
    services.sort()
    body: list[str] = []
    for asynchronous in (False, True):
        prefix = "Async" if asynchronous else ""
        client = "AsyncClient" if asynchronous else "Client"
        for name, comment, methods in services:
            body.append(f"\n\nclass {prefix}{name}Client:\n")
            body.append(docstring(comment, "    ", [f"Reached as `{client}.{snake(name)}`."]))
            body.append(f'\n    __slots__ = ("_client",)\n\n    def __init__(self, client: {client}) -> None:\n')
            body.append("        self._client = client\n")
            for method in methods:
                body.append("\n" + _method(types, method, asynchronous))
        body.append(f"\n\nclass {prefix}ServiceClients:\n")
        body.append(f'    """One attribute per athena.v1 service, each a `{prefix}<Service>Client`."""\n\n')
        for name, _, _ in services:
            body.append(f"    {snake(name)}: {prefix}{name}Client\n")
        body.append("\n    def _init_services(self) -> None:\n")
        body.append(f'        client = cast("{client}", self)\n')
        for name, _, _ in services:
            body.append(f"        self.{snake(name)} = {prefix}{name}Client(client)\n")
    imports = sorted(types.imports[module] for module in types.used)
    head = [
        "# Generated by scripts/gen_sdk.py from proto/athena/v1. Do not edit: run scripts/gen.\n",
        '"""Typed clients of every athena.v1 service, blocking and asyncio, one method per RPC."""\n\n',
        "from __future__ import annotations\n\n",
        "from collections.abc import AsyncIterator, Generator, Iterable, Iterator, Mapping\n",
        "from typing import TYPE_CHECKING, Any, cast\n\n",
        *(line + "\n" for line in imports),
        "\nfrom athena_client.requests import build\n\n",
        "if TYPE_CHECKING:\n    from athena_client.client import AsyncClient, AsyncMessageStream, Client\n",
    ]
    return "".join(head) + "".join(body)


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    files = descriptor_pb2.FileDescriptorSet.FromString(Path(source).read_bytes()).file
    Path(target).write_text(generate(list(files)))


if __name__ == "__main__":
    main()
