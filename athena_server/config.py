"""Server settings: `ATHENA_*` environment variables, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from athena_server.engine.pricing import ModelPrice


class Settings(BaseSettings):
    """Everything a server process needs to know at start-up.

    The defaults give the embedded set-up: SQLite under `.athena/` of the working directory, gRPC on
    127.0.0.1:50051 and REST on 127.0.0.1:8787.
    """

    model_config = SettingsConfigDict(env_prefix="ATHENA_", extra="ignore")

    # A SQLAlchemy URL (`sqlite:///path`, `postgresql://user@host/db`) or a path to a SQLite file.
    database_url: str | None = None
    data_dir: Path = Path(".athena")
    host: str = "127.0.0.1"
    port: int = 8787
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    # Server processes on the same ports and database (`--workers`; athena_server/workers.py).
    workers: int = 1
    default_provider: str = "mock"
    default_model: str = "default"
    # Gap between SSE heartbeat comments; 15 s stays below common proxy idle limits.
    sse_heartbeat_seconds: float = 15.0
    # How often streams look for events written by *other* processes sharing the database; commits in
    # this process wake streams at once.
    event_poll_seconds: float = 1.0
    # Grace period for in-flight RPCs on SIGINT/SIGTERM.
    shutdown_grace_seconds: float = 5.0
    # A non-loopback bind needs auth with a verifiable credential (API tokens or JWT); this overrides that
    # for deployments where something in front of Athena authenticates callers.
    allow_external_unauthenticated: bool = False
    # gRPC server reflection (what grpcurl uses to list services); off hides the method list.
    grpc_reflection: bool = True

    # ---- auth (seed 001 names; athena_server/access/) ----
    auth_enabled: bool = False
    # The trusted identity header (lowercase letters, digits and dashes).
    auth_identity_header: str = "x-athena-identity"
    # The role of identities no map entry (and no `*` entry) covers; unset means they get none (fail closed).
    auth_default_role: str | None = None
    # `alice:Admin,bob:Operator,*:Viewer`; role names are case-insensitive.
    auth_identity_role_map: str = ""
    # Whether the identity header alone identifies a caller. Unset: trusted only when no API token and no
    # JWT key is configured (then a proxy that sets it is the only way in). With tokens configured, only a
    # proxy token (identity `*`) lets the header name the caller.
    auth_trust_identity_header: bool | None = None
    # Named API tokens, stored as SHA-256 hashes: comma-separated `name:identity:role:sha256hex` entries
    # (`athena auth new-token` prints one). Identity `*` makes a proxy token (the identity header names the
    # caller); role `*` takes the role from the role map.
    auth_api_tokens: str = ""
    # The original's single shared token (plaintext, hashed at start): a proxy token.
    auth_api_token: str | None = None
    # JWT bearer tokens (PyJWT): a PEM public key file or a JWKS file, the algorithms accepted, and the
    # claims that carry the identity and the role (a missing role claim falls back to the role map).
    auth_jwt_key_file: Path | None = None
    auth_jwt_jwks_file: Path | None = None
    auth_jwt_algorithms: str = "RS256,ES256,EdDSA"
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_identity_claim: str = "sub"
    auth_jwt_role_claim: str = "role"
    auth_jwt_leeway_seconds: float = 30.0

    # ---- rate limits (off when empty; `limits` notation: "600/minute", "10/second;100/minute") ----
    # Per identity (per client address when auth is off), per class of RPC (`(athena.v1.rate_class)`).
    rate_limit_read: str = ""
    rate_limit_run_start: str = ""
    rate_limit_write: str = ""
    # Peers whose `x-athena-client-address` metadata the server believes (the gateway's address).
    trusted_proxies: str = "127.0.0.1,::1"

    # ---- HTTP gateway ----
    # Host names the REST port answers (`Host` header, port ignored); empty means the loopback names plus
    # the bind address. `*` accepts any host (only behind a proxy that checks it).
    allowed_hosts: str = ""
    # Origins allowed to call the REST API from a browser (CORS); empty means none.
    cors_origins: str = ""
    # Runs. The run timeout applies when the policy sets no `defaultRunTimeoutMs` (the original's
    # ATHENA_RUNTIME_RUN_TIMEOUT_MS, 30 s); the retry budget when it sets no `retryBudgetPerRun` (the
    # original gave each provider two attempts: one retry).
    run_timeout_ms: int = 30_000
    retry_budget_per_run: int = 1
    # How long a run waits for its session's previous run before SESSION_LOCK_TIMEOUT (the original: 10 s).
    session_lock_timeout_ms: int = 10_000
    # How often a process looks in the store for cancel requests made by other processes; requests made
    # in this process are seen at once.
    cancel_poll_seconds: float = 0.2
    # Liveness: each server process heartbeats its row; runs owned by a process whose heartbeat is older
    # than `instance_stale_seconds` (or whose pid is gone, on this host) are failed by the reaper.
    heartbeat_seconds: float = 2.0
    instance_stale_seconds: float = 15.0
    idempotency_ttl_hours: float = 24.0
    # Providers. Prices are USD per million tokens by "<provider>/<model>", e.g.
    # ATHENA_MODEL_PRICES='{"openai/gpt-4o-mini":{"inputPerMillion":0.15,"outputPerMillion":0.6}}'.
    model_prices: dict[str, ModelPrice] = {}
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    openai_timeout_seconds: float = 60.0
    # Between SIGTERM and SIGKILL of a `command` agent's process group on cancel or timeout.
    command_kill_grace_seconds: float = 2.0
    # The programs `command` profiles may run: comma-separated absolute paths or names looked up on PATH at
    # start-up. Empty disables the provider (capabilities do not list it).
    command_allow: str = ""
    # Where each agent gets its own working directory (default: `<data_dir>/agents`), removed after its run.
    command_workdir: Path | None = None
    # Resource limits of an agent process (setrlimit): CPU seconds, address space in MiB, open files.
    command_cpu_seconds: int = 600
    command_memory_mb: int = 4096
    command_open_files: int = 1024
    # Comma-separated names of server environment variables an agent also inherits (besides PATH, LANG,
    # LC_ALL, TZ and its own HOME, TMPDIR and ATHENA_RUN_ID/SESSION_ID/MODEL/ATTEMPT); `ATHENA_*` refused.
    command_env_passthrough: str = ""
    # The most an agent may write to stdout (its answer): more fails the run and stops the agent. Of stderr
    # only the last `command_stderr_tail_bytes` are kept (evidence and failure messages).
    command_output_max_bytes: int = 1_000_000
    command_stderr_tail_bytes: int = 65_536
    # Schedules. A schedule run's timeout when the policy sets no `defaultScheduleTimeoutMs` (the original's
    # ATHENA_SCHEDULE_RUN_TIMEOUT_MS). The background ticker looks for due slots every
    # `schedule_tick_seconds` (0 switches it off: only `POST /schedules/tick` fires them) and runs up to
    # `schedule_parallelism` due schedules at once.
    schedule_run_timeout_ms: int = 45_000
    schedule_tick_seconds: float = 1.0
    schedule_parallelism: int = 4
    # Workflow steps running at once within one workflow run when the policy sets no `maxConcurrentRuns`.
    workflow_parallelism: int = 4
    # Memory (athena_server/memory/): `MEMORY.md` and `memory/**/*.md` of the workspace (the working
    # directory unless `workspace` names another), indexed in `<data_dir>/memory-index.db`. Search answers
    # `memory_max_results` hits by default with snippets of at most `memory_max_snippet_chars`; files over
    # `memory_max_file_bytes` are not indexed. The index checks the files before each search, or at most
    # every `memory_refresh_seconds` when > 0. `memory_in_context` adds the best hits for a run's input to
    # its context as `[Memory: <citation>]` blocks, at most `memory_context_max_chars` in all.
    memory_enabled: bool = True
    workspace: Path | None = None
    memory_max_results: int = 6
    memory_max_snippet_chars: int = 700
    memory_max_file_bytes: int = 10 * 1024 * 1024
    memory_refresh_seconds: float = 0.0
    memory_in_context: bool = False
    memory_context_max_chars: int = 4000
    # The agent-to-agent bus. A message gets `a2a_max_attempts` delivery attempts (a message's `maxAttempts`
    # overrides it) before it is dead-lettered, waiting `a2a_retry_delay_ms` x the attempts made before the
    # next. The dispatcher looks for due messages every `a2a_poll_seconds` (0: this process delivers none)
    # and delivers up to `a2a_parallelism` at once.
    a2a_max_attempts: int = 3
    a2a_retry_delay_ms: int = 1_000
    a2a_poll_seconds: float = 0.5
    a2a_parallelism: int = 4
    # Personas (athena_server/personas/): a review's `repoPath` must lie under the workspace or one of these
    # comma-separated directories (relative ones from the workspace), symlinks resolved.
    persona_repo_roots: str = ""
    log_level: str = "INFO"

    # ---- operating (issue 14) ----
    # `text` (one line per record) or `json` (one object per line, with the trace id): `--log-format`.
    log_format: str = "text"
    # `/metrics` on a port of its own (0.0.0.0 is never implied: it binds `host`), for a process without a REST
    # port (`athena grpc serve`); a REST process also answers `/metrics` on its REST port.
    metrics_port: int | None = None
    # Retention (athena_server/engine/retention.py): runs, transcripts, schedule logs, idempotency keys and
    # rejections older than this are deleted by a background sweep (the original's variable and default).
    run_history_retention_days: float = 30.0
    # Events may be kept for a different age; unset: the run history's.
    event_retention_days: float | None = None
    # How often the sweep runs (0: never) and how many rows one of its transactions deletes at most.
    retention_sweep_seconds: float = 3600.0
    retention_batch_rows: int = 1000

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL for the configured store."""
        return normalise_database_url(self.database_url, self.data_dir)


def normalise_database_url(url: str | None, data_dir: Path) -> str:
    """Accept what operators type (a file path, `sqlite:///`, `postgresql://`) and pick the driver: the
    standard sqlite3 module (driven from the store's own threads), asyncpg for PostgreSQL."""
    if not url:
        return f"sqlite+pysqlite:///{(data_dir / 'athena.db').resolve()}"
    if "://" not in url:
        return f"sqlite+pysqlite:///{Path(url).resolve()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"):
        return f"sqlite+pysqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        return f"postgresql+asyncpg://{rest}"
    return url
