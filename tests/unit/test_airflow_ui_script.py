"""``scripts/airflow_ui.py stop`` signals only the processes ``start`` recorded, never a reused PID."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scripts import airflow_ui


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(airflow_ui, "STATE", tmp_path)
    monkeypatch.setattr(airflow_ui, "PIDS", tmp_path / "pids.json")
    return tmp_path


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def test_stop_kills_the_recorded_process_group(state: Path) -> None:
    child = _sleeper()
    # Reap it as soon as it exits, as init does for the real (orphaned) processes: a zombie still
    # counts as a live process group.
    threading.Thread(target=child.wait, daemon=True).start()
    try:
        airflow_ui._record([airflow_ui._entry("emulator", child.pid)], {"url": "http://127.0.0.1:1"})
        assert [e["name"] for e in airflow_ui._running()] == ["emulator"]
        assert airflow_ui.stop(quiet=True) == 0
        assert child.wait(10) is not None
        assert not (state / "pids.json").exists()
    finally:
        child.kill()
        child.wait()


def test_stop_leaves_a_process_that_reused_a_recorded_pid(state: Path) -> None:
    child = _sleeper()
    try:
        entry = airflow_ui._entry("api-server", child.pid)
        entry["started"] = str(int(entry["started"]) - 1)  # recorded for an earlier process
        (state / "pids.json").write_text(json.dumps({"processes": [entry], "url": "x"}))
        assert airflow_ui._running() == []
        airflow_ui.stop(quiet=True)
        assert child.poll() is None  # still running: not ours
    finally:
        child.kill()
        child.wait()


def test_stop_without_a_pid_file(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert airflow_ui.stop() == 0
    assert "Nothing to stop" in capsys.readouterr().out
