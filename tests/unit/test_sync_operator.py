"""RetellSyncTestCaseDefinitionsOperator: arguments and files are checked before any HTTP call."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import respx
from _retell_helpers import BASE_URL, FLOW_ENGINE, page
from airflow.sdk import DAG

from airflow_provider_retell.exceptions import RetellError, RetellInputError
from airflow_provider_retell.get_provider_info import get_provider_info
from airflow_provider_retell.operators.test_case_definitions import RetellSyncTestCaseDefinitionsOperator
from tests.fakes import fake_context

LIST = "/v2/list-test-case-definitions"
CASES = """
- name: refund
  user_prompt: You want a refund.
  metrics: [offers a refund]
- name: human
  user_prompt: You want a human.
  metrics: [offers a transfer]
"""


@pytest.fixture
def api():
    """respx with no routes: any request the test does not add fails it."""
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "cases.yaml").write_text(textwrap.dedent(CASES), encoding="utf-8")
    return folder


def operator(path: Any = "/nowhere", **kwargs: Any) -> RetellSyncTestCaseDefinitionsOperator:
    kwargs.setdefault("task_id", "sync")
    kwargs.setdefault("retell_conn_id", "retell_unit")
    if "response_engine" not in kwargs and "agent_id" not in kwargs:
        kwargs["response_engine"] = FLOW_ENGINE
    return RetellSyncTestCaseDefinitionsOperator(path=path, **kwargs)


def listed(def_id: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"test_case_definition_id": def_id, "name": name, "user_prompt": "p", "metrics": ["m"], **fields}


# -- construction (DAG parse) ------------------------------------------------------------------------


def test_exactly_one_of_engine_and_agent() -> None:
    for kwargs in ({"response_engine": None}, {"response_engine": FLOW_ENGINE, "agent_id": "agent_1"}):
        with pytest.raises(RetellInputError) as info:
            RetellSyncTestCaseDefinitionsOperator(task_id="sync", path="cases", **kwargs)
        assert "response_engine" in str(info.value)
        assert "agent_id" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"path": None}, "path"),
        ({"path": ""}, "path"),
        ({"path": "  "}, "path"),
        ({"path": ["cases"]}, "path"),
        ({"prune": "yes"}, "prune"),
        ({"prune": 1}, "prune"),
        ({"dry_run": None}, "dry_run"),
        ({"dry_run": "False"}, "dry_run"),
        ({"response_engine": {"type": "custom-llm"}}, "response_engine"),
        ({"agent_id": "agent 1", "response_engine": None}, "agent_id"),
        ({"agent_id": "agent_1", "agent_version": -1, "response_engine": None}, "agent_version"),
        ({"agent_version": 2}, "agent_version"),
    ],
)
def test_a_bad_literal_argument_fails_at_parse(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(RetellInputError) as info:
        operator(**kwargs)
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)


def test_templated_arguments_wait_for_rendering() -> None:
    op = operator(path="{{ params.path }}", prune="{{ params.prune }}", dry_run="{{ params.dry_run }}")
    assert op.template_fields == (
        "path",
        "response_engine",
        "agent_id",
        "agent_version",
        "prune",
        "is_dry_run",
    )
    assert (op.path, op.prune, op.is_dry_run) == (
        "{{ params.path }}",
        "{{ params.prune }}",
        "{{ params.dry_run }}",
    )


def test_the_operator_is_listed_in_the_provider_info() -> None:
    modules = get_provider_info()["operators"][0]["python-modules"]
    assert "airflow_provider_retell.operators.test_case_definitions" in modules


# -- execute: still no request ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "named"),
    [
        ("path", 3, "path"),
        ("prune", "True", "prune"),
        ("is_dry_run", "False", "dry_run"),
        ("agent_id", 7, "agent_id"),
    ],
)
def test_a_rendered_value_of_the_wrong_type_fails_before_any_request(
    api: Any, retell_unit_conn: str, attribute: str, value: Any, named: str
) -> None:
    op = operator(path="{{ p }}", prune="{{ p }}", dry_run="{{ p }}")
    op.path, op.prune, op.is_dry_run = "/nowhere", False, False
    if attribute == "agent_id":
        op.response_engine = None
    setattr(op, attribute, value)
    with pytest.raises(RetellInputError, match=named):
        op.execute(fake_context())
    assert api.calls.call_count == 0


def test_invalid_files_fail_naming_file_entry_and_field_before_any_request(
    api: Any, retell_unit_conn: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text("- name: refund\n  user_prompt: hi\n  metric: [x]\n", encoding="utf-8")
    with pytest.raises(RetellInputError) as info:
        operator(path=str(tmp_path)).execute(fake_context())
    message = str(info.value)
    assert f"{tmp_path / 'bad.yaml'}:3" in message
    assert "entry 1 'refund'" in message
    assert "did you mean 'metrics'" in message
    assert api.calls.call_count == 0


def test_a_relative_path_needs_a_dag_file(api: Any, retell_unit_conn: str) -> None:
    with pytest.raises(RetellInputError, match="relative"):
        operator(path="cases").execute(fake_context())
    assert api.calls.call_count == 0


def test_a_relative_path_starts_at_the_dag_files_folder(
    api: Any, retell_unit_conn: str, tmp_path: Path
) -> None:
    dag_file = tmp_path / "dags" / "sync.py"
    dag_file.parent.mkdir()
    dag_file.write_text("# the DAG file\n", encoding="utf-8")
    with DAG(dag_id="sync_relative", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        op = operator(path="retell_tests")
    dag.fileloc = str(dag_file)
    with pytest.raises(RetellInputError) as info:
        op.execute(fake_context())
    assert str(tmp_path / "dags" / "retell_tests") in str(info.value)
    assert api.calls.call_count == 0


# -- execute: reads only -----------------------------------------------------------------------------


def test_a_dry_run_reads_and_sends_no_write(api: Any, retell_unit_conn: str, cases: Path) -> None:
    api.get(LIST).respond(json=page([listed("tcd_h", "human", user_prompt="You want a human.")]))
    context = fake_context()
    result = operator(path=str(cases), dry_run=True).execute(context)
    assert result == {
        "created": ["refund"],
        "updated": ["human"],  # metrics differ
        "deleted": [],
        "unchanged": [],
        "test_case_definition_ids": ["tcd_h"],  # the ids that exist today
    }
    assert context["ti"].pushed == [("test_case_definition_ids", ["tcd_h"])]
    assert [c.request.method for c in api.calls] == ["GET"]
    assert context["task_state_store"].data == {}


def test_two_definitions_with_one_name_on_the_engine_fail_by_name(
    api: Any, retell_unit_conn: str, cases: Path
) -> None:
    api.get(LIST).respond(json=page([listed("tcd_1", "refund"), listed("tcd_2", "refund")]))
    with pytest.raises(RetellInputError) as info:
        operator(path=str(cases)).execute(fake_context())
    assert "'refund' (tcd_1, tcd_2)" in str(info.value)
    assert [c.request.method for c in api.calls] == ["GET"]


def test_without_a_task_state_store_no_create_is_sent(api: Any, retell_unit_conn: str, cases: Path) -> None:
    api.get(LIST).respond(json=page([]))
    context = fake_context()
    del context["task_state_store"]
    with pytest.raises(RetellError, match="task_state_store"):
        operator(path=str(cases)).execute(context)
    assert [c.request.method for c in api.calls] == ["GET"]
