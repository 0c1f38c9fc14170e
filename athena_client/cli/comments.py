"""The contract's comments, for `--help`: generated commands say what the proto says of their RPC and of
each request field, so the help cannot drift from the contract. Read from `contract.binpb`, the descriptor
set generated with source info (the compiled-in descriptors carry no comments)."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from google.protobuf import descriptor_pb2

from athena.v1 import errors_pb2

CONTRACT_FILE = Path(errors_pb2.__file__).parent / "contract.binpb"

# descriptor_pb2 field numbers of the source-info paths read here.
_MESSAGE_TYPE, _SERVICE, _FIELD, _METHOD, _NESTED = 4, 6, 2, 2, 3


@functools.cache
def comments() -> dict[str, str]:
    """Leading comments by full name: `athena.v1.RunService`, `athena.v1.RunService.CreateRun` (methods)
    and `athena.v1.CreateRunRequest.session_id` (fields); empty when the file is missing."""
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(CONTRACT_FILE.read_bytes())
    except OSError:
        return {}
    out: dict[str, str] = {}
    for file in fds.file:
        at = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

        def put(name: str, path: tuple[int, ...], at: dict[tuple[int, ...], str] = at) -> None:
            text = textwrap.dedent(at.get(path, "")).strip()
            if text:
                out[name] = text

        def message(m: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> None:
            for i, field in enumerate(m.field):
                put(f"{name}.{field.name}", (*path, _FIELD, i))
            for i, nested in enumerate(m.nested_type):
                message(nested, f"{name}.{nested.name}", (*path, _NESTED, i))

        for i, m in enumerate(file.message_type):
            message(m, f"{file.package}.{m.name}", (_MESSAGE_TYPE, i))
        for i, service in enumerate(file.service):
            put(f"{file.package}.{service.name}", (_SERVICE, i))
            for j, method in enumerate(service.method):
                put(f"{file.package}.{service.name}.{method.name}", (_SERVICE, i, _METHOD, j))
    return out


def first_paragraph(text: str) -> str:
    """The comment's first paragraph on one line: what an option's help shows."""
    return " ".join(text.split("\n\n")[0].split())
