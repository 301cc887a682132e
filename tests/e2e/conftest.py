"""End-to-end fixtures: the example DAGs, parsed and stored once per session, run with ``dag.test()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"


@pytest.fixture(scope="session")
def example_dags(airflow_db: Path) -> dict[str, Any]:
    """The example DAGs, parsed with no import error and stored in the metadata database."""
    from scripts.dagrun import load_dags

    return load_dags(str(EXAMPLE_DAGS))
