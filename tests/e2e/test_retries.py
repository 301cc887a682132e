"""A task retry reattaches to the batch its first try started; a manual re-run after a verdict starts anew.

Each DAG is built in the test, synced to the metadata database and run with ``dag.test()``; the
emulator's faults make the first try fail after the batch exists.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.dagrun import rerun_task, sync_dag, task_instance, xcom
from tests.e2e.dag_support import POLL

pytestmark = pytest.mark.e2e

STATE_KEY = "retell_batch_test"  # documented in waiting.py: the task_state_store record


def _one_task_dag(dag_id: str, *, deferrable: bool) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        RetellBatchTestOperator(
            task_id="run_batch_test",
            agent_id="agent_support",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=POLL,
            retries=1,
            retry_delay=timedelta(0),
        )
    return sync_dag(dag)


def _stored_state(run: Any, task_id: str) -> dict[str, Any] | None:
    """The operator's record in Airflow's task_state_store for this run, read from the database."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(TaskStateStoreModel).where(
                TaskStateStoreModel.dag_id == run.dag_id,
                TaskStateStoreModel.run_id == run.run_id,
                TaskStateStoreModel.task_id == task_id,
                TaskStateStoreModel.key == STATE_KEY,
            )
        ).one_or_none()
        return None if row is None else json.loads(row.value)


def _assert_one_batch_passed(run: Any, emulator: Any) -> str:
    assert emulator.count("POST", "/create-batch-test") == 1
    batch_test_id = xcom(run, "run_batch_test", "batch_test_id")
    result = xcom(run, "run_batch_test")
    assert result["batch_test_id"] == batch_test_id
    assert (result["pass_count"], result["total_count"], result["gate_passed"]) == (8, 8, True)
    return batch_test_id


def _assert_manual_rerun_starts_a_new_batch(dag: Any, run: Any, emulator: Any, first_id: str) -> None:
    # The verdict is kept for a retry after it; clearing the task raises its max_tries, which tells the
    # next try a person asked for a new run: it starts a new batch.
    assert _stored_state(run, "run_batch_test")["verdict"]["batch_test_id"] == first_id
    ti = rerun_task(dag, run, "run_batch_test")
    assert ti.state == "success"
    assert emulator.count("POST", "/create-batch-test") == 2
    second_id = xcom(run, "run_batch_test", "batch_test_id")
    assert second_id != first_id
    assert xcom(run, "run_batch_test")["batch_test_id"] == second_id
    assert xcom(run, "run_batch_test")["total_count"] == 8


def test_a_transient_storm_while_waiting_spends_no_retry(airflow_db, retell_conn):
    dag = _one_task_dag("e2e_storm_polling", deferrable=False)
    # More 503s in a row than the hook's bounded retries (max_retries=3) allow: a wait outlasts them.
    retell_conn.add_fault("GET", "/get-batch-test/*", "status", times=6, status_code=503)
    run = dag.test()

    assert run.state == "success"
    ti = task_instance(run, "run_batch_test")
    assert ti.state == "success"
    assert ti.try_number == 1
    assert retell_conn.count("GET", "/get-batch-test/*") > 6
    _assert_one_batch_passed(run, retell_conn)


def test_polling_retry_reattaches_after_a_reply_it_cannot_read(airflow_db, retell_conn):
    dag = _one_task_dag("e2e_retry_polling", deferrable=False)
    # Try 1's first status read is not JSON: a final error for that try (not an outage), so the task
    # is retried after the batch was created; try 2 reattaches.
    retell_conn.add_fault("GET", "/get-batch-test/*", "malformed", times=1)
    run = dag.test()

    assert run.state == "success"
    ti = task_instance(run, "run_batch_test")
    assert ti.state == "success"
    assert ti.try_number == 2
    first_id = _assert_one_batch_passed(run, retell_conn)

    _assert_manual_rerun_starts_a_new_batch(dag, run, retell_conn, first_id)


def test_deferred_retry_reattaches_after_the_trigger_reports_an_error(airflow_db, retell_conn):
    dag = _one_task_dag("e2e_retry_deferrable", deferrable=True)
    # Try 1: its own status read goes through (a no-op fault consumes it), the task defers, and the
    # trigger's first poll gets a reply that is not JSON: a final error for the trigger, but not a
    # permanent one, so its "error" event fails try 1 and the task is retried.
    retell_conn.add_fault("GET", "/get-batch-test/*", "delay", times=1, seconds=0)
    retell_conn.add_fault("GET", "/get-batch-test/*", "malformed", times=1)
    run = dag.test()

    assert run.state == "success"
    ti = task_instance(run, "run_batch_test")
    assert ti.state == "success"
    assert ti.try_number == 2
    faults = [r["fault"] for r in retell_conn.requests("GET", "/get-batch-test/*")]
    assert faults[:3] == ["delay", "malformed", None]
    first_id = _assert_one_batch_passed(run, retell_conn)

    _assert_manual_rerun_starts_a_new_batch(dag, run, retell_conn, first_id)


def test_deferred_permanent_error_fails_without_spending_retries(airflow_db, retell_conn):
    dag = _one_task_dag("e2e_permanent_in_trigger", deferrable=True)
    # The trigger's first poll gets a 404: the event carries the status, so the task fails on try 1
    # although it has a retry left, and no second batch is started.
    retell_conn.add_fault("GET", "/get-batch-test/*", "delay", times=1, seconds=0)
    retell_conn.add_fault("GET", "/get-batch-test/*", "status", times=1, status_code=404)
    run = dag.test()

    assert run.state == "failed"
    ti = task_instance(run, "run_batch_test")
    assert ti.state == "failed"
    assert ti.try_number == 1
    assert retell_conn.count("POST", "/create-batch-test") == 1
    assert [r["status"] for r in retell_conn.requests("GET", "/get-batch-test/*")] == [200, 404]
