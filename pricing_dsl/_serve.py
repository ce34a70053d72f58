"""`pricing serve`: the rating engine as a local HTTP JSON service, with hot reload.

Billing systems in any language call it the way they would call a policy
engine on localhost.  The service holds one checked :class:`Ruleset` at a
time; a watcher thread reloads the files under PATH when they change (or on
SIGHUP) and swaps the new ruleset in only if it has no errors.  Each request
takes one snapshot of the current ruleset, so a reload never changes the
ruleset under a request, and every response names the version (a content
hash of the files) it was answered with.

Starlette and uvicorn come with the ``serve`` extra; this module is imported
only by `pricing serve`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import _output
from ._errors import Diagnostic, PricingError
from ._ruleset import Ruleset, _build, _expand

__all__ = ["Loaded", "Service", "create_app", "openapi_document", "ruleset_version", "serve"]

log = logging.getLogger("pricing_dsl.serve")

VERSION_HEADER = "Pricing-Ruleset-Version"
DEFAULT_MAX_BODY = 1_000_000
DEFAULT_BATCH_SECONDS = 30.0
DEFAULT_POLL_SECONDS = 1.0
# Latency histogram bounds, in seconds (Prometheus `le` buckets).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def ruleset_version(raw: Sequence[tuple[str, bytes]]) -> str:
    """The content hash that names a ruleset: SHA-256 of each file's name and bytes, in order.

    Two servers started on the same files report the same version; any
    edit, added or removed file gives another.
    """
    h = hashlib.sha256()
    for name, data in raw:
        h.update(f"{len(name)}:{name}:{len(data)}:".encode())
        h.update(data)
    return "sha256:" + h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Loaded:
    """One checked ruleset with its version and the text it was built from (kept in memory)."""

    ruleset: Ruleset
    version: str
    sources: tuple[tuple[str, str], ...]
    loaded_at: float


@dataclass
class _ReloadState:
    ok: bool = True
    at: float = 0.0
    version: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Metrics:
    """Counters and a latency histogram, written out in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[str, int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.reloads = {"ok": 0, "error": 0}

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[route, status] = self.requests.get((route, status), 0) + 1
            if status >= 400:
                self.errors[route] = self.errors.get(route, 0) + 1
            counts = self.buckets.setdefault(route, [0] * (len(_BUCKETS) + 1))
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.sums[route] = self.sums.get(route, 0.0) + seconds

    def reloaded(self, ok: bool) -> None:
        with self._lock:
            self.reloads["ok" if ok else "error"] += 1

    def text(self, loaded: Loaded, reload: _ReloadState) -> str:
        out = [
            "# HELP pricing_requests_total HTTP requests by route and status.",
            "# TYPE pricing_requests_total counter",
        ]
        with self._lock:
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'pricing_requests_total{{route="{route}",status="{status}"}} {n}')
            out += [
                "# HELP pricing_request_errors_total Requests answered with status 400 or more.",
                "# TYPE pricing_request_errors_total counter",
            ]
            for route, n in sorted(self.errors.items()):
                out.append(f'pricing_request_errors_total{{route="{route}"}} {n}')
            out += [
                "# HELP pricing_request_seconds Time to answer a request (to its first byte).",
                "# TYPE pricing_request_seconds histogram",
            ]
            for route, counts in sorted(self.buckets.items()):
                for bound, n in zip(_BUCKETS, counts, strict=False):
                    out.append(
                        f'pricing_request_seconds_bucket{{route="{route}",le="{bound}"}} {n}'
                    )
                out.append(
                    f'pricing_request_seconds_bucket{{route="{route}",le="+Inf"}} {counts[-1]}'
                )
                out.append(f'pricing_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                out.append(f'pricing_request_seconds_count{{route="{route}"}} {counts[-1]}')
            out += [
                "# HELP pricing_reloads_total Reloads of the ruleset, by result.",
                "# TYPE pricing_reloads_total counter",
                f'pricing_reloads_total{{result="ok"}} {self.reloads["ok"]}',
                f'pricing_reloads_total{{result="error"}} {self.reloads["error"]}',
            ]
        out += [
            "# HELP pricing_ruleset_info The ruleset being served (its content hash).",
            "# TYPE pricing_ruleset_info gauge",
            f'pricing_ruleset_info{{version="{loaded.version}"}} 1',
            "# HELP pricing_ruleset_contracts Plans and contracts in the ruleset being served.",
            "# TYPE pricing_ruleset_contracts gauge",
            f"pricing_ruleset_contracts {len(loaded.ruleset.contracts)}",
            "# HELP pricing_ruleset_loaded_timestamp_seconds When it was loaded (Unix time).",
            "# TYPE pricing_ruleset_loaded_timestamp_seconds gauge",
            f"pricing_ruleset_loaded_timestamp_seconds {loaded.loaded_at:.3f}",
            "# HELP pricing_last_reload_ok 1 if the last reload was swapped in, 0 if not.",
            "# TYPE pricing_last_reload_ok gauge",
            f"pricing_last_reload_ok {1 if reload.ok else 0}",
        ]
        return "\n".join(out) + "\n"


class Service:
    """The ruleset being served, its reloading, and the metrics.

    ``current`` is replaced by one assignment, so a request that reads it
    once sees one whole ruleset; loading and checking happen beside it.
    """

    def __init__(self, paths: Sequence[str], poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self.paths = list(paths)
        self.poll_seconds = poll_seconds
        self.metrics = _Metrics()
        self.reload_state = _ReloadState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        fingerprint, raw = self._read()
        loaded, diags = self._build(raw)
        if loaded is None:
            raise PricingError([d for d in diags if d.severity == "error"])
        self.current: Loaded = loaded
        self._fingerprint = fingerprint
        self.reload_state = _ReloadState(True, loaded.loaded_at, loaded.version)

    # -- loading

    def _read(self) -> tuple[tuple[tuple[str, int, int], ...], list[tuple[str, bytes]]]:
        files = _expand(self.paths)
        stamps = []
        raw = []
        for path in files:
            try:
                st = path.stat()
                data = path.read_bytes()
            except OSError as exc:
                raise PricingError(
                    Diagnostic("E002", f"cannot read this file: {exc.strerror}", str(path))
                ) from None
            stamps.append((str(path), st.st_mtime_ns, st.st_size))
            raw.append((str(path), data))
        return tuple(stamps), raw

    def _stamps(self) -> tuple[tuple[str, int, int], ...] | None:
        """The files' names, modification times and sizes: cheap to poll."""
        try:
            files = _expand(self.paths)
            return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        except (PricingError, OSError):
            return None  # a file vanished mid-edit: the next poll sees the outcome

    @staticmethod
    def _build(raw: list[tuple[str, bytes]]) -> tuple[Loaded | None, list[Diagnostic]]:
        sources = []
        for name, data in raw:
            try:
                sources.append((name, data.decode("utf-8-sig")))
            except UnicodeDecodeError as exc:
                return None, [
                    Diagnostic("E002", f"this file is not UTF-8 text (byte {exc.start})", name)
                ]
        ruleset, diags = _build(sources)
        if ruleset is None:
            return None, diags
        return Loaded(ruleset, ruleset_version(raw), tuple(sources), time.time()), diags

    def reload(self) -> bool:
        """Load and check the files now; swap the result in if it has no errors.

        Returns whether the ruleset being served is the files' current content.
        """
        with self._reload_lock:
            try:
                fingerprint, raw = self._read()
            except PricingError as exc:
                return self._rejected(list(exc.diagnostics), None)
            version = ruleset_version(raw)
            self._fingerprint = fingerprint
            if version == self.current.version:
                self.reload_state = _ReloadState(True, time.time(), version)
                return True
            loaded, diags = self._build(raw)
            if loaded is None:
                return self._rejected(diags, version)
            self.current = loaded  # the atomic swap
            self.reload_state = _ReloadState(True, loaded.loaded_at, version)
            self.metrics.reloaded(True)
            log.info("reloaded the ruleset: now serving %s", version)
            return True

    def _rejected(self, diags: list[Diagnostic], version: str | None) -> bool:
        errors = [d for d in diags if d.severity == "error"]
        self.reload_state = _ReloadState(False, time.time(), version, errors)
        self.metrics.reloaded(False)
        log.error(
            "the edited ruleset has errors; still serving %s\n%s",
            self.current.version,
            _output.diagnostics_text(errors).rstrip("\n"),
        )
        return False

    def request_reload(self) -> None:
        """Ask the watcher to reload now (what SIGHUP does)."""
        self._wake.set()

    def start_watching(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="pricing-reload", daemon=True)
            self._thread.start()

    def stop_watching(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.is_set():
            forced = self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            stamps = self._stamps()
            if forced or (stamps is not None and stamps != self._fingerprint):
                try:
                    self.reload()
                except Exception:  # pragma: no cover - a bug; keep serving and say so
                    log.exception("reloading failed")

    # -- drafts (the playground)

    def draft(
        self, text: str, name: str, replaces: str | None, standalone: bool, warnings: bool = False
    ) -> tuple[Ruleset | None, list[Diagnostic]]:
        """Check (and build, if it has no errors) a draft file with the served files around it.

        Everything happens in memory: the served files are the text they
        were loaded from, and the draft is never written anywhere.
        """
        loaded = self.current
        if standalone:
            sources = [(name, text)]
        else:
            names = [n for n, _ in loaded.sources]
            if replaces is not None and replaces not in names:
                raise _RequestError(
                    400,
                    Diagnostic(
                        "E700",
                        f"`replaces`: `{replaces}` is not a file of the served ruleset",
                        key="replaces",
                        hint="use one of the names GET /v1/sources lists",
                    ),
                )
            if name in names and name != replaces:
                raise _RequestError(
                    400,
                    Diagnostic(
                        "E700",
                        f"`filename`: `{name}` is already a file of the served ruleset",
                        key="filename",
                        hint="give the draft another name, or say it `replaces` that file",
                    ),
                )
            sources = [(n, t) for n, t in loaded.sources if n != replaces] + [(name, text)]
        return _build(sources, warnings)


class _RequestError(Exception):
    def __init__(self, status: int, diag: Diagnostic) -> None:
        super().__init__(diag.message)
        self.status = status
        self.diag = diag


# ------------------------------------------------------------------ helpers


def _json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
    return Response(body, status_code=status, media_type="application/json")


def _diag_response(status: int, diags: Sequence[Diagnostic]) -> Response:
    return _json_response({"diagnostics": [d.to_dict() for d in diags]}, status)


def _bad(message: str, key: str | None = None, hint: str | None = None) -> _RequestError:
    return _RequestError(400, Diagnostic("E700", message, "<request>", key=key, hint=hint))


def _parse_json(body: bytes, source: str = "<request>") -> Any:
    """Request JSON with exact numbers: decimals as Decimal, no NaN, no key given twice."""
    from ._usage import _read_json

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad(f"the request body is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise _RequestError(
            400, Diagnostic("E400", "the request body is empty", source, hint="send a JSON object")
        )
    return _read_json(text, source)


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad(f"{what} must be a JSON object, not {type(data).__name__}")
    return data


def _text_field(data: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(f"`{key}` must be a non-empty string", key=key)
    return value


def _query_flag(request: Request, key: str) -> bool:
    value = request.query_params.get(key)
    if value is None:
        return False
    if value in ("1", "true", "yes", ""):
        return True
    if value in ("0", "false", "no"):
        return False
    raise _bad(f"query parameter `{key}` must be true or false, not {value!r}", key=key)


def _only_params(request: Request, allowed: Sequence[str]) -> None:
    for key in request.query_params:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise _bad(
                f"unknown query parameter `{key}`", key=key, hint=f"this endpoint takes: {known}"
            )


def _contract_of(request: Request, usage: Mapping[str, Any]) -> str:
    cid = request.query_params.get("contract") or usage.get("contract")
    if not cid:
        raise _RequestError(
            400,
            Diagnostic(
                "E700",
                "no contract given",
                "<request>",
                key="contract",
                hint='add ?contract=ID, or put "contract" in the usage',
            ),
        )
    if not isinstance(cid, str):
        raise _bad("`contract` must be a string", key="contract")
    return cid


# ------------------------------------------------------------------ the app


Handler = Callable[[Request, Loaded], Awaitable[Response]]


def create_app(
    service: Service,
    token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
) -> Starlette:
    """The Starlette application over ``service``; see docs/serve.md for the API."""
    expected = None if token is None else token.encode()

    async def body_of(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            raise _too_large()
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise _too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large() -> _RequestError:
        return _RequestError(
            413,
            Diagnostic(
                "E701",
                f"the request body is larger than {max_body} bytes",
                "<request>",
                hint="send fewer records per request, or start the server with a larger --max-body",
            ),
        )

    def authorised(request: Request) -> bool:
        if expected is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        # Compared in constant time, so the answer's timing says nothing
        # about how much of a guess was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)

    def endpoint(
        route: str, handler: Handler, protected: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            start = time.perf_counter()
            loaded = service.current  # one snapshot for the whole request
            try:
                if protected and not authorised(request):
                    raise _RequestError(
                        401,
                        Diagnostic(
                            "E702",
                            "missing or wrong bearer token",
                            "<request>",
                            hint="send the header `Authorization: Bearer TOKEN` with the "
                            "token from the server's --token-file",
                        ),
                    )
                response = await handler(request, loaded)
            except _RequestError as exc:
                response = _diag_response(exc.status, [exc.diag])
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
            except PricingError as exc:
                response = _diag_response(400, exc.diagnostics)
            except Exception:
                log.exception("internal error on %s", request.url.path)
                response = _diag_response(
                    500,
                    [
                        Diagnostic(
                            "E706",
                            "internal error while answering this request",
                            "<request>",
                            hint="this is a bug: report it with the request",
                        )
                    ],
                )
            response.headers[VERSION_HEADER] = loaded.version
            service.metrics.observe(route, response.status_code, time.perf_counter() - start)
            return response

        return run

    # -- rating

    async def rate(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ("contract", "explain"))
        explain = _query_flag(request, "explain") or "explain" not in request.query_params
        usage = _object(_parse_json(await body_of(request)), "the usage")
        inv = loaded.ruleset.rate(_contract_of(request, usage), usage)
        return _json_response(inv.to_dict(explain))

    async def invoice(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ("contract", "date", "explain"))
        explain = _query_flag(request, "explain") or "explain" not in request.query_params
        body = await body_of(request)
        usage = _object(_parse_json(body), "the usage") if body.strip() else {}
        issue = request.query_params.get("date")
        if not issue:
            raise _bad("no issue date given", key="date", hint="add ?date=YYYY-MM-01")
        inv = loaded.ruleset.invoice(_contract_of(request, usage), issue, usage)
        return _json_response(inv.to_dict(explain))

    async def quote(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ())
        data = _object(_parse_json(await body_of(request)), "the quote request")
        result = await run_in_threadpool(_quote, loaded.ruleset, data)
        return _json_response(result)

    async def batch(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ("contract", "explain"))
        explain = _query_flag(request, "explain")
        default = request.query_params.get("contract")
        body = await body_of(request)
        deadline = time.monotonic() + batch_seconds
        lines = _batch_lines(loaded.ruleset, body, default, explain, deadline, batch_seconds)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    # -- checking and the served ruleset

    async def check(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ("filename", "with", "replaces"))
        text = _decode_text(await body_of(request))
        name = request.query_params.get("filename") or "<draft>.pricing"
        context = request.query_params.get("with")
        if context not in (None, "served"):
            raise _bad("`with` must be `served`", key="with")
        replaces = request.query_params.get("replaces")
        # With warnings, as `pricing check` reports them.
        _, diags = await run_in_threadpool(
            service.draft, text, name, replaces, context is None, True
        )
        errors = [d for d in diags if d.severity == "error"]
        return _json_response({"ok": not errors, "diagnostics": [d.to_dict() for d in diags]})

    async def draft(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ())
        data = _object(_parse_json(await body_of(request)), "the draft request")
        result = await run_in_threadpool(_draft, service, data)
        return _json_response(result)

    async def contracts(request: Request, loaded: Loaded) -> Response:
        from ._export import export

        _only_params(request, ())
        return _json_response(await run_in_threadpool(export, loaded.ruleset))

    async def contract(request: Request, loaded: Loaded) -> Response:
        from ._export import export

        _only_params(request, ())
        cid = request.path_params["id"]
        if cid not in loaded.ruleset.contracts:
            try:
                loaded.ruleset.contract(cid)
            except PricingError as exc:
                return _diag_response(404, exc.diagnostics)
        return _json_response(export(loaded.ruleset, cid))

    async def sources(request: Request, loaded: Loaded) -> Response:
        _only_params(request, ())
        return _json_response(
            {
                "version": loaded.version,
                "files": [{"name": n, "text": t} for n, t in loaded.sources],
                "meters": [
                    {"id": m.id, "usage_key": m.usage_key, "unit": m.unit, "name": m.name}
                    for m in loaded.ruleset.meters
                ],
            }
        )

    # -- operations

    async def healthz(request: Request, loaded: Loaded) -> Response:
        return _json_response({"ok": True})

    async def readyz(request: Request, loaded: Loaded) -> Response:
        state = service.reload_state
        return _json_response(
            {
                "ready": True,
                "version": loaded.version,
                "files": len(loaded.sources),
                "contracts": len(loaded.ruleset.contracts),
                "last_reload": {
                    "ok": state.ok,
                    "at": round(state.at, 3),
                    "version": state.version,
                    "diagnostics": [d.to_dict() for d in state.diagnostics],
                },
            }
        )

    async def metrics(request: Request, loaded: Loaded) -> Response:
        return Response(
            service.metrics.text(loaded, service.reload_state),
            media_type="text/plain; version=0.0.4",
        )

    async def openapi(request: Request, loaded: Loaded) -> Response:
        return Response(_openapi_text(), media_type="application/json")

    async def playground(request: Request, loaded: Loaded) -> Response:
        return Response(_static("playground.html"), media_type="text/html; charset=utf-8")

    async def not_found(request: Request, loaded: Loaded) -> Response:
        wrong_method = request.scope.get("pricing_status") == 405
        raise _RequestError(
            405 if wrong_method else 404,
            Diagnostic(
                "E704",
                f"{request.url.path} does not take {request.method}"
                if wrong_method
                else f"no endpoint {request.method} {request.url.path}",
                "<request>",
                hint="see /openapi.json for the endpoints",
            ),
        )

    routes = [
        Route("/v1/rate", endpoint("rate", rate), methods=["POST"]),
        Route("/v1/rate/batch", endpoint("rate_batch", batch), methods=["POST"]),
        Route("/v1/invoice", endpoint("invoice", invoice), methods=["POST"]),
        Route("/v1/quote", endpoint("quote", quote), methods=["POST"]),
        Route("/v1/check", endpoint("check", check), methods=["POST"]),
        Route("/v1/draft", endpoint("draft", draft), methods=["POST"]),
        Route("/v1/contracts", endpoint("contracts", contracts), methods=["GET"]),
        Route("/v1/contracts/{id}", endpoint("contract", contract), methods=["GET"]),
        Route("/v1/sources", endpoint("sources", sources), methods=["GET"]),
        Route("/healthz", endpoint("healthz", healthz, protected=False), methods=["GET"]),
        Route("/readyz", endpoint("readyz", readyz, protected=False), methods=["GET"]),
        Route("/metrics", endpoint("metrics", metrics), methods=["GET"]),
        Route("/openapi.json", endpoint("openapi", openapi, protected=False), methods=["GET"]),
        Route("/", endpoint("playground", playground, protected=False), methods=["GET"]),
    ]
    fallback = endpoint("unknown", not_found, protected=False)

    async def on_404(request: Request, exc: Exception) -> Response:
        request.scope["pricing_status"] = getattr(exc, "status_code", 404)
        return await fallback(request)

    return Starlette(routes=routes, exception_handlers={404: on_404, 405: on_404})


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad(f"the ruleset text is not UTF-8 (byte {exc.start})") from None


def _quote_spec(
    data: Mapping[str, Any], rules: Ruleset
) -> tuple[list[str], str, list[Decimal], dict[str, str]]:
    from . import _whatif

    for key in data:
        if key not in ("contract", "vary", "step", "fix"):
            raise _bad(
                f"unknown field `{key}`", key=key, hint="a quote takes contract, vary, step, fix"
            )
    raw_contracts = data.get("contract")
    cids = [raw_contracts] if isinstance(raw_contracts, str) else raw_contracts
    if not isinstance(cids, list) or not cids or not all(isinstance(c, str) for c in cids):
        raise _bad("`contract` must be an id or a non-empty list of ids", key="contract")
    vary = _text_field(data, "vary")
    step = data.get("step")
    if step is not None and not isinstance(step, (str, int, Decimal)):
        raise _bad("`step` must be a number", key="step")
    fix = data.get("fix", {})
    if not isinstance(fix, dict):
        raise _bad("`fix` must be an object of usage keys and values", key="fix")
    try:
        meter, points = _whatif.quote_points(str(vary), None if step is None else str(step))
        fixed = _whatif.quote_keys(rules, meter, [(k, str(v)) for k, v in fix.items()])
    except ValueError as exc:
        raise _bad(
            str(exc)
            .replace("--vary", "`vary`")
            .replace("--step", "`step`")
            .replace("--fix", "`fix`")
        ) from None
    return cids, meter, points, fixed


def _quote(rules: Ruleset, data: Mapping[str, Any]) -> dict[str, Any]:
    from . import _whatif

    cids, meter, points, fixed = _quote_spec(data, rules)
    return _whatif.quote(rules, cids, meter, points, fixed)


def _batch_lines(
    rules: Ruleset,
    body: bytes,
    default: str | None,
    explain: bool,
    deadline: float,
    limit: float,
) -> Iterator[str]:
    """Rate each JSON Lines record; one output line per input line, in order.

    A record that cannot be rated gets its diagnostics on its line and the
    others go on.  Past the time limit, one last line says where it stopped.
    """
    from ._usage import _read_json

    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        diag = Diagnostic("E700", f"the request body is not UTF-8 text (byte {exc.start})")
        yield json.dumps({"line": 0, "diagnostics": [diag.to_dict()]}) + "\n"
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if time.monotonic() > deadline:
            diag = Diagnostic(
                "E703",
                f"the batch took longer than {limit:g} seconds; records from line {n} on "
                "were not rated",
                "<request>",
                n,
                hint="send the rest in another request, or fewer records per request",
            )
            yield json.dumps({"line": n, "diagnostics": [diag.to_dict()]}) + "\n"
            return
        source = f"<request>:{n}"
        try:
            usage = _read_json(line, source)
            if not isinstance(usage, dict):
                raise PricingError(Diagnostic("E400", "a record must be a JSON object", source))
            cid = usage.get("contract") or default
            if not isinstance(cid, str) or not cid:
                raise PricingError(
                    Diagnostic(
                        "E404",
                        "this usage record names no contract",
                        source,
                        key="contract",
                        hint='add "contract" to the record, or ?contract=ID to the request',
                    )
                )
            inv = rules.rate(cid, usage)
            out: dict[str, Any] = {"line": n, "invoice": inv.to_dict(explain)}
        except PricingError as exc:
            out = {"line": n, "diagnostics": [d.to_dict() for d in exc.diagnostics]}
        yield json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n"


def _draft(service: Service, data: Mapping[str, Any]) -> dict[str, Any]:
    """The playground's one call: check a draft and, if it builds, rate and quote with it."""
    for key in data:
        if key not in ("text", "filename", "replaces", "contract", "usage", "quote"):
            raise _bad(f"unknown field `{key}`", key=key)
    text = _text_field(data, "text")
    name = _text_field(data, "filename", required=False) or "<draft>.pricing"
    replaces = _text_field(data, "replaces", required=False)
    ruleset, diags = service.draft(str(text), name, replaces, False)
    out: dict[str, Any] = {"diagnostics": [d.to_dict() for d in diags]}
    if ruleset is None:
        return out
    drafted = sorted(cid for cid, c in ruleset.contracts.items() if _defined_in(c, name))
    out["contracts"] = drafted
    out["meters"] = [
        {"id": m.id, "usage_key": m.usage_key, "unit": m.unit, "name": m.name}
        for m in ruleset.meters
    ]
    cid = data.get("contract")
    if cid is None:
        return out
    usage = _object(data.get("usage", {}), "`usage`")
    try:
        out["invoice"] = ruleset.rate(str(cid), usage).to_dict(True)
    except PricingError as exc:
        out["rate_diagnostics"] = [d.to_dict() for d in exc.diagnostics]
        return out
    spec = data.get("quote")
    if spec is not None:
        spec = dict(_object(spec, "`quote`"))
        spec.setdefault("contract", str(cid))
        spec.setdefault(
            "fix", {k: v for k, v in usage.items() if k != spec.get("vary", "").split("=")[0]}
        )
        try:
            out["quote"] = _quote(ruleset, spec)
        except PricingError as exc:
            out["quote_diagnostics"] = [d.to_dict() for d in exc.diagnostics]
        except _RequestError as exc:
            out["quote_diagnostics"] = [exc.diag.to_dict()]
    return out


def _defined_in(contract: Any, path: str) -> bool:
    span = getattr(contract, "span", None)
    return span is not None and getattr(span, "path", None) == path


# ------------------------------------------------------------------ static files


def _static(name: str) -> bytes:
    return resources.files("pricing_dsl").joinpath(f"_static/{name}").read_bytes()


def _openapi_text() -> bytes:
    return resources.files("pricing_dsl").joinpath("schemas/openapi.json").read_bytes()


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service (schemas/openapi.json is this, written out)."""
    from ._openapi import document

    return document()


# ------------------------------------------------------------------ running


def read_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding white space dropped)."""
    try:
        text = Path(path).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PricingError(Diagnostic("E705", f"cannot read the token file: {exc}", path)) from None
    if not text:
        raise PricingError(
            Diagnostic(
                "E705", "the token file is empty", path, hint="put a long random token in it"
            )
        )
    return text


def _listening_socket(family: socket.AddressFamily) -> socket.socket:
    # proto must say TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose proto is IPPROTO_TCP, and with it on, each response's body waits
    # for the client's delayed ACK of its headers, 40 ms per request on Linux.
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)


def serve(
    paths: Sequence[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    token_file: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    log_level: str = "info",
) -> int:
    """Run the service until interrupted (what `pricing serve` does)."""
    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO))
    token = read_token(token_file) if token_file else None
    service = Service(paths, poll_seconds)
    app = create_app(service, token, max_body, batch_seconds)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _listening_socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PricingError(
            Diagnostic("E705", f"cannot listen on {host}:{port}: {exc.strerror}", "--port")
        ) from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    # One line on standard output, so a script that asked for --port 0 learns the port.
    print(f"serving {service.current.version} on http://{shown}:{bound}/", flush=True)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: service.request_reload())
    service.start_watching()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        service.stop_watching()
        sock.close()
    return 0


def run_in_thread(app: Starlette, host: str = "127.0.0.1") -> tuple[Any, threading.Thread, int]:
    """Run uvicorn on a free local port in a thread (tests, benchmarks): server, thread, port."""
    import uvicorn

    sock = _listening_socket(socket.AF_INET)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="pricing-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the test server did not start")
    return server, thread, port
