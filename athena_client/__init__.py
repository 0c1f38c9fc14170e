"""Athena's Python SDK: `connect("grpc://127.0.0.1:50051")` or `connect("http://127.0.0.1:8787")` (and
`connect_async`) give a client with one attribute per service and one typed method per RPC, generated from
the contract; every failure is an `AthenaError`.

    with athena_client.connect("grpc://127.0.0.1:50051") as client:
        run = client.run_service.create_run(session_id="s1", input="hello", provider="mock")
        print(run.output)

Importing this package loads neither the server nor the gateway.
"""

from athena_client.client import AsyncClient, Client, connect, connect_async
from athena_client.errors import AthenaError, AthenaTransportError
from athena_client.options import Credentials, RetryPolicy

__all__ = [
    "AsyncClient",
    "AthenaError",
    "AthenaTransportError",
    "Client",
    "Credentials",
    "RetryPolicy",
    "connect",
    "connect_async",
]
