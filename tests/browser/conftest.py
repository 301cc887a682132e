"""Browser tests: the real Airflow UI in Debian's Chromium (headless), driven by Playwright.

The deployment is the one ``make airflow-ui`` starts (``scripts/airflow_ui.py``), in a private
state directory and on a free port: the bundled emulator, ``airflow db migrate``, a
``retell_default`` connection, ``api-server`` (simple auth manager, user ``admin`` with a generated
password, ``AIRFLOW__CORE__TEST_CONNECTION=Enabled``), ``scheduler``, ``dag-processor`` and
``triggerer``, all on 127.0.0.1. The DAGs folder is a copy of ``example_dags/`` with
``retell_ui_trigger``'s poll interval cut from 30 s to 2 s. Teardown runs ``airflow_ui.py stop``, which stops exactly the recorded
processes (by PID and start time) with their process groups.

Playwright drives the system browser (``executable_path=/usr/bin/chromium``, or
``RETELL_CHROMIUM``); no browser is downloaded. Without Chromium or Playwright the tests skip,
except under ``CI=true``, where they fail.

Screenshots go to ``test-output/browser/`` (gitignored; ``RETELL_SCREENSHOT_DIR`` overrides).
``make screenshots`` sets ``RETELL_UPDATE_DOCS_SCREENSHOTS=1``, which also copies the two that
the docs show into ``docs/img/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator
from tests.browser.support import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    DAG_ID,
    POLL_INTERVAL,
    ROOT,
    SCREENSHOTS,
    SCRIPT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    AirflowUI,
    screenshot,
)
from tests.e2e.components import AirflowApi, free_port


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"browser tests cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _copy_dags(dags_folder: Path) -> None:
    """The example DAGs, with ``retell_ui_trigger`` polling every 2 s (the example polls every 30 s)."""
    shutil.copytree(ROOT / "example_dags", dags_folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = dags_folder / f"{DAG_ID}.py"
    source = path.read_text(encoding="utf-8")
    assert source.count("poll_interval=30,") == 1, "the example DAG changed: update this substitution"
    path.write_text(source.replace("poll_interval=30,", f"poll_interval={POLL_INTERVAL},"), encoding="utf-8")


def _script(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), command],
        env=env,
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Playwright's Chromium, launched from the system's binary (headless).

    Module-scoped, like everything built on it: while Playwright's sync API is open, asyncio sees a
    running loop in the main thread, which breaks every later async test and ``dag.test()`` of the
    session. Closing it at the end of the module restores that.
    """
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[browser]')")
    # The UI loads data after the page: on 2 shared cores a table can take well over 5 s (the default).
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    for old in SCREENSHOTS.glob("*.png"):  # this session's screenshots only
        old.unlink()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
    assert asyncio._get_running_loop() is None, "Playwright left an event loop marked as running"


def _connect(state: Path) -> AirflowUI:
    info = json.loads((state / "pids.json").read_text())
    password = json.loads((Path(info["home"]) / "passwords.json").read_text())[info["user"]]
    emulator = RetellEmulator(info["emulator"], info["api_key"], time_scale=0.01)
    api = AirflowApi(info["url"])
    api.login(info["user"], password)
    return AirflowUI(info["url"], info["user"], password, emulator, api, state)


@pytest.fixture(scope="module")
def airflow_ui(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """``make airflow-ui``'s deployment, private to this module; stopped at the end, also on failure.

    To iterate on a test, start one by hand and reuse it (it is then left running):
    ``AIRFLOW_UI_STATE=/tmp/ui AIRFLOW_UI_DAGS_FOLDER=<a copy, poll_interval=2> scripts/airflow_ui.py start``,
    then ``RETELL_BROWSER_REUSE=/tmp/ui pytest tests/browser``.
    """
    reuse = os.environ.get("RETELL_BROWSER_REUSE")
    if reuse:
        ui = _connect(Path(reuse))
        yield ui
        ui.api.close()
        ui.emulator.close()
        return
    started = time.monotonic()
    base = tmp_path_factory.mktemp("airflow-ui")
    _copy_dags(base / "dags")
    state = base / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_UI_STATE": str(state),
        "AIRFLOW_UI_PORT": str(free_port()),
        "AIRFLOW_UI_DAGS_FOLDER": str(base / "dags"),
    }
    ui: AirflowUI | None = None
    try:
        result = _script("start", env, START_TIMEOUT)
        if result.returncode != 0:
            raise AssertionError(f"airflow_ui.py start failed:\n{result.stdout}\n{result.stderr}")
        ui = _connect(state)
        print(f"\nAirflow UI up after {time.monotonic() - started:.1f}s at {ui.url}")
        yield ui
    finally:
        if ui is not None:
            ui.api.close()
            ui.emulator.close()
        stopped = _script("stop", env, STOP_TIMEOUT)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        shutil.rmtree(state / "home", ignore_errors=True)


@pytest.fixture(scope="module")
def signed_in(chromium: Any, airflow_ui: AirflowUI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Log in once through the UI's login page; the session cookie is reused by every test."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.goto(f"{airflow_ui.url}/")
        page.wait_for_url("**/auth/login**")
        page.locator("input[name=username]").fill(airflow_ui.user)
        page.locator("input[name=password]").fill(airflow_ui.password)
        page.locator("button[type=submit]").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        path = tmp_path_factory.mktemp("browser") / "storage-state.json"
        context.storage_state(path=str(path))
        return path
    finally:
        context.close()


@pytest.fixture
def page(
    chromium: Any, signed_in: Path, airflow_ui: AirflowUI, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """A signed-in page; on failure its screenshot lands in the output dir as ``FAILED-<test>.png``."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, storage_state=str(signed_in))
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            screenshot(page, f"FAILED-{request.node.name}")
            print(airflow_ui.logs())
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
