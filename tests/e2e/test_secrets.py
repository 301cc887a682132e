"""The API key never leaks: not in logs, task log files, XCom, rendered fields or exception text.

Each run uses a distinctive key and fails on purpose in a different way; then everything Airflow
kept about the run, and everything printed, is scanned for the key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scripts.dagrun import run_dag, task_states
from tests.e2e.dag_support import POLL, task_attrs

pytestmark = pytest.mark.e2e


def _stored_text(run: Any) -> str:
    """Every XCom value and rendered template field Airflow stored for the run, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id)).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == run.run_id)
        ).all()
        parts = [json.dumps(x.value, default=str) for x in xcoms]
        parts += [json.dumps(r.rendered_fields, default=str) for r in rendered]
    assert parts, "nothing was stored for the run: the scan would prove nothing"
    return "\n".join(parts)


def _log_files_text(airflow_home: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace")
        for p in airflow_home.rglob("*")
        if p.is_file() and p.suffix in {".log", ""} and "logs" in p.parts
    )


def _assert_no_key(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text
        assert key[-12:] not in text  # not even a tail of it


def _run_and_scan(
    dag: Any, key: str, capfd: pytest.CaptureFixture[str], airflow_home: Path, conf: dict[str, Any]
) -> tuple[Any, str]:
    error_text = ""
    try:
        run = run_dag(dag, conf=conf, poll_interval=POLL)
    except Exception as exc:  # dag.test re-raises nothing today; if it ever does, scan that text too
        error_text = f"{exc!r} {exc}"
        raise
    out, err = capfd.readouterr()
    _assert_no_key(key, out, err, error_text, _stored_text(run), _log_files_text(airflow_home))
    return run, out + err


def test_wrong_key_fails_fast_and_never_shows_the_key(
    example_dags, retell_emulator, monkeypatch, capfd, airflow_home
):
    wrong_key = "sk-DISTINCTIVE-wrong-" + os.urandom(8).hex()
    conn = json.loads(retell_emulator.connection_json(max_retry_wait=0.05))
    conn["password"] = wrong_key
    monkeypatch.setenv("AIRFLOW_CONN_RETELL_DEFAULT", json.dumps(conn))
    dag = example_dags["retell_quality_gate"]

    run, output = _run_and_scan(dag, wrong_key, capfd, airflow_home, {"agent_id": "agent_support"})

    states = task_states(run)
    assert states["start_batch_test"] == "failed"
    assert "401" in output
    assert "API key was rejected" in output
    # permanent: one request, no hook retry and no task retry (the DAG has retries=2)
    assert retell_emulator.count("GET", "/get-agent/*") == 1
    assert retell_emulator.count("POST", "/create-batch-test") == 0


def test_gate_failure_never_shows_the_key(example_dags, retell_conn, capfd, airflow_home):
    run, output = _run_and_scan(
        example_dags["retell_quality_gate"],
        retell_conn.api_key,
        capfd,
        airflow_home,
        {"agent_id": "agent_booking"},
    )
    assert task_states(run)["wait_for_batch_test"] == "failed"
    assert "failed the quality gate" in output


def test_5xx_storm_never_shows_the_key(example_dags, retell_conn, capfd, airflow_home):
    retell_conn.add_fault("POST", "/create-batch-test", "status", status_code=503, times=100)
    dag = example_dags["retell_quality_gate"]
    with task_attrs(dag.get_task("start_batch_test"), retries=0):
        run, output = _run_and_scan(
            dag, retell_conn.api_key, capfd, airflow_home, {"agent_id": "agent_support"}
        )
    assert task_states(run)["start_batch_test"] == "failed"
    assert "HTTP 503" in output
    assert retell_conn.count("POST", "/create-batch-test") == 4  # 1 + max_retries=3, then the task fails


def test_key_is_masked_and_kept_out_of_reprs(retell_conn):
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_provider_retell.hooks.retell import RetellHook

    hook = RetellHook()
    assert retell_conn.api_key not in repr(hook.settings)
    assert retell_conn.api_key not in repr(hook)
    # loading the connection registered the key with Airflow's secrets masker
    assert retell_conn.api_key not in str(redact(f"header Bearer {retell_conn.api_key}"))
