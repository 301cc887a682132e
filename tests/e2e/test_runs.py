"""Runs of several batches: suites past 200 split and judged as one, flaky cases rerun, retries in between.

Every test counts the batches Retell billed (the emulator's creates), not only task states.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from scripts.dagrun import sync_dag, task_instance, xcom
from tests.e2e.dag_support import POLL, RESULT_KEYS

pytestmark = pytest.mark.e2e

BIG_ENGINE = {"type": "retell-llm", "llm_id": "llm_big"}
BIG_IDS = [f"tcd_big_{i:03d}" for i in range(450)]
FAILING = {7: "fail", 210: "fail", 401: "fail", 420: "error", 449: "error"}  # spread over the three batches
CREATE = "/create-batch-test"


def big_seed() -> dict[str, Any]:
    """One agent with 450 definitions: 445 pass, 3 fail, 2 error."""
    return {
        "agents": [{"agent_id": "agent_big", "response_engine": BIG_ENGINE}],
        "test_case_definitions": [
            {
                "test_case_definition_id": case,
                "name": f"Case {i}",
                "response_engine": BIG_ENGINE,
                "outcome": FAILING.get(i, "pass"),
            }
            for i, case in enumerate(BIG_IDS)
        ],
    }


def one_task_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    kwargs.setdefault("wait_for_completion", True)
    kwargs.setdefault("poll_interval", POLL)
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        RetellBatchTestOperator(task_id="run", retries=1, retry_delay=timedelta(0), **kwargs)
    return sync_dag(dag)


def created_ids(emulator: Any) -> list[list[str]]:
    """The test case ids of every create Retell applied, in order."""
    with emulator.client() as client:
        reply = client.get("/v2/list-batch-tests", params={**BIG_ENGINE, "limit": 1000}).json()
        batches = sorted(reply["items"], key=lambda b: b["creation_timestamp"])
        runs = [
            client.get(f"/v2/list-test-runs/{b['test_case_batch_job_id']}", params={"limit": 1000}).json()
            for b in batches
        ]
    return [[r["test_case_definition_id"] for r in page["items"]] for page in runs]


@pytest.mark.parametrize("deferrable", [False, True], ids=["polling", "deferrable"])
def test_a_450_case_suite_runs_as_three_batches_judged_as_one(airflow_db, retell_conn, deferrable):
    retell_conn.seed(big_seed(), time_scale=0.0005)
    dag = one_task_dag(
        f"e2e_split_{deferrable}", agent_id="agent_big", deferrable=deferrable, max_failures=3, max_errors=2
    )
    run = dag.test()

    assert run.state == "success"
    assert created_ids(retell_conn) == [BIG_IDS[:200], BIG_IDS[200:400], BIG_IDS[400:]]
    result = xcom(run, "run")
    assert set(result) == RESULT_KEYS
    assert (result["pass_count"], result["fail_count"], result["error_count"], result["total_count"]) == (
        445,
        3,
        2,
        450,
    )
    assert result["gate_passed"] is True
    assert len(result["batch_test_ids"]) == 3
    assert result["batch_test_id"] == result["batch_test_ids"][0]
    assert xcom(run, "run", "batch_test_ids") == result["batch_test_ids"]
    assert sorted(c["test_case_definition_id"] for c in result["failed_test_cases"]) == sorted(
        BIG_IDS[i] for i in FAILING
    )
    assert result["reruns"] == []


def test_a_retry_in_the_middle_of_a_split_run_starts_only_the_missing_batches(airflow_db, retell_conn):
    retell_conn.seed(big_seed(), time_scale=0)
    # The first create goes through; the second meets a 429 storm that outlasts the hook's retries,
    # which fails try 1 after one batch exists. Try 2 must start only batches 2 and 3.
    retell_conn.add_fault("POST", CREATE, "delay", seconds=0, times=1)
    retell_conn.add_fault("POST", CREATE, "status", status_code=429, times=4)
    dag = one_task_dag("e2e_split_retry", agent_id="agent_big", max_failures=None, max_errors=None)
    run = dag.test()

    assert run.state == "success"
    assert task_instance(run, "run").try_number == 2
    assert created_ids(retell_conn) == [BIG_IDS[:200], BIG_IDS[200:400], BIG_IDS[400:]]  # exactly 3 billed
    assert [r["status"] for r in retell_conn.requests("POST", CREATE)] == [201, 429, 429, 429, 429, 201, 201]
    result = xcom(run, "run")
    assert result["total_count"] == 450
    assert len(result["batch_test_ids"]) == 3


def test_the_two_task_form_waits_on_every_batch(airflow_db, retell_conn):
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
    from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

    retell_conn.seed(big_seed(), time_scale=0.0005)
    with DAG(
        dag_id="e2e_split_two_tasks", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
    ) as dag:
        start = RetellBatchTestOperator(task_id="start", agent_id="agent_big")
        RetellBatchTestSensor(
            task_id="wait",
            batch_test_id=start.output["batch_test_ids"],
            deferrable=True,
            poke_interval=POLL,
            max_failures=None,
            max_errors=None,
        )
    run = sync_dag(dag).test()

    assert run.state == "success"
    ids = xcom(run, "start", "batch_test_ids")
    assert len(ids) == 3
    assert xcom(run, "start") == ids  # return_value: the list when the run has several batches
    result = xcom(run, "wait")
    assert result["batch_test_ids"] == ids
    assert (result["pass_count"], result["fail_count"], result["error_count"], result["total_count"]) == (
        445,
        3,
        2,
        450,
    )
    assert retell_conn.count("POST", CREATE) == 3


@pytest.mark.parametrize("deferrable", [False, True], ids=["polling", "deferrable"])
def test_the_seeded_flaky_case_is_green_with_one_rerun_and_red_without(airflow_db, retell_conn, deferrable):
    red = one_task_dag(f"e2e_flaky_red_{deferrable}", agent_id="agent_flaky", deferrable=deferrable)
    run = red.test()
    assert run.state == "failed"
    result = xcom(run, "run")
    assert (result["pass_count"], result["fail_count"], result["gate_passed"]) == (2, 1, False)
    assert result["reruns"] == []
    assert retell_conn.count("POST", CREATE) == 1

    retell_conn.reset()  # the seeded case fails on its first run again
    green = one_task_dag(
        f"e2e_flaky_green_{deferrable}", agent_id="agent_flaky", deferrable=deferrable, rerun_failed=1
    )
    run = green.test()
    assert run.state == "success"
    result = xcom(run, "run")
    assert (result["pass_count"], result["fail_count"], result["total_count"], result["gate_passed"]) == (
        3,
        0,
        3,
        True,
    )
    assert len(result["reruns"]) == 1
    assert result["batch_test_ids"][1:] == result["reruns"]
    assert [c["test_case_definition_id"] for c in result["flaky_test_cases"]] == ["tcd_flaky_03"]
    assert result["flaky_test_cases"][0]["failed_status"] == "fail"
    assert task_instance(run, "run").try_number == 1
    posts = retell_conn.requests("POST", CREATE)
    assert len(posts) == 2  # the suite, then only the failed case
    rerun_body = [json.loads(b) for b in [retell_conn_body(retell_conn, 1)]]
    assert rerun_body[0]["test_case_definition_ids"] == ["tcd_flaky_03"]


def retell_conn_body(emulator: Any, index: int) -> bytes:
    """The body of the index-th create, read back from the batch Retell made."""
    with emulator.client() as client:
        reply = client.get(
            "/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_flaky", "limit": 10}
        ).json()
        batches = sorted(reply["items"], key=lambda b: b["creation_timestamp"])
        runs = client.get(f"/v2/list-test-runs/{batches[index]['test_case_batch_job_id']}").json()["items"]
    return json.dumps({"test_case_definition_ids": [r["test_case_definition_id"] for r in runs]}).encode()


def test_a_rerun_round_interrupted_by_a_task_retry_is_not_paid_twice(airflow_db, retell_conn):
    # Try 1: the suite runs, the failed case is rerun, and the first read of the rerun batch is not
    # JSON: try 1 fails with the rerun batch already billed. Try 2 reattaches to both rounds.
    retell_conn.add_fault("GET", "/get-batch-test/*", "delay", seconds=0, times=1)
    retell_conn.add_fault("GET", "/get-batch-test/*", "malformed", times=1)
    dag = one_task_dag("e2e_flaky_retry", agent_id="agent_flaky", rerun_failed=1)
    run = dag.test()

    assert run.state == "success"
    assert task_instance(run, "run").try_number == 2
    assert retell_conn.count("POST", CREATE) == 2
    result = xcom(run, "run")
    assert result["gate_passed"] is True
    assert len(result["reruns"]) == 1
    assert [c["test_case_definition_id"] for c in result["flaky_test_cases"]] == ["tcd_flaky_03"]


def test_max_test_cases_stops_a_run_before_the_create_that_would_pass_it(airflow_db, retell_conn):
    retell_conn.seed(big_seed(), time_scale=0)
    dag = one_task_dag("e2e_cost_guard", agent_id="agent_big", max_test_cases=300)
    run = dag.test()

    assert run.state == "failed"
    assert task_instance(run, "run").try_number == 1  # a cost cap is not retried
    assert retell_conn.count("POST", CREATE) == 0  # the plan alone passes the cap: nothing billed

    retell_conn.reset()
    rerun_capped = one_task_dag(
        "e2e_cost_guard_rerun", agent_id="agent_flaky", rerun_failed=1, max_test_cases=3
    )
    run = rerun_capped.test()
    assert run.state == "failed"
    assert retell_conn.count("POST", CREATE) == 1  # the suite ran; its rerun would pass the cap
