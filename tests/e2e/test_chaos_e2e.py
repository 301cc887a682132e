"""The chaos suite under ``dag.test()``: issue 8's cases that need Airflow itself.

Case 3: Airflow's ``execution_timeout`` fires while the create's POST is in flight (the emulator
applies it later); the task's retry reconciles against the intent recorded in ``task_state_store``
and adopts the batch. Case 4: a storm of 503s and 429s while waiting, in every mode, spends no task
retry. The hook- and trigger-level chaos tests are ``tests/integration/test_chaos.py``.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.dagrun import sync_dag, task_instance, xcom
from tests.e2e.dag_support import POLL
from tests.e2e.test_retries import _stored_state

pytestmark = pytest.mark.e2e

SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
SUPPORT_IDS = ["tcd_support_01", "tcd_support_02", "tcd_support_03"]
CREATE = "/create-batch-test"
GET = "/get-batch-test/*"
TASK_ID = "run_batch_test"


@pytest.fixture
def emulator(retell_conn, monkeypatch):
    """Time scale 0 (a batch is complete once it exists); a settle window longer than any test."""
    retell_conn.reset(time_scale=0)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETELL_DEFAULT",
        retell_conn.connection_json(max_retries=3, max_retry_wait=0.05, create_settle_seconds=30),
    )
    return retell_conn


def one_task_dag(dag_id: str, make_task: Any) -> Any:
    from airflow.sdk import DAG

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        make_task()
    return sync_dag(dag)


def billed(emulator) -> list[str]:
    with emulator.client() as client:
        reply = client.get("/v2/list-batch-tests", params={**SUPPORT, "limit": 1000})
    return [b["test_case_batch_job_id"] for b in reply.json()["items"]]


def test_3_execution_timeout_mid_post_the_retry_adopts_the_batch(airflow_db, emulator, capfd):
    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    dag = one_task_dag(
        "chaos_execution_timeout_mid_post",
        lambda: RetellBatchTestOperator(
            task_id=TASK_ID,
            response_engine=SUPPORT,
            test_case_definition_ids=SUPPORT_IDS,
            wait_for_completion=True,
            poll_interval=POLL,
            execution_timeout=timedelta(seconds=3),
            retries=1,
            retry_delay=timedelta(0),
        ),
    )
    # Retell takes 3.5 s to answer the create: try 1 is killed 3 s in, with the POST in flight. The
    # emulator still applies it, after the delay.
    emulator.add_fault("POST", CREATE, "delay", seconds=3.5)

    run = dag.test()

    assert run.state == "success"
    ti = task_instance(run, TASK_ID)
    assert (ti.state, ti.try_number) == ("success", 2)
    assert emulator.count("POST", CREATE) == 1  # try 2 looked for the batch instead of sending again
    batch_test_id = xcom(run, TASK_ID, "batch_test_id")
    assert billed(emulator) == [batch_test_id]
    result = xcom(run, TASK_ID)
    assert (result["batch_test_id"], result["pass_count"], result["gate_passed"]) == (batch_test_id, 3, True)
    record = _stored_state(run, TASK_ID)  # the verdict is kept (for a retry after it), no intent left
    assert record["verdict"]["batch_test_id"] == batch_test_id
    assert record["create_intent"] is None
    out, err = capfd.readouterr()
    assert "Timeout" in out + err  # execution_timeout really fired
    assert "had no known outcome: looking for its batch before sending anything" in out + err
    assert f"Adopting batch test {batch_test_id}" in out + err


STORM = 5
RETRY_AFTER = 0.25
MODES = ["operator-sync", "sensor-poke", "sensor-reschedule", "sensor-deferrable"]


@pytest.mark.parametrize("mode", MODES)
def test_4_a_storm_while_waiting_spends_no_retry_in_any_mode(airflow_db, emulator, mode):
    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
    from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

    common = {"task_id": TASK_ID, "retries": 1, "retry_delay": timedelta(0)}
    if mode == "operator-sync":
        make_task: Any = lambda: RetellBatchTestOperator(  # noqa: E731
            response_engine=SUPPORT,
            test_case_definition_ids=SUPPORT_IDS,
            wait_for_completion=True,
            poll_interval=POLL,
            **common,
        )
    else:
        with emulator.client() as client:
            created = client.post(
                CREATE, json={"response_engine": SUPPORT, "test_case_definition_ids": SUPPORT_IDS}
            )
        batch_test_id = created.json()["test_case_batch_job_id"]
        make_task = lambda: RetellBatchTestSensor(  # noqa: E731
            batch_test_id=batch_test_id,
            mode="reschedule" if mode == "sensor-reschedule" else "poke",
            deferrable=mode == "sensor-deferrable",
            poke_interval=POLL,
            **common,
        )
    dag = one_task_dag(f"chaos_storm_{mode.replace('-', '_')}", make_task)
    for i in range(STORM):  # more failures in a row than the hook's bounded retries (4 requests) take
        emulator.add_fault("GET", GET, "status", status_code=(503, 429)[i % 2], retry_after=RETRY_AFTER)

    run = dag.test()

    assert run.state == "success"
    ti = task_instance(run, TASK_ID)
    assert (ti.state, ti.try_number) == ("success", 1)
    reads = emulator.requests("GET", GET)
    assert [r["status"] for r in reads] == [503, 429, 503, 429, 503, 200]
    waits = [b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(reads)]
    if mode == "sensor-deferrable":  # the trigger's first poll ignores the check's Retry-After (a bug:
        waits = waits[1:]  # tests/integration/test_chaos.py::test_4_retry_after_of_the_check_..., xfail)
    assert min(waits) >= RETRY_AFTER - 0.02  # Retry-After honoured
    assert len(billed(emulator)) == 1
    result = xcom(run, TASK_ID)
    assert (result["pass_count"], result["total_count"], result["gate_passed"]) == (3, 3, True)
