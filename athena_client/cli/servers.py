"""The process commands: `athena api serve`, `grpc serve`, `gateway serve` and `auth new-token`. They load
the server lazily, so the client side of the stack never imports it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

import click

if TYPE_CHECKING:
    from athena_server.config import Settings


def _settings(**overrides: Any) -> Settings:
    """Environment first, then the flags that were given."""
    from athena_server.config import Settings

    settings = Settings()
    values = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=values)


def _server_settings(**overrides: Any) -> Settings:
    """Settings of a process that serves gRPC, checked whole: a bad auth, rate-limit or proxy setting stops
    start-up with one line that names it, not a traceback."""
    from athena_server.access.gate import check_settings

    settings = _settings(**overrides)
    try:
        check_settings(settings)
    except ValueError as exc:
        raise SystemExit(f"athena: {exc}") from None
    return settings


def _serve() -> Any:
    from athena_server import serve

    return serve


def _configure_logging(settings: Settings) -> None:
    """The process's log output; a bad ATHENA_LOG_LEVEL / ATHENA_LOG_FORMAT from the environment (flags are
    checked) stops start-up with one line."""
    try:
        _serve().configure_logging(settings.log_level, settings.log_format)
    except ValueError as exc:
        raise SystemExit(f"athena: {exc}") from None


def _run(make: Callable[[], Coroutine[Any, Any, None]], settings: Settings) -> None:
    """Configure logging, then run the coroutine `make` builds (built only then: a start-up refused before
    it leaves no "coroutine was never awaited" warning)."""
    _configure_logging(settings)
    with asyncio.Runner(loop_factory=_serve().event_loop_factory()) as runner:
        runner.run(make())


def _start(kind: Literal["api", "grpc"], settings: Settings) -> None:
    """Serve `kind` in this process, or with `--workers N` (N > 1) supervise N servers that do
    (athena_server/workers.py)."""
    serve = _serve()
    if settings.workers <= 1:
        _run(lambda: serve.serve_api(settings) if kind == "api" else serve.serve_grpc(settings), settings)
        return
    from athena_server import workers

    _configure_logging(settings)
    workers.serve_workers(kind, settings)


db_option = click.option(
    "--db", help="SQLite file path or database URL (default: .athena/athena.db; env ATHENA_DATABASE_URL)."
)
# The names are athena_server.logs.LOG_FORMATS (not imported: the CLI does not load the server to build).
log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    help="Log lines as text or one JSON object per line, both with the request's trace id (default text; "
    "env ATHENA_LOG_FORMAT).",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Server processes on the same ports and database, to use more than one core (default 1; env ATHENA_WORKERS).",
)
metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics on this port too (default: none; env ATHENA_METRICS_PORT).",
)


@click.group("api", no_args_is_help=True)
def api_group() -> None:
    """The API server (gRPC and REST in one process)."""


@click.group("grpc", no_args_is_help=True)
def grpc_group() -> None:
    """The gRPC server alone."""


@click.group("gateway", no_args_is_help=True)
def gateway_group() -> None:
    """The REST gateway alone, in front of a gRPC server."""


@click.group("auth", no_args_is_help=True)
def auth_group() -> None:
    """Credentials for a server with auth on."""


@api_group.command("serve")
@click.option("--host", help="REST bind address (default 127.0.0.1).")
@click.option("--port", type=int, help="REST port (default 8787).")
@click.option("--grpc-host", help="gRPC bind address (default 127.0.0.1).")
@click.option("--grpc-port", type=int, help="gRPC port (default 50051).")
@db_option
@log_format_option
@metrics_port_option
@workers_option
def api_serve(
    host: str | None,
    port: int | None,
    grpc_host: str | None,
    grpc_port: int | None,
    db: str | None,
    log_format: str | None,
    metrics_port: int | None,
    workers: int | None,
) -> None:
    """Serve gRPC and the REST gateway together."""
    settings = _server_settings(
        host=host,
        port=port,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        database_url=db,
        log_format=log_format,
        metrics_port=metrics_port,
        workers=workers,
    )
    _start("api", settings)


@grpc_group.command("serve")
@click.option("--host", help="gRPC bind address (default 127.0.0.1).")
@click.option("--port", type=int, help="gRPC port (default 50051).")
@db_option
@log_format_option
@metrics_port_option
@workers_option
def grpc_serve(
    host: str | None,
    port: int | None,
    db: str | None,
    log_format: str | None,
    metrics_port: int | None,
    workers: int | None,
) -> None:
    """Serve gRPC only."""
    settings = _server_settings(
        grpc_host=host,
        grpc_port=port,
        database_url=db,
        log_format=log_format,
        metrics_port=metrics_port,
        workers=workers,
    )
    _start("grpc", settings)


@gateway_group.command("serve")
@click.option("--upstream", required=True, help="The gRPC server, HOST:PORT.")
@click.option("--host", help="REST bind address (default 127.0.0.1).")
@click.option("--port", type=int, help="REST port (default 8787).")
@log_format_option
def gateway_serve(upstream: str, host: str | None, port: int | None, log_format: str | None) -> None:
    """Serve the REST gateway in front of a running gRPC server."""
    settings = _settings(host=host, port=port, log_format=log_format)
    _run(lambda: _serve().serve_gateway(settings, upstream), settings)


@auth_group.command("new-token")
@click.option("--name", required=True, help="The token's name (shown in audit events as token:<name>).")
@click.option("--identity", required=True, help="The identity it authenticates; '*' for a proxy token.")
@click.option("--role", required=True, help="Viewer, Operator or Admin; '*' takes the role from the role map.")
def auth_new_token(name: str, identity: str, role: str) -> None:
    """Make a random API token. Prints the token (give it to the client; it is not stored anywhere) and the
    `ATHENA_AUTH_API_TOKENS` entry that holds only its SHA-256 digest."""
    import secrets

    from athena_server.access.config import AuthConfigError, parse_api_tokens, token_digest

    token = "athena_" + secrets.token_urlsafe(32)
    entry = f"{name}:{identity}:{role}:{token_digest(token).hex()}"
    try:
        parse_api_tokens(entry, None)
    except AuthConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"token: {token}")
    click.echo(f"ATHENA_AUTH_API_TOKENS entry: {entry}")


# The process command groups, as the root command adds them.
SERVER_GROUPS: tuple[click.Group, ...] = (api_group, grpc_group, gateway_group, auth_group)
