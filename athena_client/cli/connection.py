"""Where a command's calls go (seed 001's CLI transport modes) and who it says it is.

- `api`: the REST API at `--api-base-url`, through the SDK's REST transport.
- `local`: the control plane in this process (`athena_server/local.py`) on the store `--db` names (default
  the `.athena/` store of the working directory, as `athena api serve` run here would use; env
  ATHENA_DATABASE_URL as the server), reached over the real gRPC server on a private unix socket.
- `auto` (the default): `GET {base}/api/v1/health`. When nothing accepts the connection (refused, or not
  within 2 s) it runs `local`; anything else, even a slow or failing answer, means the API is there and is
  used, so a server that is up but unwell is reported rather than bypassed for another store. `--db`, which
  names a store only the local transport can use, means `local` too. The choice is made before the
  command's first request and never revisited, so a request that failed against the API is reported, not
  sent again locally: nothing runs twice.

Each option is accepted before the command (`athena --transport local runs get ID`) and after it (as seed
001 has it); the one after wins, then the environment, then the default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import httpx

from athena.v1 import options_pb2
from athena_client.cli.exits import USAGE, CommandFailure
from athena_client.client import Client
from athena_client.grpc_transport import GrpcTransport
from athena_client.options import Credentials
from athena_client.rest_transport import RestTransport
from athena_client.rpcs import Rpc

if TYPE_CHECKING:
    from athena_server.local import LocalPlane

TRANSPORTS = ("api", "local", "auto")
TRANSPORT_ENV = "ATHENA_CLI_TRANSPORT"
BASE_URL_ENV = "ATHENA_API_BASE_URL"
TIMEOUT_ENV = "ATHENA_CLI_API_TIMEOUT_MS"
DEFAULT_TRANSPORT = "auto"
DEFAULT_BASE_URL = "http://127.0.0.1:8787"
DEFAULT_TIMEOUT_MS = 5000
# How long `auto` waits for a connection to the API before running locally: a loopback port with nothing
# behind it refuses at once; an address that swallows packets is given up on after this.
PROBE_SECONDS = 2.0
HEALTH_PATH = "/api/v1/health"

# The click parameter names of the connection options, as the root group and every client command take them.
OPTION_NAMES = ("transport", "api_base_url", "api_timeout_ms", "db", "identity", "api_token", "output")


def connection_options() -> list[click.Parameter]:
    """Fresh click options (a parameter object belongs to one command). Defaults are applied in
    `resolve`, so a value given before the command is not overridden by a default after it."""
    return [
        click.Option(
            ["--transport"],
            type=click.Choice(TRANSPORTS),
            help=f"api, local or auto (env {TRANSPORT_ENV}; default {DEFAULT_TRANSPORT}).",
        ),
        click.Option(
            ["--api-base-url"], metavar="URL", help=f"The REST API (env {BASE_URL_ENV}; default {DEFAULT_BASE_URL})."
        ),
        click.Option(
            ["--api-timeout-ms"],
            type=click.IntRange(min=1),
            metavar="MS",
            help=f"Timeout of each API call (env {TIMEOUT_ENV}; default {DEFAULT_TIMEOUT_MS}); calls that start "
            "work wait for it.",
        ),
        click.Option(
            ["--db"],
            metavar="PATH|URL",
            help="Store of the local transport (implies it under auto): SQLite file or database URL (env "
            "ATHENA_DATABASE_URL; default .athena/athena.db).",
        ),
        click.Option(["--identity"], help="Identity to call as (env ATHENA_IDENTITY)."),
        click.Option(["--api-token"], metavar="TOKEN", help="API token to send (env ATHENA_API_TOKEN)."),
        click.Option(
            ["--output", "-o"],
            type=click.Choice(("table", "json")),
            help="table (for people; default) or json (exactly the REST API's `data`).",
        ),
    ]


@dataclass(frozen=True)
class ConnectionSettings:
    transport: str
    api_base_url: str
    # Seconds each API call may take (calls that start work are not bounded by it).
    api_timeout: float
    db: str | None
    identity: str | None
    api_token: str | None
    output: str


def _env_transport(env: Mapping[str, str]) -> str:
    value = env.get(TRANSPORT_ENV, "").strip().lower() or DEFAULT_TRANSPORT
    if value not in TRANSPORTS:
        raise click.UsageError(f"{TRANSPORT_ENV} must be api, local or auto, not {value!r}")
    return value


def _env_timeout_ms(env: Mapping[str, str]) -> int:
    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_MS
    try:
        value = int(text)
    except ValueError:
        raise click.UsageError(f"{TIMEOUT_ENV} must be a whole number of milliseconds, not {text!r}") from None
    if value < 1:
        raise click.UsageError(f"{TIMEOUT_ENV} must be at least 1")
    return value


def resolve(outer: Mapping[str, Any], inner: Mapping[str, Any], env: Mapping[str, str]) -> ConnectionSettings:
    """The settings of one command: options after the command (`inner`) over those before it (`outer`),
    then the environment, then the defaults."""

    def given(name: str) -> Any:
        value = inner.get(name)
        return value if value is not None else outer.get(name)

    transport = given("transport") or _env_transport(env)
    base_url = (given("api_base_url") or env.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL).rstrip("/")
    timeout_ms = given("api_timeout_ms") or _env_timeout_ms(env)
    return ConnectionSettings(
        transport=transport,
        api_base_url=base_url,
        api_timeout=timeout_ms / 1000,
        db=given("db"),
        identity=given("identity"),
        api_token=given("api_token"),
        output=given("output") or "table",
    )


def starts_work(rpc: Rpc) -> bool:
    """RPCs that start runs (rate class `run-start`) answer when the work is done, which may take far longer
    than an ordinary call: the API timeout does not bound them (each run has its own timeout)."""
    return rpc.rate_class == options_pb2.RATE_CLASS_RUN_START


def api_listens(base_url: str, api_timeout: float) -> bool:
    """Whether the API is there: something accepts a connection at its address and answers HTTP at the
    health route. Only a connection that cannot be made (refused, unresolvable, not made within
    PROBE_SECONDS) means it is not; a slow or failing answer means it is there but unwell, and the command
    goes to it and reports what it says, rather than silently using another store."""
    try:
        httpx.get(base_url + HEALTH_PATH, timeout=httpx.Timeout(api_timeout, connect=PROBE_SECONDS))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise CommandFailure(USAGE, f"--api-base-url {base_url!r}: {exc}") from None
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    except httpx.HTTPError:
        return True
    return True


@dataclass
class Connection:
    """An open client and where it goes: `transport` is `api` or `local` (what `auto` chose)."""

    client: Client
    transport: str
    settings: ConnectionSettings
    local: LocalPlane | None = None

    def timeout(self, rpc: Rpc) -> float | None:
        """The deadline of one call of `rpc`: the API timeout over the API, none in-process (the plane
        is this process; Ctrl-C stops a call) and none for calls that start work."""
        if self.transport != "api" or rpc.streaming or starts_work(rpc):
            return None
        return self.settings.api_timeout

    def pending(self) -> int:
        """Runs this process started that are still going (local transport only)."""
        return self.local.pending() if self.local is not None else 0

    def settle(self, notify: Callable[[int], None] | None = None) -> None:
        """Local transport: wait for work this command started to finish before the plane stops."""
        if self.local is None:
            return
        count = self.local.pending()
        if count:
            if notify is not None:
                notify(count)
            self.local.settle()


def _settings_for_local(db: str | None) -> Any:
    from athena_server.config import Settings

    try:
        settings = Settings()
    except ValueError as exc:
        raise CommandFailure(USAGE, f"athena: invalid ATHENA_* setting: {exc}") from None
    return settings.model_copy(update={"database_url": db}) if db else settings


def _local_plane(db: str | None) -> LocalPlane:
    try:
        from athena_server.local import LocalPlane, LocalPlaneError
    except ImportError as exc:  # a client-only install
        raise CommandFailure(USAGE, f"the local transport needs the server installed ({exc})") from None
    plane = LocalPlane(_settings_for_local(db))
    try:
        plane.start()
    except LocalPlaneError as exc:
        raise CommandFailure(USAGE, f"local transport: {exc}") from None
    return plane


def _store(local: LocalPlane) -> str:
    """The local store for people: the SQLite file, or the database URL without its password."""
    from sqlalchemy.engine import make_url  # loaded with the server already

    url = make_url(local.settings.resolved_database_url())
    return str(url.database) if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def choose(settings: ConnectionSettings) -> str:
    """`api` or `local`: what `auto` means right now. `--db` names a store, which only the local transport
    can use: with `auto` it means local, with `api` it is a contradiction."""
    if settings.db is not None:
        if settings.transport == "api":
            raise CommandFailure(USAGE, "--db names the local transport's store; it cannot go with --transport api")
        return "local"
    if settings.transport != "auto":
        return settings.transport
    return "api" if api_listens(settings.api_base_url, settings.api_timeout) else "local"


@contextlib.contextmanager
def connect(
    settings: ConnectionSettings,
    notify_settle: Callable[[int], None] | None = None,
    notify_fallback: Callable[[str], None] | None = None,
) -> Iterator[Connection]:
    """A connection for one command. Over `local`, work the command started is waited for before the
    in-process plane stops (`notify_settle` is told how much), even when the command then failed; an
    interrupt (Ctrl-C) stops it instead, recorded as cancelled. `notify_fallback` hears when `auto` found
    no API and runs locally."""
    credentials = Credentials.resolve(settings.identity, settings.api_token)
    transport = choose(settings)
    if transport == "api":
        # No client-wide default: `Client.call(timeout=None)` would mean "the default", and calls that start
        # work must be able to wait without one. Each call passes `Connection.timeout(rpc)`.
        client = Client(RestTransport(settings.api_base_url), credentials=credentials, timeout=None)
        with client:
            yield Connection(client, "api", settings)
        return
    local = _local_plane(settings.db)
    if settings.transport == "auto" and notify_fallback is not None:
        notify_fallback(f"athena: no API at {settings.api_base_url}; running in this process on {_store(local)}")
    try:
        client = Client(GrpcTransport(local.target), credentials=credentials, timeout=None)
        with client:
            connection = Connection(client, "local", settings, local)
            try:
                yield connection
            except Exception:
                connection.settle(notify_settle)
                raise
            connection.settle(notify_settle)
    finally:
        local.close()
