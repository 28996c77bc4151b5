"""The dashboard's web app: four pages (static files) and the read-only JSON API they call.

Every route is a GET; nothing here writes to the store or starts anything. Pages are the same
static HTML whatever study or run they show: the page's script reads its URL and fetches JSON,
and puts every string from the store into the page as text, never as HTML. Unknown studies and
runs are 404s (a page for a browser, JSON under ``/api``); a store that cannot be read is a 503
whose message says why.
"""

from __future__ import annotations

import html
import sqlite3
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sweeplab.errors import StoreError
from sweeplab.store import Store

from . import data, tables

STATIC = Path(str(files("sweeplab.serve") / "static"))

#: Pages may load only their own scripts, styles and JSON: no inline script, nothing off the host.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store"}


class NotFound(Exception):
    """An unknown study or run: a 404 with this message."""


def make_app(store: Store) -> Starlette:
    """The app over an open read-only ``store`` (the caller closes it)."""
    if not store.readonly:
        raise ValueError("the dashboard reads the store read-only: open it with Store(path, readonly=True)")

    def api(build: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return JSONResponse(build(request), headers=_HEADERS)
        return endpoint

    def page(name: str, check: Callable[[Request], None] | None = None) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            if check is not None:
                check(request)
            return FileResponse(STATIC / name, media_type="text/html", headers=_HEADERS)
        return endpoint

    def study(request: Request) -> str:
        return known_study(request.path_params["name"])

    def known_study(name: str) -> str:
        if name not in {s.name for s in store.list_studies()}:
            raise NotFound(f"no study named {name!r} in {store.path}")
        return name

    def study_api(request: Request) -> Any:
        name, part = _study_part(request)
        if part == "updates":
            return data.study_updates(store, known_study(name), request.query_params.get("after", ""))
        if part == "table":
            return tables.table_payload(store, known_study(name))
        return data.study_payload(store, known_study(name))

    def run(request: Request) -> str:
        try:
            return store.find_run(request.path_params["run"]).id
        except StoreError as err:
            raise NotFound(str(err)) from None

    routes = [
        Route("/", page("index.html")),
        # A study name is data, not a path, and may hold a "/": it is looked up among the store's
        # studies and never touches the filesystem ("/api/study/..%2F.." is just an unknown name).
        Route("/study/{name:path}", page("study.html", study)),
        Route("/run/{run}", page("run.html", run)),
        Route("/compare", page("compare.html")),
        Route("/api/studies", api(lambda r: {"store": str(store.path), "studies": data.studies_payload(store)})),
        Route("/api/study/{rest:path}", api(study_api)),  # NAME, NAME/table, NAME/updates: see _study_part
        Route("/api/run/{run}", api(lambda r: tables.run_payload(store, run(r)))),
        Route("/api/compare", api(lambda r: tables.compare_payload(store, _run_ids(store, r)))),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {NotFound: _not_found, HTTPException: _http_error, StoreError: _unreadable,
                sqlite3.Error: _unreadable}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


def _study_part(request: Request) -> tuple[str, str]:
    """``(name, "" | "table" | "updates")`` of ``/api/study/NAME[/PART]``, read from the path as
    sent: the pages encode a "/" in a name as %2F, so a study named "a/table" is that study, not
    the table of "a" (the decoded path cannot tell them apart). A path typed with a plain "/" in
    the name still finds the study."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw.split(b"?", 1)[0].decode("latin-1").removeprefix("/api/study/")
    head, sep, part = tail.rpartition("/")
    if sep and part in ("table", "updates"):
        return unquote(head), part
    return unquote(tail), ""


def _run_ids(store: Store, request: Request) -> list[str]:
    ids = [i for i in request.query_params.get("runs", "").split(",") if i.strip()]
    if not 2 <= len(ids) <= 12:
        raise HTTPException(400, f"runs: give 2 to 12 run ids separated by commas, got {len(ids)}")
    out = []
    for i in ids:
        try:
            out.append(store.find_run(i).id)
        except StoreError as err:
            raise NotFound(str(err)) from None
    return out


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, title: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": f"{title}: {message}"}, status_code=status, headers=_HEADERS)
    body = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)} - sweeplab</title>"
            "<link rel='stylesheet' href='/static/app.css'><header class='top'><a class='brand' href='/'>"
            f"sweeplab</a></header><main class='error'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(message)}</p><p><a href='/'>All studies</a></p></main>")
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, "Not found", str(exc))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error(request, 404, "Not found", f"nothing at {request.url.path}")
    return _error(request, exc.status_code, "Request refused", str(exc.detail))


def _unreadable(request: Request, exc: Exception) -> Response:
    return _error(request, 503, "The run store cannot be read",
                  f"{exc} - check the store file (sweeplab status --out DIR) and restart sweeplab serve")
