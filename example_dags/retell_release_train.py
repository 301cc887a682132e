"""A release train: the agent ships only after a green gate, in another DAG that waits for it.

``retell_release_train`` gates the agent (no regression against the previous runs, a JUnit report
for the CI that shows test reports) and, only when the gate passes, emits an event on the Asset
``retell://agent/<id>`` whose ``extra`` carries the summary. ``retell_release_train_deploy`` is
scheduled on that Asset: it runs after every green gate, reads the summary from its triggering
event and "deploys". A failed gate fails the task: no event, no deploy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

AGENT_ID = "agent_support"
AGENT_ASSET = Asset(f"retell://agent/{AGENT_ID}")

with DAG(
    dag_id="retell_release_train",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["retell", "release"],
) as dag:
    RetellBatchTestOperator(
        task_id="gate_agent",
        agent_id=AGENT_ID,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=30,
        rerun_failed=1,  # a case that flakes once does not stop the train
        baseline="previous",  # ...but one that passed last time and fails now does
        report_path="/tmp/retell-reports/{{ dag.dag_id }}/{{ run_id }}/{{ ti.map_index }}.xml",
        outlets=[AGENT_ASSET],
    )

with DAG(
    dag_id="retell_release_train_deploy",
    schedule=[AGENT_ASSET],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["retell", "release"],
) as deploy_dag:

    @task
    def deploy(triggering_asset_events: Any = None) -> dict[str, Any]:
        (event,) = triggering_asset_events[AGENT_ASSET][-1:]
        summary = event.extra
        # Put the real deploy here; the summary says what passed.
        print(
            f"Deploying {AGENT_ID}: {summary['pass_count']}/{summary['total_count']} passed in "
            f"{', '.join(summary['batch_test_ids'])}, regressions: {summary['regressions'] or 'none'}"
        )
        return summary

    deploy()
