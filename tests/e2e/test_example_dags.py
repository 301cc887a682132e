"""The example DAGs, run through real Airflow (``dag.test()``) against the emulator over loopback HTTP.

Every expected value is a count of the emulator's default seed; each is read back from XCom or the
metadata database, never recomputed by the provider code.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from scripts.dagrun import run_dag, task_instance, task_states, xcom
from tests.e2e.dag_support import BOOKING_ERROR, BOOKING_FAIL, FAILED_CASE_KEYS, POLL, RESULT_KEYS, task_attrs

pytestmark = pytest.mark.e2e

#: How the quality gate's sensor waits: as written (deferred to the in-process triggerer), or by
#: poking, or in reschedule mode (dag.test() re-queues the task once its reschedule date passes).
SENSOR_MODES = {
    "deferrable": {},
    "poke": {"deferrable": False, "mode": "poke"},
    "reschedule": {"deferrable": False, "mode": "reschedule"},
}


def _sensor_mode(dag: Any, mode: str) -> contextlib.AbstractContextManager[Any]:
    return task_attrs(dag.get_task("wait_for_batch_test"), **SENSOR_MODES[mode])


def _reschedules(ti: Any) -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).where(TaskReschedule.ti_id == ti.id))


def _failed_cases(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    for case in result["failed_test_cases"]:
        assert set(case) == FAILED_CASE_KEYS
        assert case["test_case_job_id"]
    return sorted(
        (c["test_case_definition_id"], c["name"], c["status"], c["result_explanation"])
        for c in result["failed_test_cases"]
    )


def _created_definition_ids(emulator: Any, batch_test_id: str) -> list[str]:
    """The definitions the emulator actually ran for a batch (its test runs, as Retell lists them)."""
    with emulator.client() as client:
        response = client.get(f"/v2/list-test-runs/{batch_test_id}", params={"limit": 1000})
        response.raise_for_status()
        body = response.json()
    runs = body["items"] if isinstance(body, dict) else body
    return sorted(run["test_case_definition_id"] for run in runs)


@pytest.mark.parametrize("mode", list(SENSOR_MODES))
def test_quality_gate_passes_and_publishes(example_dags, retell_conn, mode):
    dag = example_dags["retell_quality_gate"]
    with _sensor_mode(dag, mode):
        run = run_dag(dag, poll_interval=POLL)

    assert run.state == "success"
    assert task_states(run) == {
        "start_batch_test": "success",
        "wait_for_batch_test": "success",
        "publish_agent": "success",
        "report": "success",
    }
    batch_test_id = xcom(run, "start_batch_test", "batch_test_id")
    assert isinstance(batch_test_id, str)
    assert batch_test_id
    assert xcom(run, "start_batch_test") == batch_test_id
    assert retell_conn.count("POST", "/create-batch-test") == 1

    result = xcom(run, "wait_for_batch_test")
    assert set(result) == RESULT_KEYS
    assert result["batch_test_id"] == batch_test_id
    assert result["status"] == "complete"
    assert result["response_engine"]["type"] == "conversation-flow"
    assert result["response_engine"]["conversation_flow_id"] == "cf_support"
    assert (result["pass_count"], result["fail_count"], result["error_count"], result["total_count"]) == (
        8,
        0,
        0,
        8,
    )
    assert result["pass_rate"] == 1.0
    assert result["gate_passed"] is True
    assert result["gate_reasons"] == []
    assert result["failed_test_cases"] == []
    assert result["url"] is None  # the sensor only knows the batch, not the agent
    assert isinstance(result["created_at"], str)
    assert result["created_at"]
    assert isinstance(result["completed_at"], str)
    assert result["completed_at"] >= result["created_at"]

    assert xcom(run, "publish_agent") == batch_test_id
    assert xcom(run, "report") == {
        "pass_count": 8,
        "fail_count": 0,
        "error_count": 0,
        "total_count": 8,
        "gate_passed": True,
    }
    sensor = task_instance(run, "wait_for_batch_test")
    assert sensor.try_number == 1
    # The batch takes longer than a poke interval: in reschedule mode the sensor gave its slot back.
    assert (_reschedules(sensor) > 0) is (mode == "reschedule")


@pytest.mark.parametrize("mode", list(SENSOR_MODES))
def test_quality_gate_fails_for_agent_booking(example_dags, retell_conn, mode):
    dag = example_dags["retell_quality_gate"]
    with _sensor_mode(dag, mode):
        run = run_dag(dag, conf={"agent_id": "agent_booking"}, poll_interval=POLL)

    assert run.state == "failed"
    assert task_states(run) == {
        "start_batch_test": "success",
        "wait_for_batch_test": "failed",
        "publish_agent": "upstream_failed",
        "report": "success",
    }
    # A gate failure is final: the sensor's two retries were not spent.
    sensor = task_instance(run, "wait_for_batch_test")
    assert sensor.try_number == 1
    assert (_reschedules(sensor) > 0) is (mode == "reschedule")
    assert retell_conn.count("POST", "/create-batch-test") == 1

    batch_test_id = xcom(run, "start_batch_test", "batch_test_id")
    result = xcom(run, "wait_for_batch_test")  # pushed before the gate failed the task
    assert set(result) == RESULT_KEYS
    assert result["batch_test_id"] == batch_test_id
    assert result["response_engine"]["type"] == "retell-llm"
    assert result["response_engine"]["llm_id"] == "llm_booking"
    assert (result["pass_count"], result["fail_count"], result["error_count"], result["total_count"]) == (
        10,
        1,
        1,
        12,
    )
    assert result["pass_rate"] == 10 / 12
    assert result["gate_passed"] is False
    assert len(result["gate_reasons"]) == 2
    assert any("max_failures" in reason for reason in result["gate_reasons"])
    assert any("max_errors" in reason for reason in result["gate_reasons"])
    assert _failed_cases(result) == sorted([BOOKING_FAIL, BOOKING_ERROR])

    assert xcom(run, "publish_agent") is None
    assert xcom(run, "report") == {
        "pass_count": 10,
        "fail_count": 1,
        "error_count": 1,
        "total_count": 12,
        "gate_passed": False,
    }


def test_quality_gate_max_failures_param_lets_the_failure_through_but_not_the_error(
    example_dags, retell_conn
):
    dag = example_dags["retell_quality_gate"]
    run = run_dag(dag, conf={"agent_id": "agent_booking", "max_failures": 1}, poll_interval=POLL)

    assert run.state == "failed"
    result = xcom(run, "wait_for_batch_test")
    assert result["gate_passed"] is False
    assert len(result["gate_reasons"]) == 1
    assert "max_errors" in result["gate_reasons"][0]
    assert task_states(run)["publish_agent"] == "upstream_failed"


def test_nightly_regression_tolerates_failures_above_min_pass_rate(example_dags, retell_conn):
    dag = example_dags["retell_nightly_regression"]
    assert dag.get_task("wait_for_batch_test").mode == "reschedule"
    run = run_dag(dag, poll_interval=POLL)

    assert run.state == "success"
    assert task_states(run) == {
        "start_batch_test": "success",
        "wait_for_batch_test": "success",
        "report": "success",
        "watcher": "skipped",
    }
    assert retell_conn.count("POST", "/create-batch-test") == 1
    assert _reschedules(task_instance(run, "wait_for_batch_test")) > 0
    result = xcom(run, "wait_for_batch_test")
    assert result["gate_passed"] is True
    assert result["gate_reasons"] == []
    assert _failed_cases(result) == sorted([BOOKING_FAIL, BOOKING_ERROR])
    assert xcom(run, "report") == {
        "pass_count": 10,
        "fail_count": 1,
        "error_count": 1,
        "total_count": 12,
        "pass_rate": 10 / 12,
    }


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "polling"])
def test_ui_trigger_runs_the_chosen_definitions(example_dags, retell_conn, deferrable):
    dag = example_dags["retell_ui_trigger"]
    chosen = ["tcd_booking_03", BOOKING_FAIL[0]]
    conf = {"agent_id": "agent_booking", "test_case_definition_ids": chosen, "min_pass_rate": 0.5}
    with task_attrs(dag.get_task("run_batch_test"), deferrable=deferrable):
        run = run_dag(dag, conf=conf, poll_interval=POLL)

    assert run.state == "success"
    assert task_states(run) == {"run_batch_test": "success", "report": "success", "watcher": "skipped"}
    assert retell_conn.count("POST", "/create-batch-test") == 1
    batch_test_id = xcom(run, "run_batch_test", "batch_test_id")
    assert _created_definition_ids(retell_conn, batch_test_id) == sorted(chosen)

    result = xcom(run, "run_batch_test")
    assert set(result) == RESULT_KEYS
    assert result["batch_test_id"] == batch_test_id
    assert (result["pass_count"], result["fail_count"], result["error_count"], result["total_count"]) == (
        1,
        1,
        0,
        2,
    )
    assert result["pass_rate"] == 0.5
    assert result["gate_passed"] is True  # 1/2 meets min_pass_rate 0.5; the failure is allowed
    assert _failed_cases(result) == [BOOKING_FAIL]
    assert result["url"] is not None
    assert "agent_booking" in result["url"]
    assert xcom(run, "report") == {
        "pass_count": 1,
        "fail_count": 1,
        "error_count": 0,
        "total_count": 2,
        "gate_passed": True,
    }


def test_ui_trigger_fails_below_min_pass_rate(example_dags, retell_conn):
    dag = example_dags["retell_ui_trigger"]
    conf = {
        "agent_id": "agent_booking",
        "test_case_definition_ids": ["tcd_booking_03", BOOKING_FAIL[0]],
        "min_pass_rate": 0.75,
    }
    run = run_dag(dag, conf=conf, poll_interval=POLL)

    # The all_done ``report`` still ran; the ``watcher`` leaf turns the failed gate into a failed run.
    assert task_states(run) == {"run_batch_test": "failed", "report": "success", "watcher": "failed"}
    assert run.state == "failed"
    assert task_instance(run, "run_batch_test").try_number == 1
    result = xcom(run, "run_batch_test")
    assert result["gate_passed"] is False
    assert len(result["gate_reasons"]) == 1
    assert "min_pass_rate" in result["gate_reasons"][0]
    assert xcom(run, "report")["gate_passed"] is False
    assert (
        _watcher_says(dag, xcom(run, "report"))
        == "The quality gate failed: 1 passed, 1 failed, 0 errored of 2"
    )


@pytest.mark.parametrize("no_ids", [None, []], ids=["null", "cleared-field"])
def test_ui_trigger_without_ids_runs_every_definition(example_dags, retell_conn, no_ids):
    dag = example_dags["retell_ui_trigger"]
    conf = {"agent_id": "agent_booking", "test_case_definition_ids": no_ids, "min_pass_rate": 0.8}
    run = run_dag(dag, conf=conf, poll_interval=POLL)

    assert run.state == "success"
    batch_test_id = xcom(run, "run_batch_test", "batch_test_id")
    assert _created_definition_ids(retell_conn, batch_test_id) == [
        f"tcd_booking_{i:02d}" for i in range(1, 13)
    ]
    assert xcom(run, "report") == {
        "pass_count": 10,
        "fail_count": 1,
        "error_count": 1,
        "total_count": 12,
        "gate_passed": True,
    }


def _watcher_says(dag: Any, summary: dict[str, Any] | None) -> str:
    """What the watcher fails the run with, given what ``report`` handed it."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failure:
        dag.get_task("watcher").python_callable(summary)
    return str(failure.value)


def test_ui_trigger_watcher_names_an_unknown_agent_not_the_gate(example_dags, retell_conn):
    dag = example_dags["retell_ui_trigger"]
    run = run_dag(dag, conf={"agent_id": "agent_nobody", "min_pass_rate": 1.0}, poll_interval=POLL)

    assert run.state == "failed"
    assert task_states(run) == {"run_batch_test": "failed", "report": "success", "watcher": "failed"}
    assert retell_conn.count("POST", "/create-batch-test") == 0
    assert xcom(run, "report") is None
    assert _watcher_says(dag, xcom(run, "report")).startswith("run_batch_test failed before it had a result")
