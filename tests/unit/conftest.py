"""Unit-test fixtures: connections through ``AIRFLOW_CONN_<ID>`` env vars and a fake task context."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import httpx._transports.default as httpx_transports
import pytest
from _retell_helpers import CONN_ID, conn_json

from tests.fakes import fake_context


@pytest.fixture(scope="session", autouse=True)
def _one_ssl_context() -> Iterator[None]:
    """httpx builds a fresh SSL context (~0.2 s, loading certifi) for every client; share one here.

    Unit tests only talk http:// to loopback (respx), so one shared default context is harmless.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            httpx_transports,
            "create_ssl_context",
            functools.lru_cache(maxsize=8)(httpx_transports.create_ssl_context),
        )
        yield


@pytest.fixture
def set_conn(monkeypatch: pytest.MonkeyPatch):
    """``set_conn(conn_id, **fields)``: define connection ``conn_id`` through ``AIRFLOW_CONN_<ID>``."""

    def _set(conn_id: str = CONN_ID, **fields: Any) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(**fields))
        return conn_id

    return _set


@pytest.fixture
def retell_unit_conn(set_conn) -> str:
    """``retell_unit`` on BASE_URL with two fast retries (waits capped at 1 ms)."""
    return set_conn(CONN_ID, extra={"max_retries": 2, "max_retry_wait": 0.001})


@pytest.fixture
def context() -> dict[str, Any]:
    return fake_context()
