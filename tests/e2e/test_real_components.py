"""The deferrable wait survives a triggerer crash, with the real Airflow components.

A private AIRFLOW_HOME (SQLite, LocalExecutor) runs ``airflow api-server``, ``scheduler``,
``dag-processor`` and ``triggerer`` as separate processes, against a Retell emulator slowed down
so that the 8-case ``agent_support`` batch takes ~30 s. The test triggers ``retell_quality_gate``
through the REST API, waits until ``wait_for_batch_test`` is deferred and the triggerer is polling
Retell, SIGKILLs the triggerer's whole process group (no clean-up code runs), starts a new
triggerer, and checks that the run completes from the trigger's kwargs alone: one batch created,
polling resumed by the new triggerer (its own trigger log), the same try of the sensor finishing
with 8/8, nothing listening beyond 127.0.0.1, and the API key in no log.

REST API authentication: ``[core] simple_auth_manager_all_admins = True`` makes the api-server add
an admin token to every request (``SimpleAllAdminMiddleware``); the client also sends the token
from ``GET /auth/token`` (see ``components.AirflowApi``).

Runtime: ~80-140 s: start-up 25-55 s on 2 shared cores, the run ~45 s (batch 30 s), teardown ~10 s.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator, start_emulator
from tests.e2e.components import (
    AirflowApi,
    AirflowStack,
    Component,
    airflow_env,
    free_port,
    listening_sockets,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "retell_quality_gate"
SENSOR = "wait_for_batch_test"
POKE_INTERVAL = 2
# 8 cases, 5 at a time: 2 waves x 60 s x 0.25 = 30 s, so the kill (~10 s after creation) lands mid-wait
# and the new triggerer (~5-10 s later) resumes polling a batch that is still running.
TIME_SCALE = 0.25
TRIGGERER_THRESHOLD = 5  # [triggerer] triggerer_health_check_threshold, an integer number of seconds
TEST_BUDGET = 300.0

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Deployment:
    stack: AirflowStack
    api: AirflowApi
    emulator: RetellEmulator
    triggerer: Component  # the first triggerer
    started: float  # time.monotonic() when the fixture began

    def remaining(self) -> float:
        """Seconds left of the test's whole budget (set-up included)."""
        return TEST_BUDGET - (time.monotonic() - self.started)


def _copy_dag(dags_folder: Path) -> None:
    """Only the quality gate DAG, with a short poll interval (the example polls every 30 s)."""
    source = (ROOT / "example_dags" / f"{DAG_ID}.py").read_text(encoding="utf-8")
    assert source.count("poke_interval=30,") == 1, "the example DAG changed: update this substitution"
    dags_folder.mkdir()
    (dags_folder / f"{DAG_ID}.py").write_text(
        source.replace("poke_interval=30,", f"poke_interval={POKE_INTERVAL},"), encoding="utf-8"
    )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    started = time.monotonic()
    home = tmp_path / "airflow-home"
    home.mkdir()
    dags_folder = tmp_path / "dags"
    _copy_dag(dags_folder)
    port = free_port()
    with start_emulator(time_scale=TIME_SCALE) as emulator:
        env = airflow_env(
            home,
            dags_folder,
            port,
            {
                "AIRFLOW_CONN_RETELL_DEFAULT": emulator.connection_json(),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_THRESHOLD),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            },
        )
        stack = AirflowStack(home, env)
        api = AirflowApi(f"http://127.0.0.1:{port}")
        try:
            stack.migrate()
            stack.start("api-server")
            # --skip-serve-logs: the log servers would listen on all interfaces (the host is not
            # configurable); the api-server reads the task logs from the shared local folder.
            stack.start("scheduler", "--skip-serve-logs")
            stack.start("dag-processor")
            triggerer = stack.start("triggerer", "--skip-serve-logs")
            wait_for(
                "GET /api/v2/monitor/health to be healthy (all four parts)", api.healthy, 120, stack=stack
            )
            api.login()
            print(f"\nAirflow components healthy after {time.monotonic() - started:.1f}s (home {home})")
            yield Deployment(stack, api, emulator, triggerer, started)
        finally:
            api.close()
            stack.stop_all()
    shutil.rmtree(home, ignore_errors=True)


def _task(api: AirflowApi, run_id: str, task_id: str) -> dict[str, Any]:
    return api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")


def test_deferred_wait_survives_triggerer_crash(deployment: Deployment) -> None:
    started = time.monotonic()
    stack, api, emulator = deployment.stack, deployment.api, deployment.emulator

    def states(run_id: str) -> str:
        tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return ", ".join(f"{ti['task_id']}={ti['state']} (try {ti['try_number']})" for ti in tis)

    # The dag-processor parses the copied file; then unpause and trigger through the REST API.
    wait_for(
        f"the dag-processor to serialize {DAG_ID}",
        lambda: api.get(f"/dags/{DAG_ID}", ok=(200, 404)).get("dag_id") == DAG_ID,
        90,
        stack=stack,
    )
    assert api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})["is_paused"] is False
    run = api.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}})
    run_id = run["dag_run_id"]

    # Deferred, and the first triggerer is polling Retell (a GET it made after we saw the deferral).
    wait_for(
        f"{SENSOR} to be deferred",
        lambda: _task(api, run_id, SENSOR)["state"] == "deferred",
        90,
        interval=0.5,
        stack=stack,
        extra=lambda: states(run_id),
    )
    deferred_at = time.time()
    wait_for(
        "the first triggerer to poll the batch test",
        lambda: any(r["timestamp"] > deferred_at for r in emulator.requests("GET", "/get-batch-test/*")),
        30,
        interval=0.5,
        stack=stack,
    )
    creates = emulator.requests("POST", "/create-batch-test")
    assert len(creates) == 1, creates
    batch_test_id = api.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/start_batch_test/xcomEntries/return_value",
        params={"deserialize": True},
    )["value"]
    assert isinstance(batch_test_id, str), batch_test_id
    assert batch_test_id, batch_test_id
    with emulator.client() as client:
        batch = client.get(f"/get-batch-test/{batch_test_id}").json()
    assert batch["status"] != "complete", f"the batch finished before the kill; raise TIME_SCALE: {batch}"
    sensor_before = _task(api, run_id, SENSOR)
    assert sensor_before["state"] == "deferred", sensor_before
    # Everything we started listens on loopback only (the api-server's port, nothing else).
    sockets = listening_sockets(stack.components)
    assert sockets.get("api-server"), sockets
    assert all(host == "127.0.0.1" for found in sockets.values() for host, _ in found), sockets

    # Crash: SIGKILL the triggerer and its trigger runner, then start a replacement.
    deployment.triggerer.kill()
    killed_at = time.time()
    print(f"Killed the triggerer {time.monotonic() - started:.1f}s into the test; batch {batch['status']}")
    stack.start("triggerer", "--skip-serve-logs")

    finished = wait_for(
        f"dag run {run_id} to finish",
        lambda: (r := api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}"))["state"] in ("success", "failed") and r,
        min(240.0, max(deployment.remaining(), 30.0)),
        stack=stack,
        extra=lambda: states(run_id),
    )
    print(f"Run finished {time.monotonic() - started:.1f}s into the test: {states(run_id)}")

    assert finished["state"] == "success", states(run_id) + "\n" + stack.diagnostics()
    for task_id in ("start_batch_test", SENSOR, "publish_agent", "report"):
        assert _task(api, run_id, task_id)["state"] == "success", states(run_id)
    # The same try resumed: the deferral was handed over, not retried.
    assert _task(api, run_id, SENSOR)["try_number"] == sensor_before["try_number"] == 1

    report = api.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value",
        params={"deserialize": True},
    )["value"]
    assert report == {
        "pass_count": 8,
        "fail_count": 0,
        "error_count": 0,
        "total_count": 8,
        "gate_passed": True,
    }

    # One batch, ever; and the new triggerer polled it after the old one died.
    assert emulator.count("POST", "/create-batch-test") == 1
    polls = emulator.requests("GET", f"/get-batch-test/{batch_test_id}")
    # A request the old triggerer sent just before dying could be read by the emulator a moment
    # after the kill; the new triggerer cannot poll before the health-check threshold has passed.
    after_kill = [r for r in polls if r["timestamp"] > killed_at + 1.0]
    assert after_kill, f"no GET /get-batch-test after the kill: {polls}"
    assert all(r["status"] == 200 for r in after_kill), after_kill
    print(
        f"{len(polls)} polls in all, {len(after_kill)} after the kill, the first "
        f"{after_kill[0]['timestamp'] - killed_at:.1f}s after it; test took {time.monotonic() - started:.1f}s"
    )

    # The trigger ran on two triggerer jobs: its log is split per job (attempt=1.log.trigger.<job id>.log).
    trigger_logs = sorted(
        stack.home.glob(f"logs/dag_id={DAG_ID}/*/task_id={SENSOR}/attempt=1.log.trigger.*.log")
    )
    assert len(trigger_logs) == 2, trigger_logs
    old_log, new_log = sorted(trigger_logs, key=lambda p: int(p.name.split(".")[-2]))
    assert "Trigger fired event" not in old_log.read_text(), old_log
    assert "Trigger fired event" in new_log.read_text(), new_log

    # The API key never reached a component's log or a task's log (the trigger logs into the task log).
    logs = [p for p in stack.home.rglob("*") if p.is_file() and (p.suffix == ".log" or "logs" in p.parts)]
    assert any("trigger" in p.name for p in logs), sorted(str(p) for p in logs)
    leaked = [str(p) for p in logs if emulator.api_key in p.read_text(encoding="utf-8", errors="replace")]
    assert not leaked, f"the Retell API key appears in {leaked}"
