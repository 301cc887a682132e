"""RetellHook over respx: error mapping, retries, pagination, and reconciling an ambiguous create."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import respx
from _retell_helpers import API_KEY, BASE_URL, CONN_ID, FLOW_ENGINE, LLM_ENGINE, batch_json, page, run_json
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_retell.exceptions import (
    STATUS_MEANINGS,
    RetellAPIError,
    RetellInputError,
    RetellPermanentError,
)
from airflow_provider_retell.hooks.retell import RetellHook

GET_PATH = "/get-batch-test/tcbj_1"
LIST_BATCHES = "/v2/list-batch-tests"
CREATE = "/create-batch-test"
IDS = ["def_a", "def_b", "def_c"]


@pytest.fixture
def hook(retell_unit_conn: str):
    h = RetellHook(retell_conn_id=retell_unit_conn)
    yield h
    h.close()


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record tenacity's sync sleeps instead of sleeping (``tenacity.nap.sleep`` calls ``time.sleep``)."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def error_body(message: str = "Retell says no") -> dict[str, str]:
    return {"status": "error", "message": message}


def assert_key_hidden(*things: Any) -> None:
    for thing in things:
        assert API_KEY not in str(thing)
        assert API_KEY not in repr(thing)


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_permanent_statuses_fail_at_once(hook: RetellHook, api: respx.MockRouter, status: int) -> None:
    route = api.get(GET_PATH).respond(status, json=error_body("Retell says no"))
    with pytest.raises(RetellPermanentError) as info:
        hook.get_batch_test("tcbj_1")
    exc = info.value
    assert isinstance(exc, AirflowFailException)
    assert exc.status_code == status
    assert exc.method == "GET"
    assert exc.path == GET_PATH
    text = str(exc)
    assert "Retell says no" in text
    assert STATUS_MEANINGS[status] in text
    assert f"HTTP {status}" in text
    assert f"GET {GET_PATH}" in text
    assert route.call_count == 1
    assert_key_hidden(exc)


def test_permanent_error_with_non_json_body(hook: RetellHook, api: respx.MockRouter) -> None:
    api.get(GET_PATH).respond(404, text="")
    with pytest.raises(RetellPermanentError) as info:
        hook.get_batch_test("tcbj_1")
    assert "HTTP 404" in str(info.value)
    assert STATUS_MEANINGS[404] in str(info.value)


def test_error_with_json_that_is_not_an_object(hook: RetellHook, api: respx.MockRouter) -> None:
    api.get(GET_PATH).respond(400, json=["bad", "things"])
    with pytest.raises(RetellPermanentError, match="bad") as info:
        hook.get_batch_test("tcbj_1")
    assert info.value.status_code == 400


def test_error_with_html_body_is_truncated(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(502, text="<html>Bad gateway" + "x" * 1000 + "</html>")
    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test("tcbj_1")
    assert not isinstance(info.value, RetellPermanentError)
    assert "<html>Bad gateway" in info.value.message
    assert len(info.value.message) <= 500
    assert route.call_count == 3


def test_429_retry_after_is_honoured(set_conn, api: respx.MockRouter, sleeps: list[float]) -> None:
    set_conn("retell_slow", extra={"max_retries": 3, "max_retry_wait": 7})
    hook = RetellHook("retell_slow")
    route = api.get(GET_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "5"}, json=error_body("slow down")),
            httpx.Response(429, headers={"Retry-After": "30"}, json=error_body("slow down")),
            httpx.Response(200, json=batch_json()),
        ]
    )
    assert hook.get_batch_test("tcbj_1").id == "tcbj_1"
    assert route.call_count == 3
    assert sleeps == [5.0, 7.0]  # the second Retry-After is capped by max_retry_wait


def test_429_left_after_retries_is_a_plain_api_error(
    hook: RetellHook, api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.get(GET_PATH).respond(429, headers={"Retry-After": "0.5"}, json=error_body("rate limited"))
    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test("tcbj_1")
    assert not isinstance(info.value, RetellPermanentError)
    assert info.value.status_code == 429
    assert info.value.retry_after == 0.5
    assert route.call_count == 3  # max_retries=2
    assert sleeps == [0.001, 0.001]  # capped by max_retry_wait=0.001


def test_backoff_without_retry_after_is_capped(set_conn, api: respx.MockRouter, sleeps: list[float]) -> None:
    set_conn("retell_backoff", extra={"max_retries": 4, "max_retry_wait": 1.5})
    api.get(GET_PATH).respond(503)
    with pytest.raises(RetellAPIError):
        RetellHook("retell_backoff").get_batch_test("tcbj_1")
    assert len(sleeps) == 4
    assert all(0 < s <= 1.5 for s in sleeps)
    assert sleeps[-1] == 1.5  # 0.5 * 2**3 (+jitter) is above the cap


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409])
def test_transient_statuses_are_retried_then_raise(
    hook: RetellHook, api: respx.MockRouter, status: int
) -> None:
    route = api.get(GET_PATH).respond(status, json=error_body("edge trouble"))
    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test("tcbj_1")
    assert type(info.value) is RetellAPIError
    assert info.value.status_code == status
    assert "edge trouble" in str(info.value)
    assert route.call_count == 3  # 1 + max_retries


def test_transient_then_success(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=batch_json())])
    assert hook.get_batch_test("tcbj_1").is_complete
    assert route.call_count == 2


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
def test_transport_errors_are_retried_then_raise(
    hook: RetellHook, api: respx.MockRouter, error: type[Exception]
) -> None:
    route = api.get(GET_PATH).mock(side_effect=error("boom"))
    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test("tcbj_1")
    assert type(info.value) is RetellAPIError
    assert info.value.status_code is None
    assert error.__name__ in str(info.value)
    assert "no usable reply" in str(info.value)
    assert route.call_count == 3
    assert_key_hidden(info.value)


def test_zero_max_retries_means_one_attempt(set_conn, api: respx.MockRouter) -> None:
    set_conn("retell_once", extra={"max_retries": 0})
    route = api.get(GET_PATH).respond(503)
    with pytest.raises(RetellAPIError):
        RetellHook("retell_once").get_batch_test("tcbj_1")
    assert route.call_count == 1


def test_malformed_json_is_not_retried(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(200, content=b'{"test_case_batch_job_id": "tcbj_1", ')
    with pytest.raises(RetellAPIError, match="not valid JSON") as info:
        hook.get_batch_test("tcbj_1")
    assert not isinstance(info.value, RetellPermanentError)
    assert route.call_count == 1


def test_reply_missing_a_field_is_not_retried(hook: RetellHook, api: respx.MockRouter) -> None:
    payload = batch_json()
    del payload["total_count"]
    route = api.get(GET_PATH).respond(200, json=payload)
    with pytest.raises(RetellAPIError, match="total_count"):
        hook.get_batch_test("tcbj_1")
    assert route.call_count == 1


def test_requests_carry_auth_and_user_agent(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(200, json=batch_json())
    hook.get_batch_test("tcbj_1")
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"].startswith("airflow-provider-retell/")


@pytest.mark.parametrize("bad", ["", "  ", None, 5, "a/b", " tcbj_1"])
def test_bad_path_ids_fail_before_any_request(hook: RetellHook, api: respx.MockRouter, bad: Any) -> None:
    with pytest.raises(RetellInputError, match="batch_test_id"):
        hook.get_batch_test(bad)
    with pytest.raises(RetellInputError, match="batch_test_id"):
        hook.list_test_runs(bad)
    assert api.calls.call_count == 0


def test_get_agent_version_is_validated_and_sent(hook: RetellHook, api: respx.MockRouter) -> None:
    with pytest.raises(RetellInputError, match="agent_version"):
        hook.get_agent("agent_1", version=-1)
    assert api.calls.call_count == 0
    route = api.get("/get-agent/agent_1").respond(
        200, json={"agent_id": "agent_1", "response_engine": FLOW_ENGINE, "version": 3}
    )
    engine = hook.get_agent_response_engine("agent_1", version=3)
    assert engine.conversation_flow_id == "cf_1"
    assert route.calls.last.request.url.params["version"] == "3"


def test_test_connection(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get("/get-batch-test/airflow-connection-test").respond(404, json=error_body("not found"))
    ok, message = hook.test_connection()
    assert ok
    assert BASE_URL in message
    assert route.call_count == 1
    route.respond(401, json=error_body("bad key"))
    ok, message = hook.test_connection()
    assert not ok
    assert STATUS_MEANINGS[401] in message
    assert f"Retell at {BASE_URL} refused" in message
    assert API_KEY not in message
    route.mock(side_effect=httpx.ConnectError("connection refused"))
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith(f"Could not reach Retell at {BASE_URL}: ")
    assert "connection refused" in message
    assert API_KEY not in message


def test_test_connection_names_an_unusable_connection(set_conn) -> None:
    set_conn("retell_no_key", password="")
    ok, message = RetellHook("retell_no_key").test_connection()
    assert not ok
    assert "has no API key" in message
    set_conn("retell_bad_extra", extra={"timeout": 0})
    ok, message = RetellHook("retell_bad_extra").test_connection()
    assert not ok
    assert "extra 'timeout' must be a number, more than 0" in message
    assert API_KEY not in message


def test_api_key_never_in_errors_or_settings_repr(hook: RetellHook, api: respx.MockRouter) -> None:
    errors: list[BaseException] = []
    for reply in (
        httpx.Response(401, json=error_body("Invalid API key")),
        httpx.Response(500, text="internal"),
        httpx.Response(200, content=b"{oops"),
        httpx.Response(200, json={"unexpected": True}),
        httpx.ConnectError("connection refused"),
    ):
        api.routes.clear()
        api.get(GET_PATH).mock(side_effect=[reply] * 3)
        with pytest.raises(RetellAPIError) as info:
            hook.get_batch_test("tcbj_1")
        errors.append(info.value)
    assert_key_hidden(*errors, hook.settings)
    assert "api_key" not in repr(hook.settings)


# -- pagination -----------------------------------------------------------------------------------


def _paged_runs(request: httpx.Request) -> httpx.Response:
    pages = {
        None: (page([run_json("j1"), run_json("j2", "fail")], "k2")),
        "k2": (page([run_json("j3"), run_json("j4", "error")], "k3")),
        "k3": (page([run_json("j5", transcript_snapshot=[{"content": "hi"}])])),
    }
    return httpx.Response(200, json=pages[request.url.params.get("pagination_key")])


def test_list_test_runs_reads_every_page(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get("/v2/list-test-runs/tcbj_1").mock(side_effect=_paged_runs)
    runs = hook.list_test_runs("tcbj_1")
    assert [r.test_case_job_id for r in runs] == ["j1", "j2", "j3", "j4", "j5"]
    assert route.call_count == 3
    params = [dict(call.request.url.params) for call in route.calls]
    assert params == [
        {"limit": "50"},
        {"limit": "50", "pagination_key": "k2"},
        {"limit": "50", "pagination_key": "k3"},
    ]
    assert "transcript_snapshot" not in runs[-1].model_dump()


def test_pagination_stops_when_has_more_without_key(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get("/v2/list-test-runs/tcbj_1").respond(
        200, json={"items": [run_json("j1")], "has_more": True, "pagination_key": None}
    )
    assert len(hook.list_test_runs("tcbj_1")) == 1
    assert route.call_count == 1


def test_list_batch_tests_sends_the_engine_query(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(LIST_BATCHES).respond(200, json=page([batch_json()]))
    assert [b.id for b in hook.list_batch_tests(LLM_ENGINE)] == ["tcbj_1"]
    params = dict(route.calls.last.request.url.params)
    assert params == {"type": "retell-llm", "llm_id": "llm_1", "version": "2", "limit": "1000"}


def test_list_test_case_definitions_ignores_the_version(hook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get("/v2/list-test-case-definitions").respond(
        200, json=page([{"test_case_definition_id": "def_a", "name": "A", "brand_new": 1}])
    )
    defs = hook.list_test_case_definitions(LLM_ENGINE)
    assert [d.test_case_definition_id for d in defs] == ["def_a"]
    assert "version" not in route.calls.last.request.url.params


# -- create and reconcile -------------------------------------------------------------------------


def new_batch(
    batch_id: str, *, engine: dict[str, Any] | None = None, total: int = 3, age_s: float = 0
) -> dict:
    return batch_json(
        batch_id,
        status="in_progress",
        engine=engine or LLM_ENGINE,
        passed=0,
        total=total,
        created_ms=int((time.time() - age_s) * 1000),
        modified_ms=None,
    )


OLD = batch_json("tcbj_old", created_ms=int((time.time() - 86_400) * 1000))


def lists(api: respx.MockRouter, *pages: list[dict]) -> respx.Route:
    return api.get(LIST_BATCHES).mock(side_effect=[httpx.Response(200, json=page(p)) for p in pages])


def ran(api: respx.MockRouter, batch_id: str, ids: list[str] = IDS) -> respx.Route:
    """The runs a candidate batch lists: the create's own test cases unless told otherwise."""
    runs = [run_json(f"{batch_id}_{i}", "pending", definition_id=d) for i, d in enumerate(ids)]
    return api.get(f"/v2/list-test-runs/{batch_id}").respond(200, json=page(runs))


def test_create_sends_once_and_returns_the_batch(hook: RetellHook, api: respx.MockRouter) -> None:
    listing = lists(api, [OLD])
    create = api.post(CREATE).respond(201, json=new_batch("tcbj_new"))
    batch = hook.create_batch_test(LLM_ENGINE, IDS)
    assert batch.id == "tcbj_new"
    assert create.call_count == 1
    assert listing.call_count == 1
    assert json.loads(create.calls.last.request.content) == {
        "response_engine": LLM_ENGINE,
        "test_case_definition_ids": IDS,
    }


AMBIGUOUS = [
    httpx.Response(500, json=error_body("internal")),
    httpx.Response(502),
    httpx.Response(503),
    httpx.Response(504),
    httpx.ReadTimeout("read timed out"),
    httpx.RemoteProtocolError("server disconnected"),
]


@pytest.mark.parametrize(
    "failure", AMBIGUOUS, ids=lambda f: getattr(f, "status_code", None) or type(f).__name__
)
def test_lost_reply_adopts_the_one_new_matching_batch(
    hook: RetellHook, api: respx.MockRouter, failure: Any
) -> None:
    listing = lists(api, [OLD], [new_batch("tcbj_new"), OLD])
    ran(api, "tcbj_new")
    create = api.post(CREATE).mock(side_effect=[failure])
    batch = hook.create_batch_test(LLM_ENGINE, IDS)
    assert batch.id == "tcbj_new"
    assert create.call_count == 1
    assert listing.call_count == 2


@pytest.fixture
def unsettled_hook(set_conn) -> RetellHook:
    """A hook whose settle window is 0: a lost reply with no batch in the next listing is re-sent."""
    return RetellHook(
        set_conn(
            "retell_unsettled", extra={"max_retries": 2, "max_retry_wait": 0.001, "create_settle_seconds": 0}
        )
    )


def test_lost_reply_with_no_new_batch_after_the_settle_window_sends_again(
    unsettled_hook: RetellHook, api: respx.MockRouter
) -> None:
    listing = lists(api, [OLD], [OLD], [OLD])
    create = api.post(CREATE).mock(
        side_effect=[httpx.Response(503), httpx.Response(201, json=new_batch("tcbj_second"))]
    )
    assert unsettled_hook.create_batch_test(LLM_ENGINE, IDS).id == "tcbj_second"
    assert create.call_count == 2
    assert listing.call_count == 3  # before, after the lost reply, before the second create


def test_lost_replies_are_resent_at_most_max_retries_times(
    unsettled_hook: RetellHook, api: respx.MockRouter
) -> None:
    listing = api.get(LIST_BATCHES).respond(200, json=page([OLD]))
    create = api.post(CREATE).respond(503)
    with pytest.raises(RetellAPIError) as info:
        unsettled_hook.create_batch_test(LLM_ENGINE, IDS)
    assert info.value.status_code == 503
    assert "3 creates" in str(info.value)
    assert create.call_count == 3
    assert listing.call_count == 6


def test_429_on_create_is_sent_again_without_reconciling(hook: RetellHook, api: respx.MockRouter) -> None:
    listing = lists(api, [OLD], [OLD])
    create = api.post(CREATE).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0"}, json=error_body("rate limited")),
            httpx.Response(201, json=new_batch("tcbj_new")),
        ]
    )
    assert hook.create_batch_test(LLM_ENGINE, IDS).id == "tcbj_new"
    assert create.call_count == 2
    assert listing.call_count == 2  # a fresh snapshot before each send, never a reconciliation


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_connect_error_on_create_is_sent_again_without_reconciling(
    hook: RetellHook, api: respx.MockRouter, error: type[Exception]
) -> None:
    listing = lists(api, [OLD], [OLD])
    create = api.post(CREATE).mock(
        side_effect=[error("refused"), httpx.Response(201, json=new_batch("tcbj_new"))]
    )
    assert hook.create_batch_test(LLM_ENGINE, IDS).id == "tcbj_new"
    assert create.call_count == 2
    assert listing.call_count == 2


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_permanent_error_on_create_is_final(hook: RetellHook, api: respx.MockRouter, status: int) -> None:
    listing = lists(api, [OLD])
    create = api.post(CREATE).respond(status, json=error_body("nope"))
    with pytest.raises(RetellPermanentError) as info:
        hook.create_batch_test(LLM_ENGINE, IDS)
    assert STATUS_MEANINGS[status] in str(info.value)
    assert create.call_count == 1
    assert listing.call_count == 1


@pytest.mark.parametrize(
    ("engine", "ids", "argument"),
    [
        ({"type": "custom-llm", "llm_websocket_url": "wss://x"}, IDS, "response_engine"),
        ({"type": "retell-llm"}, IDS, "response_engine"),
        (LLM_ENGINE, "def_a", "test_case_definition_ids"),
        (LLM_ENGINE, [], "test_case_definition_ids"),
        (LLM_ENGINE, ["def_a", "def_a"], "test_case_definition_ids"),
        (LLM_ENGINE, ["def_a", ""], "test_case_definition_ids"),
        (LLM_ENGINE, ["def_a", 3], "test_case_definition_ids"),
        (LLM_ENGINE, [f"d{i}" for i in range(201)], "test_case_definition_ids"),
    ],
)
def test_create_validates_before_any_request(
    hook: RetellHook, api: respx.MockRouter, engine: Any, ids: Any, argument: str
) -> None:
    with pytest.raises(RetellInputError, match=argument):
        hook.create_batch_test(engine, ids)
    assert api.calls.call_count == 0


def test_create_accepts_exactly_200_ids(hook: RetellHook, api: respx.MockRouter) -> None:
    lists(api, [])
    create = api.post(CREATE).respond(201, json=new_batch("tcbj_big", total=200))
    assert hook.create_batch_test(LLM_ENGINE, [f"d{i}" for i in range(200)]).id == "tcbj_big"
    assert create.call_count == 1


# -- async twins ----------------------------------------------------------------------------------


@pytest.fixture
async def ahook(retell_unit_conn: str):
    h = RetellHook(retell_conn_id=retell_unit_conn)
    yield h
    await h.aclose()


async def test_aget_batch_test_retries_then_succeeds(ahook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=batch_json()),
        ]
    )
    batch = await ahook.aget_batch_test("tcbj_1")
    assert batch.is_complete
    assert route.call_count == 3


async def test_aget_batch_test_permanent_and_exhausted(ahook: RetellHook, api: respx.MockRouter) -> None:
    route = api.get(GET_PATH).respond(404, json=error_body("no such batch"))
    with pytest.raises(RetellPermanentError, match="no such batch") as info:
        await ahook.aget_batch_test("tcbj_1")
    assert info.value.status_code == 404
    assert route.call_count == 1
    route.respond(500)
    with pytest.raises(RetellAPIError) as info2:
        await ahook.aget_batch_test("tcbj_1")
    assert type(info2.value) is RetellAPIError
    assert route.call_count == 1 + 3
    route.respond(200, content=b"not json")
    with pytest.raises(RetellAPIError, match="not valid JSON"):
        await ahook.aget_batch_test("tcbj_1")
    assert route.call_count == 1 + 3 + 1
    assert_key_hidden(info.value, info2.value)


async def test_async_retry_after_is_capped(set_conn, api: respx.MockRouter) -> None:
    set_conn("retell_async_cap", extra={"max_retries": 1, "max_retry_wait": 0.05})
    hook = RetellHook("retell_async_cap")
    route = api.get(GET_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "100"}),
            httpx.Response(200, json=batch_json()),
        ]
    )
    started = time.monotonic()
    try:
        assert (await hook.aget_batch_test("tcbj_1")).id == "tcbj_1"
    finally:
        await hook.aclose()
    elapsed = time.monotonic() - started
    assert route.call_count == 2
    assert 0.04 <= elapsed < 2


async def test_alist_test_runs_reads_every_page(ahook: RetellHook, api: respx.MockRouter) -> None:
    ahook.page_size = 2
    route = api.get("/v2/list-test-runs/tcbj_1").mock(side_effect=_paged_runs)
    runs = await ahook.alist_test_runs("tcbj_1")
    assert [r.test_case_job_id for r in runs] == ["j1", "j2", "j3", "j4", "j5"]
    assert route.call_count == 3


async def test_acreate_lost_reply_adopts(ahook: RetellHook, api: respx.MockRouter) -> None:
    listing = lists(api, [OLD], [new_batch("tcbj_new"), OLD])
    ran(api, "tcbj_new")
    create = api.post(CREATE).mock(side_effect=[httpx.ReadTimeout("lost")])
    assert (await ahook.acreate_batch_test(LLM_ENGINE, IDS)).id == "tcbj_new"
    assert create.call_count == 1
    assert listing.call_count == 2


async def test_acreate_lost_reply_without_batch_sends_again(
    unsettled_hook: RetellHook, api: respx.MockRouter
) -> None:
    listing = lists(api, [OLD], [OLD], [OLD])
    create = api.post(CREATE).mock(
        side_effect=[httpx.Response(502), httpx.Response(201, json=new_batch("tcbj_2"))]
    )
    try:
        assert (await unsettled_hook.acreate_batch_test(LLM_ENGINE, IDS)).id == "tcbj_2"
    finally:
        await unsettled_hook.aclose()
    assert create.call_count == 2
    assert listing.call_count == 3


async def test_acreate_two_candidates_fail(ahook: RetellHook, api: respx.MockRouter) -> None:
    lists(api, [], [new_batch("tcbj_x"), new_batch("tcbj_y")])
    ran(api, "tcbj_x")
    ran(api, "tcbj_y")
    create = api.post(CREATE).mock(
        side_effect=[httpx.Response(500), httpx.Response(201, json=new_batch("z"))]
    )
    with pytest.raises(RetellPermanentError, match=r"tcbj_x.*tcbj_y"):
        await ahook.acreate_batch_test(LLM_ENGINE, IDS)
    assert create.call_count == 1


async def test_acreate_connect_error_sent_again_without_reconciling(
    ahook: RetellHook, api: respx.MockRouter
) -> None:
    listing = lists(api, [OLD], [OLD])
    create = api.post(CREATE).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=new_batch("tcbj_new"))]
    )
    assert (await ahook.acreate_batch_test(LLM_ENGINE, IDS)).id == "tcbj_new"
    assert create.call_count == 2
    assert listing.call_count == 2


def test_hook_rejects_bad_conn_id() -> None:
    for bad in ("", "  ", None):
        with pytest.raises(RetellInputError, match="retell_conn_id"):
            RetellHook(retell_conn_id=bad)  # type: ignore[arg-type]


def test_conn_id_constant() -> None:
    assert CONN_ID == "retell_unit"


@pytest.mark.parametrize("header", ["nan", "inf", "-3", "Wed, 21 Oct 2015 07:28:00 GMT", ""])
def test_odd_retry_after_headers_still_retry_with_a_bounded_wait(
    hook: RetellHook, api: respx.MockRouter, sleeps: list[float], header: str
) -> None:
    route = api.get(GET_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": header}),
            httpx.Response(200, json=batch_json()),
        ]
    )
    assert hook.get_batch_test("tcbj_1").id == "tcbj_1"
    assert route.call_count == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.001  # max_retry_wait
