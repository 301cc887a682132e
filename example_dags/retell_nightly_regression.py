"""Nightly regression: run every test case of an agent, wait without holding a worker, report the counts.

The sensor runs in ``reschedule`` mode: between pokes it frees its worker slot. Its gate tolerates a
few failing cases (a pass rate of at least 80%) and the ``report`` task runs whatever the verdict.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

with DAG(
    dag_id="retell_nightly_regression",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={"agent_id": Param("agent_booking", type="string", minLength=1)},
    tags=["retell", "nightly"],
) as dag:
    start = RetellBatchTestOperator(task_id="start_batch_test", agent_id="{{ params.agent_id }}")

    wait = RetellBatchTestSensor(
        task_id="wait_for_batch_test",
        batch_test_id=start.output,
        max_failures=None,
        max_errors=None,
        min_pass_rate=0.8,
        mode="reschedule",
        poke_interval=60,
        timeout=timedelta(hours=3),
    )

    @task(trigger_rule="all_done")
    def report(result: dict[str, Any] | None) -> dict[str, Any] | None:
        if not result:
            print("No result: the batch test did not finish (see wait_for_batch_test's log)")
            return None
        rate = "n/a" if result["pass_rate"] is None else f"{result['pass_rate']:.0%}"
        print(
            f"Nightly Retell regression {result['batch_test_id']}: "
            f"{result['pass_count']}/{result['total_count']} passed ({rate}), "
            f"{result['fail_count']} failed, {result['error_count']} errored"
        )
        for case in result["failed_test_cases"]:
            print(f"  {case['status']:5}  {case['name']}: {case['result_explanation']}")
        return {k: result[k] for k in ("pass_count", "fail_count", "error_count", "total_count", "pass_rate")}

    @task(trigger_rule="one_failed", retries=0)
    def watcher() -> None:
        """Fail the DAG run when anything upstream failed: ``report`` (all_done) alone would leave it green."""
        raise AirflowFailException("A task failed (see the quality gate above): failing the DAG run")

    [wait, report(wait.output)] >> watcher()
