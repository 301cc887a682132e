"""A scriptable misbehaving HTTP/1.1 server for tests: the project's hostile-network tool.

Pure asyncio (stdlib only), served from a background thread on 127.0.0.1 (port 0). Script it with
rules (method + path glob -> a :class:`Reply` or a handler ``(req) -> Reply``, sync or async) and
an optional catch-all ``server.handler``; unmatched requests get a Retell-shaped 404. Every request
is recorded (:class:`Request`) and every TCP connection counted. ``stop()`` closes all client
sockets and joins the thread at once, even mid-trickle.

    server.route("POST", "/create-batch-test", Reply(504, json={"status": "error", "message": "slow"}))
    server.route("GET", "/v2/*", forward(emu.url, trickle=Trickle(64, 0.01)), times=1)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

_UNSET: Any = object()
_SKIPPED_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


@dataclass
class Request:
    """One request as received. ``headers`` keys are lower case; ``arrived`` is ``time.monotonic()``."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    arrived: float
    connection: int  # 1-based number of the TCP connection it came on
    raw_target: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Trickle:
    """Send ``size`` bytes every ``interval`` seconds, for the ``part`` of the reply given."""

    size: int = 1
    interval: float = 1.0
    part: Literal["headers", "body", "both"] = "both"


@dataclass
class Lazy:
    """A body generated chunk by chunk, afresh for each reply: ``make()`` returns the chunks."""

    make: Callable[[], Iterator[bytes]]

    def __iter__(self) -> Iterator[bytes]:
        return self.make()


@dataclass
class Reply:
    """What to send back.

    ``body``: bytes, str, or an iterable of byte chunks sent as they come (:class:`Lazy` makes one
    that can be sent more than once);
    ``json`` (any JSON value) replaces it. ``length``: the Content-Length to announce; by default the
    real one for bytes and none (close-delimited) for an iterable; ``None`` forces none.
    ``drop_after``: close the connection after that many bytes of the reply (0: no reply at all).
    """

    status: int = 200
    json: Any = _UNSET
    body: bytes | str | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = _UNSET
    trickle: Trickle | None = None
    drop_after: int | None = None

    def payload(self) -> tuple[bytes, Iterable[bytes], bool]:
        """(head, body chunks, whether the connection must close after it)."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: bytes | str | Iterable[bytes] = self.body
        if self.json is not _UNSET:
            body = json.dumps(self.json).encode()
            headers.setdefault("content-type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        length = self.length
        if length is _UNSET:
            length = len(body) if isinstance(body, bytes) else None
        if length is not None:
            headers["content-length"] = str(length)
        if length is None:
            headers["connection"] = "close"
        reason = next((s.phrase for s in HTTPStatus if s == self.status), "Chaos")
        lines = [f"HTTP/1.1 {self.status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head, ([body] if isinstance(body, bytes) else body), length is None


Action = Reply | Callable[[Request], "Reply | Awaitable[Reply]"]


@dataclass
class Rule:
    method: str
    path: str
    action: Action
    times: int | None = None  # None: forever


class ChaosServer:
    """Misbehaving HTTP/1.1 server on 127.0.0.1 in a background thread; see the module docstring."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.handler: Action = Reply(404, json={"status": "error", "message": "no chaos rule matched"})
        self.requests: list[Request] = []
        self.connections = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.errors: list[BaseException] = []  # handler failures (answered 500), bad requests

    def route(self, method: str, path: str, action: Action, *, times: int | None = None) -> Rule:
        """Answer ``method`` ("*" for any) + ``path`` glob with ``action``, ``times`` times (None: always)."""
        rule = Rule(method.upper(), path, action, times)
        self.rules.append(rule)
        return rule

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> ChaosServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(ready),), daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.url:
            raise RuntimeError("chaos server did not start")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every client socket, stop the loop and join the thread."""
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("chaos server thread did not stop")

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            ready.set()
        await self._stopping.wait()
        server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------------------------------------------------------------- serving
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.append(writer)
        self.connections += 1
        number = self.connections
        try:
            while await self._one(reader, writer, number):
                continue
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # stop(): the connection task ends quietly
        except Exception as exc:  # not HTTP, or a body generator failed: recorded, connection closed
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            writer.close()  # flushes what was written (a partial reply), then FIN

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> bool:
        """Read one request and answer it; False when the connection is to be closed."""
        request_line, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        method, target, version = request_line.split(" ", 2)
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        parts = urlsplit(target)
        req = Request(
            method.upper(), parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), headers,
            body, time.monotonic(), number, target,
        )  # fmt: skip
        self.requests.append(req)
        for rule in self.rules:
            if rule.times != 0 and rule.method in ("*", req.method) and fnmatchcase(req.path, rule.path):
                rule.times = None if rule.times is None else rule.times - 1
                break
        else:
            rule = None
        action = rule.action if rule is not None else self.handler
        try:
            reply = action if isinstance(action, Reply) else action(req)
            if inspect.isawaitable(reply):
                reply = await reply
            if not isinstance(reply, Reply):
                raise TypeError(f"a chaos handler must return a Reply, not {reply!r}")
        except Exception as exc:
            self.errors.append(exc)
            reply = retell_error(500, f"chaos handler failed: {exc!r}")
        close = await self._send(writer, reply)
        return not close and headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        head, chunks, close = reply.payload()
        trickle, budget, first_piece = reply.trickle, reply.drop_after, True

        async def write(data: bytes, paced: bool) -> bool:
            nonlocal budget, first_piece
            if budget is not None:
                data, budget = data[:budget], budget - min(budget, len(data))
            step = trickle.size if (paced and trickle) else len(data) or 1
            for start in range(0, len(data), step):
                if paced and trickle and not first_piece:  # one interval between paced pieces
                    await asyncio.sleep(trickle.interval)
                first_piece = first_piece and not paced
                writer.write(data[start : start + step])
                await writer.drain()
            return budget == 0  # the drop point was reached

        if budget == 0:
            return True
        if await write(head, bool(trickle and trickle.part in ("headers", "both"))):
            return True
        for chunk in chunks:
            if await write(chunk, bool(trickle and trickle.part in ("body", "both"))):
                return True
        return close


# -------------------------------------------------------------------- reply builders and handlers
def retell_error(status: int, message: str = "chaos", **headers: str) -> Reply:
    """Retell's error shape: ``{"status": "error", "message": ...}``."""
    return Reply(status, json={"status": "error", "message": message}, headers=headers)


def drop() -> Reply:
    """Close the connection after reading the request, without any reply."""
    return Reply(drop_after=0)


def huge_json_string(size: int = 100 * 2**20, *, chunk: int = 2**16, content_length: bool = True) -> Reply:
    """A JSON string of ``size`` bytes in all (quotes included), generated ``chunk`` bytes at a time."""

    def generate() -> Iterator[bytes]:
        yield b'"'
        for left in range(size - 2, 0, -chunk):
            yield b"a" * min(chunk, left)
        yield b'"'

    headers = {"content-type": "application/json"}
    return Reply(body=Lazy(generate), headers=headers, length=size if content_length else None)


def nested_json(depth: int = 100_000, *, objects: bool = False) -> Reply:
    """``[[[...]]]`` (or ``{"a":{"a":...1}}``) nested ``depth`` levels: valid JSON no parser wants."""
    body = b'{"a":' * depth + b"1" + b"}" * depth if objects else b"[" * depth + b"]" * depth
    return Reply(body=body, headers={"content-type": "application/json"})


def endless_page(items: list[Any] | None = None, pagination_key: str = "page_again") -> Reply:
    """A list page that always says there is more, with the same ``pagination_key`` forever."""
    return Reply(json={"items": items or [], "has_more": True, "pagination_key": pagination_key})


def echo(part: str = "header:authorization", encoding: str = "json", status: int = 401) -> Action:
    """Reply a Retell error whose message holds a request part (``header:<name>``, ``query:<name>``,
    ``path`` or ``body``), encoded ``json`` (JSON-escaped), ``percent`` or ``raw`` (as is)."""

    kind, _, name = part.partition(":")

    def handler(req: Request) -> Reply:
        if kind == "header":  # the bytes as received (header values are kept as latin-1 text)
            raw = req.headers.get(name.lower(), "").encode("latin-1")
        elif kind == "query":
            raw = req.query.get(name, "").encode()
        else:
            raw = req.path.encode() if kind == "path" else req.body
        if encoding == "json":
            return retell_error(status, f"rejected credentials {raw.decode('utf-8', 'replace')}")
        text = quote(raw, safe="").encode() if encoding == "percent" else raw
        body = b'{"status": "error", "message": "rejected credentials ' + text + b'"}'
        return Reply(status, body=body, headers={"content-type": "application/json"})

    return handler


def forward(upstream: str, transform: Callable[[Any], Any] | None = None, **reply: Any) -> Action:
    """Send the request on to ``upstream`` (a base URL, e.g. the emulator), return its reply with
    ``transform`` applied to its JSON and the :class:`Reply` fields in ``reply`` (``trickle``...) set."""
    base = urlsplit(upstream)

    async def handler(req: Request) -> Reply:
        up_reader, up_writer = await asyncio.open_connection(base.hostname, base.port or 80)
        try:  # HTTP/1.0: the upstream closes after the reply, never chunked
            lines = [f"{req.method} {base.path.rstrip('/')}{req.raw_target} HTTP/1.0", f"host: {base.netloc}"]
            lines += [f"{k}: {v}" for k, v in req.headers.items() if k not in _SKIPPED_HEADERS]
            lines.append(f"content-length: {len(req.body)}")
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + req.body)
            raw = await up_reader.read()
        finally:
            up_writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, headers = _parse_head(head)
        kept = {k: v for k, v in headers.items() if k not in _SKIPPED_HEADERS}
        result = Reply(int(status_line.split(" ")[1]), body=body, headers=kept)
        if transform is not None and body:
            result.body = json.dumps(transform(json.loads(body))).encode()
        for key, value in reply.items():
            setattr(result, key, value)
        return result

    return handler


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """(first line, headers with lower-case names) of an HTTP message head."""
    first, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines if line)
    return first, {name.strip().lower(): value.strip() for name, _, value in fields}


@contextlib.contextmanager
def start_chaos_server() -> Iterator[ChaosServer]:
    """``with start_chaos_server() as server: ...`` for scripts; stopped on exit."""
    server = ChaosServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chaos_server() -> Iterator[ChaosServer]:
    """A started :class:`ChaosServer` (no rules: every request gets a 404), stopped after the test."""
    with start_chaos_server() as server:
        yield server
