"""The shared async pool's network streams: httpcore's liveness check answered from one socket lookup."""

from __future__ import annotations

import socket
from typing import Any

import httpcore

from airflow_provider_retell.connection import RetellConnectionSettings
from airflow_provider_retell.transport import _SocketOnceBackend, _SocketOnceStream, async_client


class _Inner(httpcore.AsyncNetworkStream):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lookups = 0

    def get_extra_info(self, info: str) -> Any:
        self.lookups += 1
        return self.sock if info == "socket" else f"inner {info}"


def test_is_readable_looks_the_socket_up_once_and_sees_a_server_close() -> None:
    ours, theirs = socket.socketpair()
    try:
        inner = _Inner(ours)
        stream = _SocketOnceStream(inner)
        assert [stream.get_extra_info("is_readable") for _ in range(5)] == [False] * 5
        assert inner.lookups == 1
        theirs.close()  # the server closed the idle connection: httpcore must drop it, not reuse it
        assert stream.get_extra_info("is_readable") is True
        assert stream.get_extra_info("ssl_object") == "inner ssl_object"  # everything else passes through
    finally:
        ours.close()


def test_the_shared_client_pool_uses_the_wrapped_backend() -> None:
    """httpx takes no network backend, so it is set on the transport's pool: this fails if a release moves it."""
    from airflow.sdk import Connection

    conn = Connection(conn_id="retell_x", conn_type="retell", host="http://127.0.0.1:1", password="key_x")
    settings = RetellConnectionSettings.from_connection(conn, {})
    client = async_client(settings)
    assert isinstance(client._transport._pool._network_backend, _SocketOnceBackend)  # type: ignore[attr-defined]
