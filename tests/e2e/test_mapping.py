"""The operator under dynamic task mapping: one batch per mapped agent, each with its own result."""

from __future__ import annotations

from datetime import datetime

import pytest

from scripts.dagrun import sync_dag, task_instance, xcom
from tests.e2e.dag_support import POLL, RESULT_KEYS

pytestmark = pytest.mark.e2e


def test_expand_over_agents_runs_one_batch_each(airflow_db, retell_conn):
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    with DAG(dag_id="e2e_mapped_agents", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        RetellBatchTestOperator.partial(
            task_id="run_batch_test",
            wait_for_completion=True,
            deferrable=True,
            max_failures=None,
            max_errors=None,
            poll_interval=POLL,
        ).expand(agent_id=["agent_support", "agent_booking"])
    run = sync_dag(dag).test()

    assert run.state == "success"
    assert [task_instance(run, "run_batch_test", i).state for i in (0, 1)] == ["success", "success"]
    assert retell_conn.count("POST", "/create-batch-test") == 2

    support, booking = (xcom(run, "run_batch_test", map_index=i) for i in (0, 1))
    assert set(support) == RESULT_KEYS
    assert set(booking) == RESULT_KEYS
    assert support["batch_test_id"] != booking["batch_test_id"]
    assert support["batch_test_id"] == xcom(run, "run_batch_test", "batch_test_id", map_index=0)
    assert booking["batch_test_id"] == xcom(run, "run_batch_test", "batch_test_id", map_index=1)
    counts = [
        (r["pass_count"], r["fail_count"], r["error_count"], r["total_count"]) for r in (support, booking)
    ]
    assert counts == [(8, 0, 0, 8), (10, 1, 1, 12)]
    assert [r["gate_passed"] for r in (support, booking)] == [True, True]
    assert support["response_engine"]["conversation_flow_id"] == "cf_support"
    assert booking["response_engine"]["llm_id"] == "llm_booking"
    assert "agent_support" in support["url"]
    assert "agent_booking" in booking["url"]
