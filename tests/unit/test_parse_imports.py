"""A DAG file that imports the operators and the sensor must not pay for the HTTP stack (or YAML files' models).

The hook, the models, the retry policy and the trigger are imported when a task runs; this pins that
down (the time it saves is measured in benchmarks/, not asserted here).
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from airflow.sdk import DAG
import airflow_provider_retell.operators.batch_test, airflow_provider_retell.sensors.batch_test
import airflow_provider_retell.operators.test_case_definitions
print(" ".join(sorted(m for m in sys.modules if m.startswith("airflow_provider_retell"))))
"""


def test_parsing_a_dag_imports_only_the_light_modules() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "airflow_provider_retell.operators.batch_test" in loaded
    assert "airflow_provider_retell.sensors.batch_test" in loaded
    assert "airflow_provider_retell.operators.test_case_definitions" in loaded
    heavy = {
        "airflow_provider_retell.hooks.retell",
        "airflow_provider_retell.connection",
        "airflow_provider_retell.models",
        "airflow_provider_retell.retry",
        "airflow_provider_retell.triggers.batch_test",
        "airflow_provider_retell.emulator.app",
        "airflow_provider_retell.definitions",
        "airflow_provider_retell.definition_ops",
    }
    assert not loaded & heavy, loaded & heavy
