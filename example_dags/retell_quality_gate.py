"""Gate a release on Retell batch tests: publish the agent only when its simulated conversations pass.

``start_batch_test`` starts the batch and hands its id on at once; ``wait_for_batch_test`` waits in
the triggerer (no worker slot is held for the minutes a batch takes) and applies the gate;
``publish_agent`` runs only when the gate passed; ``report`` runs either way and reads the counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

with DAG(
    dag_id="retell_quality_gate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "agent_id": Param("agent_support", type="string", minLength=1, description="Retell agent to test"),
        "max_failures": Param(0, type=["null", "integer"], minimum=0, description="Failed cases allowed"),
    },
    tags=["retell", "quality-gate"],
) as dag:
    start = RetellBatchTestOperator(task_id="start_batch_test", agent_id="{{ params.agent_id }}")

    wait = RetellBatchTestSensor(
        task_id="wait_for_batch_test",
        batch_test_id=start.output,
        max_failures="{{ params.max_failures }}",
        max_errors=0,
        deferrable=True,
        poke_interval=30,
        timeout=timedelta(hours=1),
    )

    @task
    def publish_agent(result: dict[str, Any]) -> str:
        # Put the real release step here, e.g. publishing the agent version that just passed.
        print(
            f"Publishing: batch test {result['batch_test_id']} passed "
            f"{result['pass_count']}/{result['total_count']}"
        )
        return result["batch_test_id"]

    @task(trigger_rule="all_done")
    def report(result: dict[str, Any] | None) -> dict[str, Any] | None:
        if not result:
            print("No result: the batch test did not finish (see wait_for_batch_test's log)")
            return None
        verdict = "PASSED" if result["gate_passed"] else "FAILED: " + "; ".join(result["gate_reasons"])
        print(
            f"Retell batch test {result['batch_test_id']}: {result['pass_count']} passed, "
            f"{result['fail_count']} failed, {result['error_count']} errored of {result['total_count']}; "
            f"gate {verdict}"
        )
        return {
            k: result[k] for k in ("pass_count", "fail_count", "error_count", "total_count", "gate_passed")
        }

    publish_agent(wait.output)
    report(wait.output)
