"""The emulator CLI as a real subprocess: URL on the first stdout line, auth, clean SIGTERM stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

import airflow_provider_retell
from airflow_provider_retell.emulator.pytest_plugin import start_emulator

ROOT = str(Path(airflow_provider_retell.__file__).resolve().parents[1])
BODY = {
    "response_engine": {"type": "conversation-flow", "conversation_flow_id": "cf_support"},
    "test_case_definition_ids": ["tcd_support_01"],
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RETELL_EMULATOR_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _first_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert line, "the emulator printed nothing"
    return line[0]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_retell.emulator", "--port", "0", "--api-key", "k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        line = _first_line(process)
        assert line.endswith("\n")
        url = line.strip()
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0
        with httpx.Client(base_url=url, trust_env=False, timeout=5) as client:
            created = client.post("/create-batch-test", json=BODY, headers={"Authorization": "Bearer k"})
            assert created.status_code == 201
            assert created.json()["total_count"] == 1
            wrong = client.post("/create-batch-test", json=BODY, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert client.get("/_emulator/health").status_code == 200
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=15)
        assert process.returncode == 0, stderr
        assert stdout == ""  # nothing but the URL on stdout
        assert "Bearer" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_takes_the_key_from_the_environment_and_a_seed_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        '{"agents": [{"agent_id": "a", "response_engine": {"type": "retell-llm", "llm_id": "l"}}],'
        ' "test_case_definitions": [{"test_case_definition_id": "t", "name": "T", "agent_id": "a",'
        ' "outcome": "fail"}]}'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_retell.emulator", "--seed", str(seed), "--time-scale", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(RETELL_EMULATOR_API_KEY="env-key"),
    )
    try:
        url = _first_line(process).strip()
        headers = {"Authorization": "Bearer env-key"}
        body = {"response_engine": {"type": "retell-llm", "llm_id": "l"}, "test_case_definition_ids": ["t"]}
        created = httpx.post(url + "/create-batch-test", json=body, headers=headers, trust_env=False)
        assert created.status_code == 201
        assert (created.json()["status"], created.json()["fail_count"]) == ("complete", 1)
        process.terminate()
        process.communicate(timeout=15)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_requires_an_api_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_retell.emulator", "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "API key is required" in result.stderr


def test_cli_rejects_a_bad_seed(tmp_path: Path) -> None:
    seed = tmp_path / "bad.yaml"
    seed.write_text("agents: 5\n")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_retell.emulator", "--api-key", "k", "--seed", str(seed)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "agents" in result.stderr


def test_start_emulator_with_a_seed_dict_resets_to_that_seed() -> None:
    seed = {
        "agents": [{"agent_id": "a", "response_engine": {"type": "retell-llm", "llm_id": "l"}}],
        "test_case_definitions": [{"name": "only", "agent_id": "a", "outcomes": ["error", "pass"]}],
    }
    with start_emulator(time_scale=0, seed=seed) as emu:
        assert emu.api_key.startswith("test-retell-key-")
        body = {
            "response_engine": {"type": "retell-llm", "llm_id": "l"},
            "test_case_definition_ids": ["tcd_seed_001"],
        }
        with emu.client() as api:
            assert api.post("/create-batch-test", json=body).json()["error_count"] == 1
            assert api.post("/create-batch-test", json=body).json()["pass_count"] == 1
            emu.reset()
            assert emu.time_scale == 0
            assert api.post("/create-batch-test", json=body).json()["error_count"] == 1
            assert api.get("/get-agent/agent_booking").status_code == 404
        process = emu.process
    assert process is not None
    assert process.returncode == 0
