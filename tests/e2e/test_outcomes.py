"""What a run leaves behind: regressions against earlier runs, a JUnit report, extra links on the
operator and the sensor (templated and mapped), and an Asset event only after a green gate."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from scripts.dagrun import sync_dag, task_instance, xcom
from tests.e2e.dag_support import POLL

pytestmark = pytest.mark.e2e

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).resolve().parents[1] / "data" / "junit.xsd"))
ENGINE = {"type": "retell-llm", "llm_id": "llm_reg"}
LINK_KEY = "_link_RetellAgentLink"


def regression_seed() -> dict[str, Any]:
    cases = [("tcd_flip", ["pass", "fail"]), ("tcd_stale", ["fail"]), ("tcd_ok", ["pass"])]
    return {
        "agents": [{"agent_id": "agent_reg", "response_engine": ENGINE}],
        "test_case_definitions": [
            {"test_case_definition_id": c, "name": c.upper(), "response_engine": ENGINE, "outcomes": o}
            for c, o in cases
        ],
    }


def gate_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        RetellBatchTestOperator(task_id="gate", wait_for_completion=True, poll_interval=POLL, **kwargs)
    return sync_dag(dag)


def test_a_case_that_flips_is_a_regression_and_an_old_failure_is_not(airflow_db, retell_conn, tmp_path):
    retell_conn.seed(regression_seed(), time_scale=0)
    report = str(tmp_path / "{{ run_id }}.xml")
    dag = gate_dag(
        "e2e_regressions", agent_id="agent_reg", baseline="previous", max_failures=None, report_path=report
    )

    first = dag.test()
    assert first.state == "success"
    result = xcom(first, "gate")
    assert result["regressions"] == []
    assert sorted(c["test_case_definition_id"] for c in result["new_test_cases"]) == [
        "tcd_flip",
        "tcd_ok",
        "tcd_stale",
    ]
    SCHEMA.validate(Path(result["report_path"]).read_text())

    second = dag.test()  # tcd_flip passed last time and fails now; tcd_stale failed both times
    assert second.state == "failed"
    result = xcom(second, "gate")
    assert [c["test_case_definition_id"] for c in result["regressions"]] == ["tcd_flip"]
    assert result["gate_passed"] is False
    assert result["gate_reasons"] == ["1 regressed since the baseline, more than max_regressions=0"]
    assert result["baseline_batch_test_ids"] == [xcom(first, "gate")["batch_test_id"]]
    assert result["report_path"] != xcom(first, "gate")["report_path"]  # {{ run_id }}: one file per run
    document = Path(result["report_path"]).read_text()
    SCHEMA.validate(document)  # written before the failed gate raised
    assert 'name="regressions" value="tcd_flip"' in document
    assert task_instance(second, "gate").try_number == 1

    stale = gate_dag(
        "e2e_no_new_failures",
        agent_id="agent_reg",
        test_case_definition_ids=["tcd_stale", "tcd_ok"],
        baseline="previous",
        max_failures=None,
    )
    run = stale.test()  # "no new failures": tcd_stale was already failing
    assert run.state == "success"
    result = xcom(run, "gate")
    assert (result["fail_count"], result["regressions"], result["gate_passed"]) == (1, [], True)


def test_a_given_batch_as_the_baseline(airflow_db, retell_conn):
    retell_conn.seed(regression_seed(), time_scale=0)
    first = gate_dag("e2e_baseline_first", agent_id="agent_reg", max_failures=None).test()
    baseline_id = xcom(first, "gate")["batch_test_id"]
    run = gate_dag("e2e_baseline_given", agent_id="agent_reg", baseline=baseline_id, max_failures=None).test()
    result = xcom(run, "gate")
    assert result["baseline_batch_test_ids"] == [baseline_id]
    assert [c["test_case_definition_id"] for c in result["regressions"]] == ["tcd_flip"]


def test_extra_links_on_the_operator_and_the_sensor_templated_and_mapped(airflow_db, retell_conn):
    from airflow.sdk import DAG

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
    from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

    with DAG(
        dag_id="e2e_links", schedule=None, start_date=datetime(2026, 1, 1), params={"agent": "agent_support"}
    ) as dag:
        start = RetellBatchTestOperator(task_id="start", agent_id="{{ params.agent }}")
        RetellBatchTestSensor(
            task_id="wait",
            batch_test_id=start.output,
            agent_id=start.output["agent_id"],  # the operator's XCom key agent_id
            poke_interval=POLL,
            deferrable=True,
        )
        RetellBatchTestOperator.partial(
            task_id="mapped", wait_for_completion=True, poll_interval=POLL, max_failures=None, max_errors=None
        ).expand(agent_id=["agent_support", "agent_booking"])
        RetellBatchTestOperator(
            task_id="engine",
            response_engine={"type": "conversation-flow", "conversation_flow_id": "cf_support"},
        )
    run = sync_dag(dag).test()

    assert run.state == "success"
    page = "https://dashboard.retellai.com/agents/{}"
    assert xcom(run, "start", LINK_KEY) == page.format("agent_support")
    assert xcom(run, "start", "agent_id") == "agent_support"
    assert xcom(run, "wait", LINK_KEY) == page.format("agent_support")
    assert xcom(run, "wait")["url"] == page.format("agent_support")
    assert [xcom(run, "mapped", LINK_KEY, map_index=i) for i in (0, 1)] == [
        page.format("agent_support"),
        page.format("agent_booking"),
    ]
    assert not xcom(run, "engine", LINK_KEY)  # an engine run has no agent: no link, not a broken one


def _asset_events(uri: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
        )
        rows = session.scalars(query.order_by(AssetEvent.id)).all()
        return [row.extra for row in rows]


def _queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).where(AssetDagRunQueue.target_dag_id == dag_id))


def test_an_asset_event_only_after_a_green_gate(airflow_db, example_dags, retell_conn):
    from airflow.models.dag import DagModel
    from airflow.sdk import DAG, Asset
    from airflow.utils.session import create_session

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    with create_session() as session:  # the scheduler queues a consumer only when it is unpaused
        session.get(DagModel, "retell_release_train_deploy").is_paused = False
    uri = "retell://agent/agent_support"
    before = len(_asset_events(uri))

    red_asset = Asset("retell://agent/agent_booking")
    with DAG(dag_id="e2e_red_gate", schedule=None, start_date=datetime(2026, 1, 1)) as red:
        RetellBatchTestOperator(
            task_id="gate_agent",
            agent_id="agent_booking",
            wait_for_completion=True,
            poll_interval=POLL,
            outlets=[red_asset],
        )
    assert sync_dag(red).test().state == "failed"
    assert _asset_events(red_asset.uri) == []  # a failed gate emits nothing

    train = example_dags["retell_release_train"]
    train.get_task("gate_agent").poll_interval = POLL
    run = train.test()
    assert run.state == "success"
    (extra,) = _asset_events(uri)[before:]
    result = xcom(run, "gate_agent")
    assert extra["batch_test_ids"] == result["batch_test_ids"]
    assert (extra["pass_count"], extra["total_count"], extra["regressions"]) == (8, 8, [])
    assert _queued_for("retell_release_train_deploy") >= 1  # the deploy DAG is queued by the green gate


def test_mapped_gates_emit_through_an_asset_alias(airflow_db, retell_conn):
    from airflow.sdk import DAG, AssetAlias

    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator

    with DAG(dag_id="e2e_alias", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        RetellBatchTestOperator.partial(
            task_id="gate", wait_for_completion=True, poll_interval=POLL, outlets=[AssetAlias("retell-gates")]
        ).expand(agent_id=["agent_support", "agent_booking"])
    run = sync_dag(dag).test()

    assert [task_instance(run, "gate", i).state for i in (0, 1)] == ["success", "failed"]
    (extra,) = [
        e
        for e in _asset_events("retell://agent/agent_support")
        if e.get("batch_test_ids") == xcom(run, "gate", map_index=0)["batch_test_ids"]
    ]
    assert extra["pass_count"] == 8
    assert _asset_events("retell://agent/agent_booking") == []  # its gate failed: no event
