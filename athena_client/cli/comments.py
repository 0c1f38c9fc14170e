"""The contract's comments, for `--help`: generated commands say what the proto says of their RPC and of
each request field (`athena_client.proto_comments`, which OpenAPI reads too)."""

from __future__ import annotations

from athena_client.proto_comments import proto_comments as comments

__all__ = ["comments", "first_paragraph"]


def first_paragraph(text: str) -> str:
    """The comment's first paragraph on one line: what an option's help shows."""
    return " ".join(text.split("\n\n")[0].split())
