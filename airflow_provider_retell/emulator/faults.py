"""Fault injection, authentication and the request log: the "gateway" in front of the emulated API.

Every request outside ``/_emulator/`` goes through :class:`Gateway`: it is logged, may be hit by
a fault (checked before authentication, as a proxy or load balancer would), is authenticated and
is then handled by the API. Faults:

``status``      reply ``status_code`` with Retell's error body (``Retry-After`` from ``retry_after``);
                the request is not applied.
``delay``       sleep ``seconds``, then handle normally (the body is read first, so a client that
                times out still gets its request applied).
``drop``        close the connection without any reply; the request is not applied.
``malformed``   handle normally, reply with the normal status and a body that is not valid JSON.
``lost_reply``  apply the request, then reply ``status_code`` (if given) or drop the connection.
``patch``       handle normally, then shallow-merge ``json`` into the JSON reply and delete the
                top-level keys in ``remove``.
``late_apply``  reply at once without applying (``status_code`` with Retell's error body, or drop the
                connection), then apply the very same request ``seconds`` (real seconds) later in the
                background, as if Retell had been slow to create it.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACTIONS = ("status", "delay", "drop", "malformed", "lost_reply", "patch", "late_apply")
_PARAMS: dict[str, dict[str, bool]] = {  # action -> {param: required}
    "status": {"status_code": True, "retry_after": False, "message": False},
    "delay": {"seconds": True},
    "drop": {},
    "malformed": {},
    "lost_reply": {"status_code": False},
    "patch": {"json": False, "remove": False},
    "late_apply": {"seconds": True, "status_code": False},
}
INVALID_KEY_MESSAGE = "Invalid API key"
log = logging.getLogger(__name__)


class FaultSpecError(ValueError):
    """A fault definition is invalid."""


@dataclass
class Fault:
    id: str
    method: str
    path: str
    action: str
    times: int
    params: dict[str, Any] = field(default_factory=dict)
    remaining: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and fnmatchcase(path, self.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "times": self.times,
            "remaining": self.remaining,
            **self.params,
        }


def _number(value: Any, name: str, *, integer: bool = False, minimum: float = 0) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise FaultSpecError(f"{name} must be {kind} >= {minimum}")
    return value


class FaultRegistry:
    """Faults in the order they were added; the first one matching a request is consumed."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault must be a JSON object")
        spec = dict(spec)
        action = spec.pop("action", None)
        if action not in ACTIONS:
            raise FaultSpecError(f"action must be one of {', '.join(ACTIONS)}")
        method = spec.pop("method", "*")
        path = spec.pop("path", None)
        if not isinstance(method, str) or not method:
            raise FaultSpecError("method must be an HTTP method or '*'")
        if not isinstance(path, str) or not path:
            raise FaultSpecError("path is required (a glob such as /get-batch-test/*)")
        times = _number(spec.pop("times", 1), "times", integer=True, minimum=1)
        allowed = _PARAMS[action]
        unknown = set(spec) - set(allowed)
        if unknown:
            raise FaultSpecError(f"unknown parameters for action {action}: {', '.join(sorted(unknown))}")
        for name, required in allowed.items():
            if required and spec.get(name) is None:
                raise FaultSpecError(f"action {action} needs {name}")
        params = {k: v for k, v in spec.items() if v is not None}
        if "status_code" in params:
            _number(params["status_code"], "status_code", integer=True, minimum=100)
            if params["status_code"] > 599:
                raise FaultSpecError("status_code must be <= 599")
        if "retry_after" in params:
            _number(params["retry_after"], "retry_after")
        if "seconds" in params:
            _number(params["seconds"], "seconds")
        if "message" in params and not isinstance(params["message"], str):
            raise FaultSpecError("message must be a string")
        if "json" in params and not isinstance(params["json"], dict):
            raise FaultSpecError("json must be an object")
        if "remove" in params and (
            not isinstance(params["remove"], list) or not all(isinstance(k, str) for k in params["remove"])
        ):
            raise FaultSpecError("remove must be a list of keys")
        fault = Fault(
            f"fault_{next(self._ids)}", method.upper(), path, action, times, params, remaining=times
        )
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching the request, with one use consumed; None when none matches."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count


class RequestLog:
    """Every API request (not the control API) in arrival order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, method: str, path: str, query: dict[str, str], client: str | None = None) -> dict[str, Any]:
        entry = {
            "method": method,
            "path": path,
            "query": query,
            "status": None,
            "fault": None,
            "timestamp": time.time(),
            "client": client,
            "body": None,
        }
        self.entries.append(entry)
        return entry

    def clear(self) -> None:
        self.entries.clear()


def logged_body(body: bytes) -> Any:
    """A request body as the log keeps it: its JSON, else its text (cut at 10,000 characters), or None."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body[:10_000].decode("utf-8", "replace")


def error_body(message: str) -> bytes:
    return json.dumps({"status": "error", "message": message}).encode()


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def client_address(scope: Scope) -> str | None:
    """``host:port`` of the client (``[host]:port`` for IPv6), None when the server gives none."""
    client = scope.get("client")
    if not client:
        return None
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class ConnectionDropped(ConnectionAbortedError):
    """Raised when a drop is asked for but the server gives no access to the connection."""


def drop_connection(send: Send) -> None:
    """Close the client connection at once, without any HTTP reply.

    Uvicorn's ``send`` is a bound method of the request cycle, which holds the transport: abort it
    and mark the cycle disconnected so uvicorn does not try to write a 500. Under another server
    (or an in-process test client) this raises :class:`ConnectionDropped` instead.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        raise ConnectionDropped("connection dropped by an emulator fault")
    transport.abort()
    for flag, value in (("disconnected", True), ("keep_alive", False)):
        if hasattr(cycle, flag):
            setattr(cycle, flag, value)


class Gateway:
    """Logging, faults and authentication in front of the API app (raw ASGI, so it can drop)."""

    def __init__(self, app: ASGIApp, api_key: str, faults: FaultRegistry, log: RequestLog) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()
        self.faults = faults
        self.log = log
        self._late: set[asyncio.Task[None]] = set()

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                scheme, _, token = value.partition(b" ")
                return (
                    hmac.compare_digest(b"Bearer " + token.strip(), self._expected)
                    and scheme.lower() == b"bearer"
                )
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"].upper(), scope["path"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        entry = self.log.add(method, path, query, client_address(scope))
        original_scope = dict(scope)  # the app adds keys to the scope; a late apply starts afresh

        # Read the whole body first: a request must be applied even if the client goes away meanwhile.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        entry["body"] = logged_body(bytes(body))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        fault = self.faults.take(method, path)
        if fault is not None:
            entry["fault"] = fault.action
        action = fault.action if fault else None
        params = fault.params if fault else {}

        if action == "status":
            code = params["status_code"]
            headers = []
            if "retry_after" in params:
                retry = params["retry_after"]
                headers.append(
                    (b"retry-after", str(int(retry) if float(retry).is_integer() else retry).encode())
                )
            message_text = params.get("message") or _phrase(code)
            entry["status"] = code
            await send_bytes(send, code, error_body(message_text), headers)
            return
        if action == "drop":
            drop_connection(send)
            return
        if action == "late_apply":
            self._schedule_late_apply(original_scope, bytes(body), float(params["seconds"]))
            if "status_code" in params:
                entry["status"] = params["status_code"]
                await send_bytes(send, params["status_code"], error_body(_phrase(params["status_code"])))
            else:
                drop_connection(send)
            return
        if action == "delay":
            await asyncio.sleep(float(params["seconds"]))

        if action in ("malformed", "lost_reply", "patch"):
            status, headers, reply = await self._handle_captured(scope, replay)
            if action == "lost_reply":
                if "status_code" in params:
                    entry["status"] = params["status_code"]
                    await send_bytes(send, params["status_code"], error_body(_phrase(params["status_code"])))
                else:
                    drop_connection(send)
                return
            if action == "malformed" and status != 204:
                reply = reply[: max(1, len(reply) // 2)] if reply else b"{"
                reply += b"<!-- truncated"
            elif action == "patch" and reply:
                try:
                    document = json.loads(reply)
                except ValueError:
                    document = None
                if isinstance(document, dict):
                    document.update(params.get("json", {}))
                    for key in params.get("remove", []):
                        document.pop(key, None)
                    reply = json.dumps(document).encode()
            entry["status"] = status
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            if status != 204:
                headers.append((b"content-length", str(len(reply)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send(
                {"type": "http.response.body", "body": reply if status != 204 else b"", "more_body": False}
            )
            return

        async def sniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self._handle(scope, replay, sniff)

    def _schedule_late_apply(self, scope: Scope, body: bytes, seconds: float) -> None:
        """Apply the request ``seconds`` from now on this event loop; the reply goes nowhere."""

        async def apply() -> None:
            await asyncio.sleep(seconds)
            delivered = False

            async def receive() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return {"type": "http.disconnect"}

            async def discard(message: Message) -> None:
                return None

            try:
                await self._handle(dict(scope), receive, discard)
            except Exception:
                log.exception("late apply of %s %s failed", scope.get("method"), scope.get("path"))

        task = asyncio.get_running_loop().create_task(apply())
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    def cancel_late_applies(self) -> int:
        """Cancel every late apply still waiting (on reset / seed); returns how many."""
        pending = [t for t in self._late if not t.done()]
        for task in pending:
            task.cancel()
        self._late.clear()
        return len(pending)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await send_bytes(send, 401, error_body(INVALID_KEY_MESSAGE))
            return
        await self.app(scope, receive, send)

    async def _handle_captured(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self._handle(scope, receive, capture)
        return captured["status"], captured["headers"], bytes(captured["body"])


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"
