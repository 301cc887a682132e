"""The FastAPI application: Retell's test API endpoints plus the ``/_emulator/`` control API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .faults import FaultRegistry, FaultSpecError, Gateway, Message, Receive, RequestLog, Scope, Send
from .seed import SeedError, parse_time_scale
from .state import ApiError, EmulatorState

CONTROL_PREFIX = "/_emulator/"


class EmulatorApp(FastAPI):
    """FastAPI app whose API routes sit behind the :class:`Gateway` (auth, faults, request log)."""

    emulator_state: EmulatorState
    faults: FaultRegistry
    request_log: RequestLog
    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            await self.gateway(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message}, status_code=status_code)


async def _json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "request body is required")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None


def create_app(
    api_key: str,
    seed: dict[str, Any] | str | Path | None = None,
    time_scale: float | None = None,
    state: EmulatorState | None = None,
) -> EmulatorApp:
    """Build the emulator app.

    ``api_key`` is the only key accepted (``Authorization: Bearer <api_key>``); ``seed`` is a dict,
    a YAML/JSON path or None for the bundled default; ``time_scale`` multiplies every duration
    (default: the seed's ``time_scale``, else 1). Pass ``state`` to share an existing state.
    """
    if not api_key:
        raise ValueError("api_key is required")
    app = EmulatorApp(title="Retell API emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.redirect_slashes = False
    app.emulator_state = state if state is not None else EmulatorState(seed, time_scale)
    app.faults = FaultRegistry()
    app.request_log = RequestLog()
    app.gateway = Gateway(app._inner, api_key, app.faults, app.request_log)
    st = app.emulator_state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status_code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error(404, f"no endpoint {request.method} {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    # ------------------------------------------------------------------ batch tests
    @app.post("/create-batch-test")
    async def create_batch_test(request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(st.create_batch(body, st.clock()), status_code=201)

    @app.get("/get-batch-test/{batch_id}")
    async def get_batch_test(batch_id: str) -> JSONResponse:
        return JSONResponse(st.get_batch(batch_id, st.clock()))

    @app.get("/v2/list-batch-tests")
    async def list_batch_tests(request: Request) -> JSONResponse:
        return JSONResponse(st.list_batches(request.query_params, st.clock()))

    @app.get("/v2/list-test-runs/{batch_id}")
    async def list_test_runs(batch_id: str, request: Request) -> JSONResponse:
        return JSONResponse(st.list_runs(batch_id, request.query_params, st.clock()))

    @app.get("/get-test-run/{job_id}")
    async def get_test_run(job_id: str) -> JSONResponse:
        return JSONResponse(st.get_run(job_id, st.clock()))

    # ------------------------------------------------------------------ test case definitions
    @app.get("/v2/list-test-case-definitions")
    async def list_test_case_definitions(request: Request) -> JSONResponse:
        return JSONResponse(st.list_definitions(request.query_params))

    @app.get("/get-test-case-definition/{def_id}")
    async def get_test_case_definition(def_id: str) -> JSONResponse:
        return JSONResponse(st.get_definition(def_id))

    @app.post("/create-test-case-definition")
    async def create_test_case_definition(request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(st.create_definition(body, st.clock()), status_code=201)

    @app.put("/update-test-case-definition/{def_id}")
    async def update_test_case_definition(def_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(st.update_definition(def_id, body, st.clock()))

    @app.delete("/delete-test-case-definition/{def_id}")
    async def delete_test_case_definition(def_id: str) -> Response:
        st.delete_definition(def_id)
        return Response(status_code=204)

    # ------------------------------------------------------------------ agents
    @app.get("/get-agent/{agent_id}")
    async def get_agent(agent_id: str, request: Request) -> JSONResponse:
        return JSONResponse(st.get_agent(agent_id, request.query_params))

    @app.post("/v2/list-agents")
    async def list_agents(request: Request) -> JSONResponse:
        body = await _json_body(request, optional=True)
        return JSONResponse(st.list_agents(request.query_params, body))

    @app.get("/list-agents")
    async def list_agents_v1() -> JSONResponse:
        return JSONResponse(st.list_agents_v1())

    # ------------------------------------------------------------------ control API (no auth, not logged)
    def _time_scale(body: Any) -> float | None:
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        value = body.get("time_scale")
        try:
            return None if value is None else parse_time_scale(value)
        except SeedError as exc:
            raise ApiError(400, str(exc)) from exc

    def _status() -> dict[str, Any]:
        return {"status": "ok", "time_scale": st.time_scale}

    @app.get("/_emulator/health")
    async def health() -> dict[str, Any]:
        return _status()

    @app.post("/_emulator/reset")
    async def reset(request: Request) -> dict[str, Any]:
        time_scale = _time_scale(await _json_body(request, optional=True))
        st.reset(time_scale)
        app.faults.clear()
        app.gateway.cancel_late_applies()
        app.request_log.clear()
        return _status()

    @app.post("/_emulator/seed")
    async def seed_state(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        _time_scale(body)
        try:
            st.replace_seed(body)
        except SeedError as exc:
            raise ApiError(400, str(exc)) from exc
        app.faults.clear()
        app.gateway.cancel_late_applies()
        app.request_log.clear()
        return {
            **_status(),
            "agents": len(st.agents),
            "test_case_definitions": len(st.definitions),
        }

    @app.post("/_emulator/faults", status_code=201)
    async def add_fault(request: Request) -> dict[str, Any]:
        try:
            fault = app.faults.add(await _json_body(request))
        except FaultSpecError as exc:
            raise ApiError(400, str(exc)) from exc
        return {"id": fault.id}

    @app.get("/_emulator/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": app.faults.list()}

    @app.delete("/_emulator/faults")
    async def clear_faults() -> dict[str, Any]:
        return {"cleared": app.faults.clear()}

    @app.get("/_emulator/requests")
    async def list_requests() -> dict[str, Any]:
        return {"requests": [dict(e) for e in app.request_log.entries]}

    @app.delete("/_emulator/requests")
    async def clear_requests() -> dict[str, Any]:
        count = len(app.request_log.entries)
        app.request_log.clear()
        return {"cleared": count}

    return app


__all__ = ["CONTROL_PREFIX", "EmulatorApp", "Message", "create_app"]
