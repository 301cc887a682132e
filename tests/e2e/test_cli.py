"""The Airflow CLI sees the provider and its connection; the example DAGs parse cleanly and offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CLI_TIMEOUT = 120


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command with this session's Airflow environment (AIRFLOW_HOME, connection, ...)."""
    return subprocess.run(
        args,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=ROOT,
        check=False,
    )


def test_providers_list_shows_the_provider(airflow_db):
    proc = _run([AIRFLOW, "providers", "list", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    providers = {p["package_name"]: p for p in json.loads(proc.stdout)}
    assert "airflow-provider-retell" in providers


def test_connections_test_against_the_emulator(airflow_db, retell_conn):
    proc = _run([AIRFLOW, "connections", "test", "retell_default"], AIRFLOW__CORE__TEST_CONNECTION="Enabled")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Connection success!" in output
    assert retell_conn.api_key not in output
    # One authenticated read, and it authenticated: a 404 for the made-up id, not a 401.
    requests = retell_conn.requests()
    assert [(r["method"], r["status"]) for r in requests] == [("GET", 404)]


def test_connections_test_with_a_wrong_key_fails_clearly(airflow_db, retell_conn):
    wrong_key = "wrong-retell-key-0123456789"
    conn = json.loads(retell_conn.connection_json(max_retries=0))
    conn["password"] = wrong_key
    proc = _run(
        [AIRFLOW, "connections", "test", "retell_default"],
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW_CONN_RETELL_DEFAULT=json.dumps(conn),
    )
    output = proc.stdout + proc.stderr
    assert "Connection success!" not in output
    assert "Connection failed!" in output
    assert "401" in output
    assert wrong_key not in output
    assert retell_conn.api_key not in output
    assert [(r["method"], r["status"]) for r in retell_conn.requests()] == [("GET", 401)]


def test_connections_get_keeps_the_key_out_of_log_lines(airflow_db, retell_conn):
    proc = _run([AIRFLOW, "connections", "get", "retell_default", "-o", "json"])
    assert proc.returncode == 0, proc.stderr
    (conn,) = json.loads(proc.stdout)
    assert conn["conn_type"] == "retell"
    assert conn["host"] == retell_conn.url
    assert retell_conn.api_key not in proc.stderr  # every log line (Airflow logs to stderr)


def test_example_dags_parse_without_import_errors(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "retell_nightly_regression",
        "retell_quality_gate",
        "retell_ui_trigger",
        "retell_release_train",
        "retell_release_train_deploy",
        "retell_definitions_as_code",
    }
    assert {path.stem for path in EXAMPLE_DAGS.glob("*.py")} <= set(bag.dag_ids)  # each file names its DAG


PARSE_OFFLINE = textwrap.dedent(
    """
    import importlib.util, json, socket, sys

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:] or args))
        raise OSError("network access at DAG parse time")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    dag_ids = []
    for path in sys.argv[1:]:
        spec = importlib.util.spec_from_file_location("dagfile_" + path.rsplit("/", 1)[-1][:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from airflow.sdk import DAG
        dag_ids.extend(v.dag_id for v in vars(module).values() if isinstance(v, DAG))
    print(json.dumps({"dag_ids": dag_ids, "attempts": attempts}))
    """
)


def test_example_dags_touch_no_network_at_parse_time(airflow_db, retell_conn):
    """Each DAG file imports in a fresh interpreter with sockets refused, and Retell sees nothing."""
    files = sorted(str(path) for path in EXAMPLE_DAGS.glob("*.py"))
    retell_conn.clear_requests()
    proc = _run([sys.executable, "-c", PARSE_OFFLINE, *files])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {Path(f).stem for f in files} <= set(report["dag_ids"])
    assert report["attempts"] == []
    assert retell_conn.requests() == []


def test_demo_of_a_failing_gate_leads_with_the_verdict_and_keeps_tracebacks_in_the_log():
    """``make demo AGENT=agent_booking``: the summary and the verdict first, the failure plainly expected."""
    proc = subprocess.run(
        [sys.executable, "scripts/demo.py", "agent_booking"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("Quality gate: FAILED"))
    assert "pass 10, fail 1, error 1, total 12" in lines[verdict - 1]
    assert any("expected outcome for agent_booking" in line for line in lines[verdict:])
    log = Path(lines[-1].rsplit(": ", 1)[1])
    assert "RetellQualityGateError" in log.read_text()
