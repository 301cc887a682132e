"""A TLS fake of the two status endpoints the triggers poll, lean enough never to be the bottleneck.

Serves Retell's ``GET /get-batch-test/{id}`` and dbt Cloud's ``GET /api/v2/accounts/{account}/runs/{run}/``
on 127.0.0.1. Each id carries its completion time (see ``completions.py``), so the server keeps no
state but its counters. It is a bare ``asyncio.Protocol`` with httptools' C parser on uvloop: no
framework or ASGI layer per request, so a request costs tens of microseconds and a second core
serves the triggers' whole load. It reports its own CPU and event-loop lag so the report can show
that.

Run by ``side_by_side.py``: prints one JSON line with its ports when ready, serves until its stdin
closes (or ``--max-seconds`` pass), then prints one JSON line of counters and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import ssl
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
from completions import completion_of_dbt_run, completion_of_retell_id

RETELL_PREFIX = b"/get-batch-test/"
DBT_PREFIX = b"/api/v2/accounts/"


@dataclass
class Counters:
    """What one listener saw: the report's connections and requests come from here."""

    accepted: int = 0
    open: int = 0
    peak_open: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"retell": 0, "dbt": 0, "other": 0})
    errors: int = 0
    one_request: int = 0  # connections closed after a single request: pure handshake churn
    first_request: float | None = None
    last_request: float | None = None


def _reply(status: int, body: dict[str, Any], keep_alive: bool) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    reason = {200: b"OK", 401: b"Unauthorized", 404: b"Not Found"}[status]
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n"
        % (status, reason, len(payload), b"keep-alive" if keep_alive else b"close")
    )
    return head + payload


def retell_batch(batch_id: str, completes_at: float, now: float) -> dict[str, Any]:
    """The reply shape of Retell's ``BatchTestResponse`` (shared/retell/API.md)."""
    done = now >= completes_at
    return {
        "test_case_batch_job_id": batch_id,
        "status": "complete" if done else "in_progress",
        "response_engine": {"type": "retell-llm", "llm_id": "llm_bench", "version": 1},
        "pass_count": 12 if done else 0,
        "fail_count": 0,
        "error_count": 0,
        "total_count": 12,
        "creation_timestamp": int((completes_at - 60) * 1000),
        "user_modified_timestamp": int(min(now, completes_at) * 1000),
    }


def dbt_run(account: str, run_id: str, completes_at: float, now: float) -> dict[str, Any]:
    """The part of dbt Cloud's run reply that ``DbtCloudHook.get_job_status`` reads (``data.status``)."""
    done = now >= completes_at
    return {
        "status": {"code": 200, "is_success": True},
        "data": {
            "id": int(run_id),
            "account_id": int(account),
            "status": 10 if done else 3,  # DbtCloudJobRunStatus.SUCCESS / RUNNING
            "status_humanized": "Success" if done else "Running",
            "in_progress": not done,
            "is_complete": done,
            "finished_at": None,
        },
    }


def route(url: bytes, authorized: bool) -> tuple[str, int, dict[str, Any]]:
    """(side, status, body) for one request line."""
    path = url.split(b"?", 1)[0]
    now = time.time()
    if path.startswith(RETELL_PREFIX):
        batch_id = path[len(RETELL_PREFIX) :].decode()
        completes_at = completion_of_retell_id(batch_id)
        if not authorized:
            return "retell", 401, {"status": "error", "message": "unauthorized"}
        if completes_at is None:
            return "retell", 404, {"status": "error", "message": "not found"}
        return "retell", 200, retell_batch(batch_id, completes_at, now)
    if path.startswith(DBT_PREFIX):
        parts = path[len(DBT_PREFIX) :].decode().strip("/").split("/")
        if not authorized:
            return "dbt", 401, {"status": {"code": 401, "is_success": False}}
        if len(parts) != 3 or parts[1] != "runs" or (completes_at := completion_of_dbt_run(parts[2])) is None:
            return "dbt", 404, {"status": {"code": 404, "is_success": False}}
        return "dbt", 200, dbt_run(parts[0], parts[2], completes_at, now)
    return "other", 404, {"status": "error", "message": "not found"}


class Connection(asyncio.Protocol):
    """One TLS connection: HTTP/1.1 keep-alive, one request at a time, as both clients send them."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.url = b""
        self.authorized = False
        self.served = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        c = self.counters
        c.accepted += 1
        c.open += 1
        c.peak_open = max(c.peak_open, c.open)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counters.open -= 1
        self.counters.one_request += self.served == 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.authorized = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization" and value:
            self.authorized = True

    def on_message_complete(self) -> None:
        side, status, body = route(self.url, self.authorized)
        c = self.counters
        c.requests[side] += 1
        self.served += 1
        c.errors += status != 200
        c.last_request = time.monotonic()
        c.first_request = c.first_request or c.last_request
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(_reply(status, body, keep_alive))
        if not keep_alive:
            self.transport.close()


class LoadMeter:
    """Samples this process's CPU and event-loop lag, to show the server had room to spare."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.lags: list[float] = []
        self.cpu: list[tuple[float, float]] = []  # (monotonic, cpu seconds)

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.tick
        while True:
            await asyncio.sleep(max(due - loop.time(), 0))
            now = loop.time()
            self.lags.append(now - due)
            due = now + self.tick
            if not self.cpu or time.monotonic() - self.cpu[-1][0] >= 0.5:
                self.cpu.append((time.monotonic(), self._cpu()))

    def report(self, start: float | None, end: float | None) -> dict[str, Any]:
        """CPU share over the busy window (first to last measured request) and its worst second."""
        window = [
            s for s in self.cpu if start is not None and end is not None and start - 0.5 <= s[0] <= end + 0.5
        ]
        busiest = max(
            ((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(window, window[2:], strict=False) if b[0] > a[0]),
            default=0.0,
        )
        mean = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else 0.0
        lags = sorted(self.lags) or [0.0]
        return {
            "cpu_seconds": window[-1][1] - window[0][1] if len(window) > 1 else 0.0,
            "cpu_share_mean": mean,
            "cpu_share_busiest_second": busiest,
            "loop_lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1000,
            "loop_lag_max_ms": lags[-1] * 1000,
            "loop_lag_median_ms": statistics.median(lags) * 1000,
        }


async def serve(cert: str, listeners: list[str], max_seconds: float) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert)
    loop = asyncio.get_running_loop()
    counters = {name: Counters() for name in listeners}
    ports = {}
    servers = []
    for name in listeners:
        # backlog: 1,000 triggers connect in the same millisecond; overflowing the default 100 would
        # cost the client a 1 s SYN retransmit and make the server look like the bottleneck.
        server = await loop.create_server(
            lambda c=counters[name]: Connection(c), "127.0.0.1", 0, ssl=ctx, backlog=4096
        )
        servers.append(server)
        ports[name] = server.sockets[0].getsockname()[1]
    meter = LoadMeter()
    meter_task = asyncio.create_task(meter.run())
    print(json.dumps({"ports": ports}), flush=True)

    stdin_closed = loop.create_future()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wait_eof() -> None:
        while await reader.read(4096):
            pass
        stdin_closed.set_result(None)

    eof_task = asyncio.create_task(wait_eof())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stdin_closed, max_seconds)
    eof_task.cancel()
    meter_task.cancel()
    for server in servers:
        server.close()
    measured = counters[listeners[0]]
    stats = {
        name: {k: v for k, v in vars(c).items() if k not in ("open", "first_request", "last_request")}
        for name, c in counters.items()
    }
    stats["load"] = meter.report(measured.first_request, measured.last_request)
    print(json.dumps(stats), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True, help="PEM with the server key and certificate chain")
    parser.add_argument("--listeners", default="measured,warmup", help="comma-separated listener names")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop by itself after this long")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:  # plain asyncio is ~2x slower per request but still far from the limit
        run = asyncio.run
    else:
        run = uvloop.run
    run(serve(args.cert, args.listeners.split(","), args.max_seconds))


if __name__ == "__main__":
    main()
