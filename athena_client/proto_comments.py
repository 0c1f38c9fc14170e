"""The contract's comments by full name, read from `contract.binpb` (the descriptor set `scripts/gen`
writes with source info; the compiled-in descriptors carry no comments). OpenAPI descriptions and the
CLI's `--help` both come from here, so neither can drift from the proto."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from google.protobuf import descriptor_pb2

from athena.v1 import errors_pb2

CONTRACT_FILE = Path(errors_pb2.__file__).parent / "contract.binpb"


@functools.cache
def proto_comments() -> dict[str, str]:
    """Leading comments by full name: `athena.v1.RunService.CreateRun`, `athena.v1.Event.id` (fields),
    `athena.v1.RunStatus.RUN_STATUS_PENDING` (enum values)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(CONTRACT_FILE.read_bytes())
    out: dict[str, str] = {}
    for file in fds.file:
        at = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

        def put(name: str, path: tuple[int, ...], at: dict[tuple[int, ...], str] = at) -> None:
            text = textwrap.dedent(at.get(path, "")).strip()
            if text:
                out[name] = text

        def enum(e: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]) -> None:
            put(name, path)
            for i, value in enumerate(e.value):
                put(f"{name}.{value.name}", (*path, 2, i))

        def message(m: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> None:
            put(name, path)
            for i, field in enumerate(m.field):
                put(f"{name}.{field.name}", (*path, 2, i))
            for i, nested in enumerate(m.nested_type):
                message(nested, f"{name}.{nested.name}", (*path, 3, i))
            for i, nested_enum in enumerate(m.enum_type):
                enum(nested_enum, f"{name}.{nested_enum.name}", (*path, 4, i))

        package = file.package
        for i, m in enumerate(file.message_type):
            message(m, f"{package}.{m.name}", (4, i))
        for i, e in enumerate(file.enum_type):
            enum(e, f"{package}.{e.name}", (5, i))
        for i, service in enumerate(file.service):
            put(f"{package}.{service.name}", (6, i))
            for j, method in enumerate(service.method):
                put(f"{package}.{service.name}.{method.name}", (6, i, 2, j))
    return out
