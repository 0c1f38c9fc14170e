"""The `athena` command. The serve commands load the server lazily, so the client side of the stack never
imports it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from athena_server.config import Settings

app = typer.Typer(help="Athena: a control plane for AI-agent runs.", no_args_is_help=True)
api_app = typer.Typer(help="The API server (gRPC and REST in one process).", no_args_is_help=True)
grpc_app = typer.Typer(help="The gRPC server alone.", no_args_is_help=True)
gateway_app = typer.Typer(help="The REST gateway alone, in front of a gRPC server.", no_args_is_help=True)
auth_app = typer.Typer(help="Credentials for a server with auth on.", no_args_is_help=True)
app.add_typer(api_app, name="api")
app.add_typer(grpc_app, name="grpc")
app.add_typer(gateway_app, name="gateway")
app.add_typer(auth_app, name="auth")

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLite file path or database URL (default: .athena/athena.db; env ATHENA_DATABASE_URL)."
    ),
]


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


def _run(coro: Any, settings: Settings) -> None:
    from athena_server import serve

    serve.configure_logging(settings.log_level)
    asyncio.run(coro)


@api_app.command("serve")
def api_serve(
    host: Annotated[str | None, typer.Option(help="REST bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="REST port (default 8787).")] = None,
    grpc_host: Annotated[str | None, typer.Option(help="gRPC bind address (default 127.0.0.1).")] = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port (default 50051).")] = None,
    db: DbOption = None,
) -> None:
    """Serve gRPC and the REST gateway together."""
    settings = _server_settings(host=host, port=port, grpc_host=grpc_host, grpc_port=grpc_port, database_url=db)
    _run(_serve().serve_api(settings), settings)


@grpc_app.command("serve")
def grpc_serve(
    host: Annotated[str | None, typer.Option(help="gRPC bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50051).")] = None,
    db: DbOption = None,
) -> None:
    """Serve gRPC only."""
    settings = _server_settings(grpc_host=host, grpc_port=port, database_url=db)
    _run(_serve().serve_grpc(settings), settings)


@gateway_app.command("serve")
def gateway_serve(
    upstream: Annotated[str, typer.Option(help="The gRPC server, HOST:PORT.")],
    host: Annotated[str | None, typer.Option(help="REST bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="REST port (default 8787).")] = None,
) -> None:
    """Serve the REST gateway in front of a running gRPC server."""
    settings = _settings(host=host, port=port)
    _run(_serve().serve_gateway(settings, upstream), settings)


@auth_app.command("new-token")
def auth_new_token(
    name: Annotated[str, typer.Option(help="The token's name (shown in audit events as token:<name>).")],
    identity: Annotated[str, typer.Option(help="The identity it authenticates; '*' for a proxy token.")],
    role: Annotated[str, typer.Option(help="Viewer, Operator or Admin; '*' takes the role from the role map.")],
) -> None:
    """Make a random API token. Prints the token (give it to the client; it is not stored anywhere) and the
    `ATHENA_AUTH_API_TOKENS` entry that holds only its SHA-256 digest."""
    import secrets

    from athena_server.access.config import AuthConfigError, parse_api_tokens, token_digest

    token = "athena_" + secrets.token_urlsafe(32)
    entry = f"{name}:{identity}:{role}:{token_digest(token).hex()}"
    try:
        parse_api_tokens(entry, None)
    except AuthConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"token: {token}")
    typer.echo(f"ATHENA_AUTH_API_TOKENS entry: {entry}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
