"""The REST gateway: a FastAPI app whose routes are generated from the contract's HTTP rules, each one
transcoding JSON to a gRPC call on the upstream server and the answer back into the envelope.

Middleware, outermost first: TraceMiddleware (trace id on every answer, the last-resort 500),
BrowserGuardMiddleware (Host allow-list, Origin check), then CORS when origins are configured.

`GET /metrics` is the Prometheus text exposition of the `Metrics` the app is given (in `athena api serve`,
the control plane's; a separate gateway process, its own REST request figures). It is no contract route
and has no envelope. It follows the Host allow-list like every route and asks for no credentials, as the
original's did: Prometheus scrapers seldom carry tokens, and it shows counts by bounded labels only (no
session, run or trace ids, no inputs). The bind check (athena_server/serve.py) already keeps an
unauthenticated server on loopback; an operator exposing the port should not route `/metrics` outward."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from athena_client.contract import (
    API_TOKEN_HEADER,
    AUTHORIZATION_HEADER,
    DEFAULT_IDENTITY_HEADER,
    IDEMPOTENCY_HEADER,
    TRACE_HEADER,
)
from athena_client.rest_data import field_json
from athena_gateway.envelope import error_response, success_response
from athena_gateway.errors import GatewayError, config_error, from_rpc_error, not_found
from athena_gateway.guard import LOOPBACK_HOSTS, BrowserGuardMiddleware, HostAllowList, normalise_origin
from athena_gateway.metadata import HeaderForwarding
from athena_gateway.openapi import build_openapi
from athena_gateway.routes import RouteSpec, build_routes
from athena_gateway.sse import open_stream
from athena_gateway.tracing import TraceMiddleware, trace_id_of
from athena_gateway.transcode import build_request
from athena_gateway.ui import add_ui
from athena_gateway.upstream import GrpcUpstream, Upstream
from athena_server.metrics import CONTENT_TYPE_LATEST, OK, Metrics

log = logging.getLogger("athena.gateway")

Endpoint = Callable[[Request], Awaitable[Response]]


# Response headers a page of a CORS origin may read.
CORS_EXPOSED_HEADERS = (TRACE_HEADER, "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def _endpoint(
    spec: RouteSpec, upstream: Upstream, forwarding: HeaderForwarding, heartbeat_seconds: float, metrics: Metrics
) -> Endpoint:
    """The one handler shape every route shares; `spec` is all that differs between routes. Each answer is
    counted by route template, method and code (the envelope's error code, or OK)."""
    counted = _Counted(metrics, spec.path, spec.http_method)

    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        trace_id = trace_id_of(request)
        try:
            client = request.client
            # Headers first: they are already here, the body may still be on its way.
            metadata = forwarding.metadata(request.scope["headers"], trace_id, client.host if client else None)
            headers = dict(request.headers.items())  # ASGI header names are lowercase
            message = await build_request(
                spec, headers, request.query_params.multi_items(), request.path_params, request.stream()
            )
            if spec.sse is not None:
                stream = await open_stream(upstream, spec, message, metadata, trace_id, heartbeat_seconds)
                counted.record(OK, start)
                return stream
            try:
                response, status = await upstream.unary(spec, message, metadata)
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc, spec.method.name, trace_id) from None
        except GatewayError as exc:
            counted.record(exc.code, start)
            raise
        except Exception:
            counted.record("INTERNAL_ERROR", start)
            raise
        counted.record(OK, start)
        # A non-200 success only where the contract declares it (`(athena.v1.accepted)`).
        return success_response(field_json(response, spec.response_body), status if spec.accepted else 200)

    endpoint.__name__ = spec.method.name
    endpoint.__doc__ = f"{spec.http_method} {spec.path} -> {spec.rpc_path}"
    return endpoint


class _Counted:
    """One route's request counter and duration histogram, their children made on first use (a route
    never called adds no series)."""

    __slots__ = ("method", "metrics", "route", "seconds")

    def __init__(self, metrics: Metrics, route: str, method: str) -> None:
        self.metrics = metrics
        self.route = route
        self.method = method
        self.seconds: Any = None

    def record(self, code: str, start: float) -> None:
        if self.seconds is None:
            self.seconds = self.metrics.http_seconds(self.route, self.method)
        self.metrics.http_requests(self.route, self.method, code).inc()
        self.seconds.observe(time.perf_counter() - start)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc, trace_id_of(request))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            err = not_found(request.method, request.url.path)
        elif exc.status_code < 500:
            err = config_error(str(exc.detail))
        else:
            err = GatewayError("INTERNAL_ERROR", str(exc.detail))
        return error_response(err, trace_id_of(request))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        # Generated endpoints declare no typed parameters, so this is not expected; never answer 422.
        return error_response(config_error(f"Invalid request: {exc}"), trace_id_of(request))

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def _add_cors(app: FastAPI, origins: list[str], identity_header: str) -> None:
    """Starlette's CORS for the configured origins: the methods the routes use, the request headers the
    server reads, and the response headers worth reading. No credentials: Athena reads no cookies."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=sorted({spec.http_method for spec in build_routes()}),
        allow_headers=[
            "content-type",
            AUTHORIZATION_HEADER,
            API_TOKEN_HEADER,
            identity_header,
            IDEMPOTENCY_HEADER,
            "last-event-id",
            "traceparent",
            "tracestate",
        ],
        expose_headers=list(CORS_EXPOSED_HEADERS),
        max_age=600,
    )


class GatewayApp(FastAPI):
    """FastAPI with Starlette's middleware stack: the error layers (ServerErrorMiddleware, outermost, and
    ExceptionMiddleware, which runs the envelope handlers) around the gateway's own middleware. FastAPI's
    stack adds three layers a contract route never uses: a body limit that is a pass-through without
    `max_body_size` (body.py bounds bodies, with its own error), an exit stack for FastAPI dependencies
    (Starlette routes have none) and OpenTelemetry exception recording for FastAPI's built-in telemetry
    (off unless a tracer provider is configured). Each is a coroutine frame that every resumption of a
    request walks through, and a run's request is resumed several times."""

    build_middleware_stack = Starlette.build_middleware_stack


def create_app(
    upstream: str | Upstream,
    *,
    heartbeat_seconds: float = 15.0,
    channel: grpc.aio.Channel | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    cors_origins: Iterable[str] = (),
    identity_header: str = DEFAULT_IDENTITY_HEADER,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The gateway in front of the gRPC server at `upstream`: host:port, or an `Upstream` such as the
    in-process one `athena api serve` passes. `channel`, if given with a host:port, is used instead of
    opening one (and is left open on shutdown: its owner closes it). `allowed_hosts` are the
    Host names served (`*` any, `*.domain` patterns), `cors_origins` the browser origins allowed to call
    (empty: CORS off), `identity_header` the trusted identity header's name, forwarded to the server.
    `metrics` are recorded into and served at `/metrics` (None: the app's own).
    ValueError for a malformed allowed host."""
    metrics = metrics if metrics is not None else Metrics()
    hosts = HostAllowList(allowed_hosts)  # here, not in the lazily built middleware: fail at start-up
    client = GrpcUpstream(upstream, channel) if isinstance(upstream, str) else upstream
    forwarding = HeaderForwarding(identity_header)
    # As browsers write them (CORSMiddleware compares exactly): lowercase, no trailing slash or default port.
    origins = list(dict.fromkeys(normalise_origin(origin) for origin in cors_origins if origin.strip()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.close()

    app = GatewayApp(
        title="Athena control plane API",
        version="v1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.upstream = client
    for spec in build_routes():
        # Starlette routes, not FastAPI's: the endpoint reads the request itself (build_request), so FastAPI's
        # per-request dependency solving (which parses cookies among other things) would be pure cost, and
        # the OpenAPI document comes from the contract, not from the routes.
        route = Route(
            spec.path,
            _endpoint(spec.prepare(), client, forwarding, heartbeat_seconds, metrics),
            methods=[spec.http_method],
            name=spec.method.full_name,
            include_in_schema=False,
        )
        route.methods = {spec.http_method}  # Starlette adds HEAD beside GET; the contract has no HEAD routes
        app.router.routes.append(route)

    document: dict[str, Any] = build_openapi(identity_header=identity_header)
    app.openapi = lambda: document  # type: ignore[method-assign]

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(document)

    async def swagger_ui(_: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Athena API")

    app.add_route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False)
    app.add_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)

    async def metrics_text(_: Request) -> Response:
        return Response(await metrics.scrape(), headers={"content-type": CONTENT_TYPE_LATEST})

    app.add_route("/metrics", metrics_text, methods=["GET"], include_in_schema=False)
    add_ui(app)  # the operator dashboard at /ui (athena_gateway/ui.py)
    app.state.metrics = metrics
    _install_error_handlers(app)
    if origins:
        _add_cors(app, origins, identity_header)
    app.add_middleware(BrowserGuardMiddleware, hosts=hosts, cors_origins=origins)
    app.add_middleware(TraceMiddleware)
    return app
