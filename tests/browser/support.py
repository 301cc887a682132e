"""What the browser tests share: the deployment handle, constants, screenshots (fixtures: conftest.py)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator
from tests.e2e.components import AirflowApi, tail

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow_ui.py"
CHROMIUM = os.environ.get("RETELL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("RETELL_SCREENSHOT_DIR", ROOT / "test-output" / "browser"))
DOCS_IMG = ROOT / "docs" / "img"
#: Screenshot name -> the file in docs/ that `make screenshots` refreshes.
DOCS_SCREENSHOTS = {
    "connection-form": DOCS_IMG / "connection-form.png",
    "ui-triggered-run": DOCS_IMG / "ui-triggered-run.png",
}
DAG_ID = "retell_ui_trigger"
POLL_INTERVAL = 2
START_TIMEOUT = 240.0  # airflow_ui.py waits up to 180 s for health; db migrate ~5-20 s before that
STOP_TIMEOUT = 60.0
ACTION_TIMEOUT_MS = 45_000  # generous: on 2 shared, busy cores a page can take 20 s to load


@dataclass
class AirflowUI:
    """The running deployment: the UI's URL, the login, the emulator and the REST API."""

    url: str
    user: str
    password: str
    emulator: RetellEmulator
    api: AirflowApi
    state: Path

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {p.name} ---\n{tail(p, lines)}" for p in sorted(self.state.glob("*.log")))


def screenshot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save ``name``.png in the output dir; with RETELL_UPDATE_DOCS_SCREENSHOTS=1 also into docs/img."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    target = DOCS_SCREENSHOTS.get(name)
    if target is not None and os.environ.get("RETELL_UPDATE_DOCS_SCREENSHOTS") == "1":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return path
