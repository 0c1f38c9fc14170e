"""The operator dashboard at `/ui`: a few static files (HTML, ES modules, CSS) served by the gateway itself,
so it needs no build step, no CDN and no second server, and works against any replica (it calls only the
public `/api/v1` routes, with the credentials the operator types in).

Only the files named in `UI_FILES` are served, from bytes read once when the app is built: a path is looked
up in that table, never joined onto a directory, so no request can reach another file. Every answer
carries a strict Content-Security-Policy (`default-src 'self'`, no inline script or style), so data the
page shows can never run as code even if escaping failed somewhere. The Host allow-list applies as to every
route (BrowserGuardMiddleware wraps the whole app).
"""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from athena_gateway.envelope import error_response
from athena_gateway.errors import not_found
from athena_gateway.tracing import trace_id_of

UI_PATH = "/ui"
#: The files of the page and their content types; nothing else under /ui is served.
UI_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "vocab.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "stream.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "svg.js": "text/javascript; charset=utf-8",
    "panels.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Revalidate every load: a server upgrade must never leave an old page talking to a new API.
    "cache-control": "no-cache",
}


def _load() -> dict[str, bytes]:
    """The files' bytes, from the package (so an installed wheel serves the same page)."""
    folder = resources.files("athena_gateway").joinpath("ui")
    return {name: folder.joinpath(name).read_bytes() for name in UI_FILES}


def add_ui(app: Starlette) -> None:
    """Adds `GET /ui` (the page), `/ui/` (redirect to it) and `GET /ui/{file}` (its assets) to `app`."""
    files = _load()

    def serve(name: str) -> Response:
        return Response(files[name], headers={**_HEADERS, "content-type": UI_FILES[name]})

    async def page(_: Request) -> Response:
        return serve("index.html")

    async def slash(_: Request) -> Response:
        return RedirectResponse(UI_PATH, status_code=308)

    async def asset(request: Request) -> Response:
        name = request.path_params["file"]
        if name not in files:
            return error_response(not_found(request.method, request.url.path), trace_id_of(request))
        return serve(name)

    app.add_route(UI_PATH, page, methods=["GET"], include_in_schema=False)
    app.add_route(f"{UI_PATH}/", slash, methods=["GET"], include_in_schema=False)
    app.add_route(UI_PATH + "/{file}", asset, methods=["GET"], include_in_schema=False)
