"""The reference stays complete: every parameter documented, every result key explained."""

from __future__ import annotations

import inspect
import re

import pytest

from tests.docs.samples import ROOT

CLASSES = [
    "airflow_provider_retell.operators.batch_test.RetellBatchTestOperator",
    "airflow_provider_retell.operators.test_case_definitions.RetellSyncTestCaseDefinitionsOperator",
    "airflow_provider_retell.sensors.batch_test.RetellBatchTestSensor",
    "airflow_provider_retell.triggers.batch_test.RetellBatchTestTrigger",
    "airflow_provider_retell.hooks.retell.RetellHook",
]


def _load(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


@pytest.mark.parametrize("path", CLASSES, ids=[c.rpartition(".")[2] for c in CLASSES])
def test_every_parameter_is_documented(path: str) -> None:
    """autodoc renders the class docstring's ``:param:`` fields: each argument needs one."""
    cls = _load(path)
    documented = set(re.findall(r":param (\w+):", cls.__doc__ or ""))
    parameters = {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and not (name == "kwargs" and cls.__name__ == "RetellHook")
    }
    assert parameters - documented == set()
    assert documented - parameters == set()


def test_every_public_hook_method_has_a_docstring() -> None:
    from airflow_provider_retell.hooks.retell import RetellHook

    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    listed = set(
        re.findall(r"\b(a?\w+)\b", reference.split(".. autoclass:: airflow_provider_retell.hooks")[1])
    )
    for name, member in vars(RetellHook).items():
        if name.startswith("_") or not callable(member) or name in ("run", "arun"):
            continue
        assert member.__doc__, f"RetellHook.{name} has no docstring"
        assert name in listed, f"RetellHook.{name} is not in docs/reference.md"


def test_the_result_page_explains_every_key() -> None:
    from airflow_provider_retell.contracts import BatchTestResult, FailedTestCase

    page = (ROOT / "docs" / "result.md").read_text(encoding="utf-8")
    keys_table = page.split("## Keys", 1)[1].split("A failed case", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", keys_table, re.M)) == set(BatchTestResult.__required_keys__)
    failed_table = page.split("A failed case", 1)[1].split("A flaky case", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", failed_table, re.M)) == set(FailedTestCase.__required_keys__)


def test_the_connection_page_lists_every_extra_with_its_default() -> None:
    from airflow_provider_retell.connection import EXTRAS

    page = (ROOT / "docs" / "connection.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| `?([^`|]+?)`? \|", page.split("## Extras", 1)[1], re.M))
    for key, spec in EXTRAS.items():
        assert float(rows[key]) == spec.default, key
    assert {"proxy", "allow_insecure_http"} <= set(rows)
