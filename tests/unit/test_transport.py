"""The sync client's wall-clock budget: wired into httpx's private pool, so a release that moves it fails here."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_retell.connection import RetellConnectionSettings
from airflow_provider_retell.transport import _BudgetBackend, request_budget, sync_client


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:9"], ids=["direct", "proxy"])
def test_every_sync_pool_dials_through_the_budget(proxy: str | None) -> None:
    settings = RetellConnectionSettings(base_url="https://api.retellai.com", api_key="key_unit", proxy=proxy)
    with sync_client(settings) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, _BudgetBackend)


@pytest.fixture
def trickle_server() -> Iterator[str]:
    """Answers headers, then one body byte every 0.2 s for a long time: no read timeout ever fires."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(5)


def test_a_trickling_reply_ends_at_the_budget(trickle_server: str) -> None:
    settings = RetellConnectionSettings(base_url=trickle_server, api_key="key_unit", timeout=5.0)
    started = time.monotonic()
    with sync_client(settings) as client, request_budget(1.0), pytest.raises(httpx.ReadTimeout):
        client.get("/get-batch-test/tcbj_1")
    assert time.monotonic() - started < 10.0  # a 1 s budget, against 200 s of trickle
