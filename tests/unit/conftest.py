"""Unit-test fixtures: connections through ``AIRFLOW_CONN_<ID>`` env vars and a fake task context."""

from __future__ import annotations

from typing import Any

import pytest
from _retell_helpers import CONN_ID, FakeStore, FakeTI, conn_json


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
    return {"ti": FakeTI(), "task_state_store": FakeStore()}
