"""A DAG file that imports and constructs the operators and the sensor must not pay for the HTTP stack.

Importing the three modules loads only them, the argument checks (``validation``, ``gate``), the
exceptions and the extra link. Constructing the tasks, as a DAG file does, checks the literal
arguments with those same modules and loads nothing more: the waiting core, the hook, the models,
YAML and XML load when a task runs. Run in a fresh interpreter, after what a DAG file imports from
``airflow.sdk`` anyway; the time this saves is measured in benchmarks/, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import datetime, json, sys
from airflow.sdk import DAG, BaseHook, BaseOperator, BaseSensorOperator, Param, task
base = set(sys.modules)
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.operators.test_case_definitions import RetellSyncTestCaseDefinitionsOperator
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
imported = set(sys.modules) - base
with DAG("parse", schedule=None, start_date=datetime.datetime(2024, 1, 1)):
    start = RetellBatchTestOperator(task_id="start", agent_id="agent_x", test_case_definition_ids=["tcd_1"])
    RetellBatchTestSensor(task_id="wait", batch_test_id=start.output, deferrable=True, min_pass_rate=0.9)
    RetellBatchTestSensor(task_id="wait_literal", batch_test_id=["tcbj_1"], baseline="previous")
    RetellBatchTestOperator(
        task_id="gate", agent_id="agent_x", wait_for_completion=True, deferrable=True,
        max_regressions=2, report_path="/reports/x.xml", rerun_failed=1,
    )
    RetellSyncTestCaseDefinitionsOperator(task_id="sync", path="/defs", agent_id="agent_x", prune=True)
constructed = set(sys.modules) - base
print(json.dumps({"imported": sorted(imported), "constructed": sorted(constructed)}))
"""

LIGHT = {
    "airflow_provider_retell.operators",
    "airflow_provider_retell.operators.batch_test",
    "airflow_provider_retell.operators.test_case_definitions",
    "airflow_provider_retell.sensors",
    "airflow_provider_retell.sensors.batch_test",
    "airflow_provider_retell.exceptions",
    "airflow_provider_retell.gate",
    "airflow_provider_retell.links",
    "airflow_provider_retell.validation",
}
#: Never loaded by a DAG parse: what runs a task, and the libraries only that needs.
HEAVY = {
    "airflow_provider_retell.waiting",
    "airflow_provider_retell.results",
    "airflow_provider_retell.hooks.retell",
    "airflow_provider_retell.connection",
    "airflow_provider_retell.transport",
    "airflow_provider_retell.models",
    "airflow_provider_retell.retry",
    "airflow_provider_retell.operations",
    "airflow_provider_retell.creating",
    "airflow_provider_retell.planning",
    "airflow_provider_retell.contracts",
    "airflow_provider_retell.verdict",
    "airflow_provider_retell.baselines",
    "airflow_provider_retell.reports",
    "airflow_provider_retell.definitions",
    "airflow_provider_retell.definition_ops",
    "airflow_provider_retell.triggers.batch_test",
    "airflow_provider_retell.emulator.app",
    "yaml",
    "xml.etree.ElementTree",
    "xmlschema",
}


def _loaded() -> dict[str, set[str]]:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    return {k: set(v) for k, v in json.loads(out.splitlines()[-1]).items()}


def test_a_dag_parse_loads_only_the_argument_checks_and_the_link() -> None:
    loaded = _loaded()
    ours = {m for m in loaded["imported"] if m.startswith("airflow_provider_retell.")}
    assert ours == LIGHT, sorted(ours ^ LIGHT)
    # Constructing the tasks checks their literal arguments with the modules already imported.
    assert {m for m in loaded["constructed"] if m.startswith("airflow_provider_retell.")} == ours
    assert not loaded["constructed"] & HEAVY, sorted(loaded["constructed"] & HEAVY)
    # pydantic, httpx and tenacity: whatever airflow.sdk has not loaded already, the provider does not add.
    third_party = {m.split(".")[0] for m in loaded["constructed"]}
    assert not third_party & {"pydantic", "httpx", "httpcore", "tenacity", "yaml"}, third_party


def test_template_fields_name_every_gate_parameter() -> None:
    from airflow_provider_retell.gate import GATE_PARAMS
    from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
    from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor

    for task in (RetellBatchTestOperator, RetellBatchTestSensor):
        assert set(GATE_PARAMS) <= set(task.template_fields)


TRIGGER = """
import json, sys
from airflow.triggers.base import BaseTrigger
base = set(sys.modules)
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
RetellBatchTestTrigger(batch_test_ids=["tcbj_1"], poll_interval=5, end_time=2e9, first_poll_at=1e9)
print(json.dumps(sorted(set(sys.modules) - base)))
"""


def test_the_triggerer_imports_the_trigger_without_the_http_stack() -> None:
    """The triggerer imports a trigger's module on its event loop: the hook and the models load in a
    worker thread when the trigger runs (``RUNTIME_MODULES``), so they never block the loop."""
    from airflow_provider_retell.triggers.batch_test import RUNTIME_MODULES

    out = subprocess.run([sys.executable, "-c", TRIGGER], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert {m for m in loaded if m.startswith("airflow_provider_retell.")} == {
        "airflow_provider_retell.triggers",
        "airflow_provider_retell.triggers.batch_test",
        "airflow_provider_retell.exceptions",
        "airflow_provider_retell.validation",
    }
    assert not loaded & set(RUNTIME_MODULES)
    assert not {m.split(".")[0] for m in loaded} & {"pydantic", "httpx", "httpcore", "tenacity", "yaml"}
