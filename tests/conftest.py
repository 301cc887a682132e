"""Test-wide set-up: one throw-away AIRFLOW_HOME per session, configured before Airflow is imported."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="retell-provider-tests-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(Path(_AIRFLOW_HOME) / "logs"),
    }
)
os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)

# The emulator fixtures are opt-in (no pytest11 entry point): this is the one line a user adds too.
pytest_plugins = ["airflow_provider_retell.emulator.pytest_plugin"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return Path(_AIRFLOW_HOME)


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A fresh metadata database (SQLite under AIRFLOW_HOME), created once per session."""
    from airflow.utils import db

    db.resetdb()
    return airflow_home


@pytest.fixture
def retell_conn(retell_emulator, monkeypatch: pytest.MonkeyPatch):
    """``retell_default`` pointing at the emulator, with fast retries and a 1 s create settle window
    (the emulator answers at once, and a lost create that was not applied is re-sent after it)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETELL_DEFAULT",
        retell_emulator.connection_json(max_retries=3, max_retry_wait=0.05, create_settle_seconds=1),
    )
    return retell_emulator
