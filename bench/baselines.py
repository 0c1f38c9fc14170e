"""Bare servers the benchmarks compare Athena with: the same frameworks doing nothing else.

python bench/baselines.py rest PORT    # FastAPI + uvicorn: GET /bare, POST /bare (echoes the JSON)
python bench/baselines.py grpc PORT    # grpc.aio: /bench.Echo/Echo returns its request bytes
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI, Request


def rest(port: int) -> None:
    app = FastAPI()

    @app.get("/bare")
    async def bare_get() -> dict[str, Any]:
        return {"ok": True, "data": {"executionBackend": "local"}}

    @app.post("/bare")
    async def bare_post(request: Request) -> dict[str, Any]:
        return {"ok": True, "data": await request.json()}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def grpc_echo(port: int) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "rest":
        rest(port)
    else:
        asyncio.run(grpc_echo(port))
