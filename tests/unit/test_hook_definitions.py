"""RetellHook's definition writes over respx: bodies checked before any request, each a thin runner call."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from _retell_helpers import BASE_URL, LLM_ENGINE, page

from airflow_provider_retell.definition_ops import CREATE_PATH, LIST_PATH
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.hooks.retell import RetellHook

DEFINITION = {"name": "refund", "user_prompt": "You want a refund.", "metrics": ["offers a refund"]}
STORED = {
    "test_case_definition_id": "tcd_1",
    **DEFINITION,
    "response_engine": {"type": "retell-llm", "llm_id": "llm_1"},
}


@pytest.fixture
def hook(retell_unit_conn: str):
    h = RetellHook(retell_conn_id=retell_unit_conn)
    yield h
    h.close()


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def test_create_lists_then_posts_the_definition_with_the_engine(hook: RetellHook, api: Any) -> None:
    listing = api.get(LIST_PATH).respond(json=page([]))
    post = api.post(CREATE_PATH).respond(201, json=STORED)
    created = hook.create_test_case_definition(LLM_ENGINE, DEFINITION)
    assert created.test_case_definition_id == "tcd_1"
    assert listing.call_count == 1
    assert "version" not in listing.calls[0].request.url.params
    assert json.loads(post.calls[0].request.content) == {
        **DEFINITION,
        "response_engine": STORED["response_engine"],
    }


async def test_the_async_twins_run_the_same_operations(hook: RetellHook, api: Any) -> None:
    api.get(LIST_PATH).respond(json=page([]))
    api.post(CREATE_PATH).respond(201, json=STORED)
    put = api.put("/update-test-case-definition/tcd_1").respond(json={**STORED, "user_prompt": "new"})
    delete = api.delete("/delete-test-case-definition/tcd_1").respond(204)
    try:
        assert (await hook.acreate_test_case_definition(LLM_ENGINE, DEFINITION)).name == "refund"
        assert (await hook.aupdate_test_case_definition("tcd_1", {"user_prompt": "new"})).user_prompt == "new"
        assert await hook.adelete_test_case_definition("tcd_1") is None
    finally:
        await hook.aclose()
    assert json.loads(put.calls[0].request.content) == {"user_prompt": "new"}
    assert delete.call_count == 1


def test_a_delete_of_a_definition_gone_already_succeeds(hook: RetellHook, api: Any) -> None:
    api.delete("/delete-test-case-definition/tcd_1").respond(404, json={"message": "not found"})
    assert hook.delete_test_case_definition("tcd_1") is None


@pytest.mark.parametrize(
    ("definition", "named"),
    [
        ({**DEFINITION, "metrics": []}, "metrics"),
        ({"name": "x", "user_prompt": "u"}, "'metrics' is required"),
        ({**DEFINITION, "response_engine": LLM_ENGINE}, "unknown field 'response_engine'"),
        ({**DEFINITION, "dynamic_variables": {"order": 3}}, "dynamic_variables.order"),
        ({**DEFINITION, "tool_mocks": None}, "'tool_mocks' is null"),
        ("refund", "must be a dict"),
    ],
)
def test_a_bad_definition_fails_before_any_request(
    hook: RetellHook, api: Any, definition: Any, named: str
) -> None:
    with pytest.raises(RetellInputError, match="definition") as info:
        hook.create_test_case_definition(LLM_ENGINE, definition)
    assert named in str(info.value)
    assert api.calls.call_count == 0


@pytest.mark.parametrize(
    ("changes", "named"),
    [({}, "non-empty"), ({"metric": ["m"]}, "did you mean 'metrics'"), ({"llm_model": ""}, "llm_model")],
)
def test_bad_changes_fail_before_any_request(hook: RetellHook, api: Any, changes: Any, named: str) -> None:
    with pytest.raises(RetellInputError, match="changes") as info:
        hook.update_test_case_definition("tcd_1", changes)
    assert named in str(info.value)
    assert api.calls.call_count == 0


def test_a_bad_engine_or_id_fails_before_any_request(hook: RetellHook, api: Any) -> None:
    with pytest.raises(RetellInputError, match="response_engine"):
        hook.create_test_case_definition({"type": "custom-llm"}, DEFINITION)
    with pytest.raises(RetellInputError, match="test_case_definition_id"):
        hook.delete_test_case_definition("tcd/1")
    assert api.calls.call_count == 0


def test_a_dropped_create_reply_is_adopted_by_name(hook: RetellHook, api: Any) -> None:
    api.get(LIST_PATH).mock(
        side_effect=[httpx.Response(200, json=page([])), httpx.Response(200, json=page([STORED]))]
    )
    post = api.post(CREATE_PATH).mock(side_effect=httpx.RemoteProtocolError("Server disconnected"))
    created = hook.create_test_case_definition(LLM_ENGINE, DEFINITION)
    assert created.test_case_definition_id == "tcd_1"
    assert post.call_count == 1  # never re-sent by the runner's retries
