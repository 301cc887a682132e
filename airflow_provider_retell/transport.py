"""HTTP clients built from connection settings: a wall-clock budget per request, and one shared
async pool per event loop for every trigger in a triggerer."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpcore
import httpx
from httpcore._utils import is_socket_readable  # private: the unit tests fail if it moves

from airflow_provider_retell import __version__
from airflow_provider_retell.connection import RetellConnectionSettings

#: Connections one client keeps, and requests it has in flight, per event loop and connection.
#: Keep-alive equals the maximum: httpcore 1.0.9 counts every pooled connection against the
#: keep-alive limit, so a lower one closes connections as they go idle and the next poll pays a
#: new handshake (encode/httpcore#1000).
POOL_SIZE = 20

_request_end: ContextVar[float | None] = ContextVar("retell_request_end", default=None)


@cache
def ssl_context() -> ssl.SSLContext:
    """One verifying context per process: building one costs ~0.2 s, and every client needs it."""
    return httpx.create_ssl_context()


async def warm_ssl_context() -> None:
    """Build the SSL context off the event loop: it takes ~0.2 s, which would stall every trigger."""
    await asyncio.to_thread(ssl_context)


def client_kwargs(settings: RetellConnectionSettings) -> dict[str, Any]:
    return {
        "base_url": settings.base_url,
        "headers": {
            "Authorization": f"Bearer {settings.api_key}",
            "User-Agent": f"airflow-provider-retell/{__version__}",
        },
        "timeout": httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        "follow_redirects": False,
        "trust_env": False,  # the proxy, if any, was resolved into the settings
    }


# -- sync: a budget every socket operation respects ------------------------------------------------


@contextlib.contextmanager
def request_budget(seconds: float) -> Iterator[None]:
    """Every socket operation of the sync client inside this block ends within ``seconds`` in all.

    httpx's timeouts are per socket operation: a reply trickling one byte a second never trips
    them. This bound is on wall time, headers and body alike.
    """
    token = _request_end.set(time.monotonic() + max(seconds, 0.0))
    try:
        yield
    finally:
        _request_end.reset(token)


def _left(timeout: float | None, spent: type[Exception]) -> float | None:
    end = _request_end.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise spent("the request's time budget is spent")
    return left if timeout is None else min(timeout, left)


class _BudgetStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        return _BudgetStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _BudgetBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _BudgetStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _BudgetStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def sync_client(settings: RetellConnectionSettings) -> httpx.Client:
    """A client whose sockets honour :func:`request_budget`.

    httpx does not take a network backend, so the one its transport's httpcore pool uses is wrapped
    in place (``tests/unit/test_transport.py`` fails if a release moves it).
    """
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    transport = httpx.HTTPTransport(verify=ssl_context(), limits=limits, proxy=settings.proxy)
    pool = transport._pool
    pool._network_backend = _BudgetBackend(pool._network_backend)
    return httpx.Client(transport=transport, **client_kwargs(settings))


# -- async: one pool per loop and connection ---------------------------------------------------------


class _SocketOnceStream(httpcore.AsyncNetworkStream):
    """Answers httpcore's "is_readable" from a socket looked up once.

    httpcore asks it of every pooled connection each time a request joins or leaves the pool, and
    anyio answers by building every attribute of the TLS stream (a ``getpeername`` syscall among
    them): with 20 connections that was most of the CPU of a poll in a full triggerer.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: Any = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _SocketOnceStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return self._stream.get_extra_info(info)
        if self._socket is None:
            self._socket = self._stream.get_extra_info("socket")
        return is_socket_readable(self._socket)


class _SocketOnceBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _SocketOnceStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        return _SocketOnceStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def async_client(settings: RetellConnectionSettings) -> httpx.AsyncClient:
    """The pool every trigger of a loop shares: ``POOL_SIZE`` connections, all kept alive.

    As :func:`sync_client`, the transport's httpcore pool gets a wrapped network backend in place.
    """
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context(), limits=limits, proxy=settings.proxy)
    pool = transport._pool
    pool._network_backend = _SocketOnceBackend(pool._network_backend)
    return httpx.AsyncClient(transport=transport, **client_kwargs(settings))


@dataclass
class SharedClient:
    client: httpx.AsyncClient
    slots: asyncio.Semaphore  # requests in flight: queued here, not in httpcore's pool scan
    users: int = 0


class SharedAsyncClients:
    """One ``AsyncClient`` per event loop and connection, shared by every trigger in a triggerer.

    A triggerer runs up to a thousand triggers on one loop; sharing the pool keeps sockets bounded
    by ``POOL_SIZE`` and reused across polls, instead of growing with the number of waiting tasks.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[int, RetellConnectionSettings], SharedClient] = {}

    def acquire(self, settings: RetellConnectionSettings) -> SharedClient:
        key = (id(asyncio.get_running_loop()), settings)
        shared = self._clients.get(key)
        if shared is None or shared.client.is_closed:
            client = async_client(settings)
            shared = self._clients[key] = SharedClient(client, asyncio.Semaphore(POOL_SIZE))
        shared.users += 1
        return shared

    async def release(self, settings: RetellConnectionSettings) -> None:
        key = (id(asyncio.get_running_loop()), settings)
        shared = self._clients.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del self._clients[key]
            await shared.client.aclose()


ASYNC_CLIENTS = SharedAsyncClients()
