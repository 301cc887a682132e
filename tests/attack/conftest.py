"""Attack-test fixtures: a stateful fake Retell on a chaos server, and a Retell connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.attack.fake_retell import API_KEY, FakeRetell, connection_json
from tests.chaos import ChaosServer, start_chaos_server

CONN_ID = "retell_attack"


@pytest.fixture
def chaos() -> Iterator[ChaosServer]:
    with start_chaos_server() as server:
        yield server


@pytest.fixture
def retell(chaos: ChaosServer) -> FakeRetell:
    return FakeRetell(chaos).mount()


@pytest.fixture
def attack_conn(monkeypatch: pytest.MonkeyPatch, chaos: ChaosServer):
    """``attack_conn(**extra)`` points connection ``retell_attack`` at the chaos server."""

    def _set(url: str | None = None, api_key: str = API_KEY, **extra: Any) -> str:
        defaults: dict[str, Any] = {"max_retries": 2, "max_retry_wait": 0.05, "create_settle_seconds": 1}
        defaults.update(extra)
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(url or chaos.url, api_key, **defaults)
        )
        return CONN_ID

    return _set
