"""The emulated Retell test API over real HTTP: happy paths, validation, pagination, timeline."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_retell.emulator import DEFAULT_SEED_PATH, load_seed
from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
FLAKY = {"type": "retell-llm", "llm_id": "llm_flaky"}
BOOKING_IDS = [f"tcd_booking_{i:02d}" for i in range(1, 13)]
SUPPORT_IDS = [f"tcd_support_{i:02d}" for i in range(1, 9)]
FLAKY_IDS = ["tcd_flaky_01", "tcd_flaky_02", "tcd_flaky_03"]


@pytest.fixture
def api(retell_emulator: RetellEmulator) -> Iterator[httpx.Client]:
    with retell_emulator.client() as client:
        yield client


def create(api: httpx.Client, engine: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    response = api.post(
        "/create-batch-test", json={"response_engine": engine, "test_case_definition_ids": ids}
    )
    assert response.status_code == 201, response.text
    return response.json()


def all_runs(api: httpx.Client, batch_id: str, limit: int = 50) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = api.get(f"/v2/list-test-runs/{batch_id}", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        runs += body["items"]
        if not body["has_more"]:
            assert "pagination_key" not in body
            return runs
        params["pagination_key"] = body["pagination_key"]


def wait_complete(api: httpx.Client, batch_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = api.get(f"/get-batch-test/{batch_id}").json()
        if batch["status"] == "complete":
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not complete")


def assert_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    for fragment in fragments:
        assert fragment in body["message"]


# ---------------------------------------------------------------------------------------- seed


def test_default_seed_has_the_documented_counts() -> None:
    seed = load_seed()
    assert load_seed(DEFAULT_SEED_PATH) == seed
    agents = {a["agent_id"]: a for a in seed["agents"]}
    assert set(agents) == {"agent_support", "agent_booking", "agent_flaky", "agent_custom"}
    assert agents["agent_support"]["response_engine"] == {**SUPPORT, "version": 1}
    assert agents["agent_booking"]["response_engine"] == {**BOOKING, "version": 2}
    assert agents["agent_flaky"]["response_engine"] == FLAKY
    assert agents["agent_custom"]["response_engine"]["type"] == "custom-llm"
    by_engine: dict[str, Counter[str]] = {}
    for d in seed["test_case_definitions"]:
        engine_id = d["response_engine"].get("llm_id") or d["response_engine"]["conversation_flow_id"]
        by_engine.setdefault(engine_id, Counter())["/".join(d["outcomes"])] += 1
    assert by_engine == {
        "cf_support": Counter({"pass": 8}),
        "llm_booking": Counter({"pass": 10, "fail": 1, "error": 1}),
        "llm_flaky": Counter({"pass": 2, "fail/pass": 1}),
    }


# ---------------------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
def test_missing_or_wrong_key_is_401_and_never_echoed(retell_emulator: RetellEmulator, headers: dict) -> None:
    for method, path in [
        ("GET", "/get-agent/agent_booking"),
        ("POST", "/create-batch-test"),
        ("GET", "/v2/list-batch-tests"),
    ]:
        response = httpx.request(
            method, retell_emulator.url + path, headers=headers, json={}, trust_env=False
        )
        assert response.status_code == 401
        assert response.json() == {"status": "error", "message": "Invalid API key"}
        assert retell_emulator.api_key not in response.text
    assert retell_emulator.count() == 3
    assert {e["status"] for e in retell_emulator.requests()} == {401}


def test_key_must_match_exactly(retell_emulator: RetellEmulator) -> None:
    url = retell_emulator.url + "/get-agent/agent_booking"
    ok = httpx.get(url, headers=retell_emulator.headers, trust_env=False)
    assert ok.status_code == 200
    longer = httpx.get(url, headers={"Authorization": f"Bearer {retell_emulator.api_key}x"}, trust_env=False)
    assert longer.status_code == 401
    lower = httpx.get(url, headers={"Authorization": f"bearer {retell_emulator.api_key}"}, trust_env=False)
    assert lower.status_code == 200


# ---------------------------------------------------------------------------------------- create


def test_create_batch_returns_201_and_fills_the_latest_version(api: httpx.Client) -> None:
    before = int(time.time() * 1000)
    batch = create(api, BOOKING, BOOKING_IDS)
    assert set(batch) == {
        "test_case_batch_job_id",
        "status",
        "response_engine",
        "pass_count",
        "fail_count",
        "error_count",
        "total_count",
        "creation_timestamp",
        "user_modified_timestamp",
    }
    assert batch["status"] == "in_progress"
    assert batch["response_engine"] == {**BOOKING, "version": 2}
    assert (batch["pass_count"], batch["fail_count"], batch["error_count"], batch["total_count"]) == (
        0,
        0,
        0,
        12,
    )
    assert before <= batch["creation_timestamp"] <= int(time.time() * 1000)
    assert batch["user_modified_timestamp"] == batch["creation_timestamp"]
    again = api.get(f"/get-batch-test/{batch['test_case_batch_job_id']}")
    assert again.status_code == 200
    assert again.json()["test_case_batch_job_id"] == batch["test_case_batch_job_id"]


def test_create_keeps_an_explicit_version(api: httpx.Client) -> None:
    batch = create(api, {**SUPPORT, "version": 0}, SUPPORT_IDS[:2])
    assert batch["response_engine"] == {**SUPPORT, "version": 0}
    assert batch["total_count"] == 2


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"test_case_definition_ids": ["tcd_booking_01"]}, 400, "response_engine"),
        ({"response_engine": BOOKING}, 400, "test_case_definition_ids"),
        ({"response_engine": BOOKING, "test_case_definition_ids": []}, 400, "1 to 200"),
        ({"response_engine": BOOKING, "test_case_definition_ids": "tcd_booking_01"}, 400, "array"),
        (
            {"response_engine": BOOKING, "test_case_definition_ids": [f"x{i}" for i in range(201)]},
            400,
            "1 to 200",
        ),
        (
            {"response_engine": BOOKING, "test_case_definition_ids": ["tcd_booking_01", "tcd_booking_01"]},
            400,
            "duplicate",
        ),
        (
            {"response_engine": {"type": "retell-llm"}, "test_case_definition_ids": ["tcd_booking_01"]},
            400,
            "llm_id",
        ),
        (
            {"response_engine": {"type": "nope", "llm_id": "x"}, "test_case_definition_ids": ["a"]},
            400,
            "type",
        ),
        ({"response_engine": {**BOOKING, "version": "2"}, "test_case_definition_ids": ["a"]}, 400, "version"),
        (
            {
                "response_engine": {"type": "custom-llm", "llm_websocket_url": "wss://example.invalid/llm"},
                "test_case_definition_ids": ["tcd_booking_01"],
            },
            400,
            "custom LLM cannot be tested",
        ),
        ({"response_engine": BOOKING, "test_case_definition_ids": ["tcd_nope"]}, 404, "tcd_nope"),
        (
            {"response_engine": BOOKING, "test_case_definition_ids": ["tcd_booking_01", "tcd_support_01"]},
            400,
            "tcd_support_01",
        ),
        (
            {
                "response_engine": {"type": "retell-llm", "llm_id": "llm_nope"},
                "test_case_definition_ids": ["a"],
            },
            404,
            "llm_nope",
        ),
        (
            {
                "response_engine": {"type": "conversation-flow", "conversation_flow_id": "cf_x"},
                "test_case_definition_ids": ["a"],
            },
            404,
            "cf_x",
        ),
        (
            {"response_engine": {**BOOKING, "version": 7}, "test_case_definition_ids": ["tcd_booking_01"]},
            404,
            "version 7",
        ),
        ([1, 2], 400, "object"),
    ],
)
def test_create_validation(
    api: httpx.Client, retell_emulator: RetellEmulator, body: Any, status: int, fragment: str
) -> None:
    assert_error(api.post("/create-batch-test", json=body), status, fragment)
    listed = api.get("/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_booking"}).json()
    assert listed["items"] == []


def test_create_rejects_missing_or_invalid_json_body(api: httpx.Client) -> None:
    assert_error(api.post("/create-batch-test"), 400, "required")
    assert_error(
        api.post("/create-batch-test", content=b"{nope", headers={"content-type": "application/json"}),
        400,
        "JSON",
    )


def test_unknown_endpoint_is_404_in_retell_shape(api: httpx.Client) -> None:
    assert_error(api.get("/v2/list-nothing"), 404)
    assert_error(api.get("/get-batch-test/tcbj_missing"), 404, "tcbj_missing")
    assert_error(api.get("/get-test-run/tcj_missing"), 404, "tcj_missing")
    assert_error(api.get("/v2/list-test-runs/tcbj_missing"), 404, "tcbj_missing")


# ---------------------------------------------------------------------------------------- timeline


def test_batch_progresses_and_counts_match_the_runs(
    api: httpx.Client, retell_emulator: RetellEmulator
) -> None:
    retell_emulator.reset(time_scale=0.02)  # waves of 1.2 s: every state is seen even on a slow machine
    batch = create(api, BOOKING, BOOKING_IDS)
    batch_id = batch["test_case_batch_job_id"]
    seen_statuses: set[str] = set()
    previous_modified = batch["user_modified_timestamp"]
    deadline = time.monotonic() + 10
    while True:
        runs = api.get(f"/v2/list-test-runs/{batch_id}").json()["items"]
        batch = api.get(f"/get-batch-test/{batch_id}").json()
        later = Counter(r["status"] for r in api.get(f"/v2/list-test-runs/{batch_id}").json()["items"])
        statuses = Counter(r["status"] for r in runs)
        seen_statuses |= set(statuses)
        # the batch was read between two reads of its runs: its counts lie between theirs
        for outcome in ("pass", "fail", "error"):
            assert statuses[outcome] <= batch[f"{outcome}_count"] <= later[outcome]
        assert batch["total_count"] == len(runs) == 12
        assert batch["user_modified_timestamp"] >= previous_modified
        previous_modified = batch["user_modified_timestamp"]
        finished = sum(statuses[s] for s in ("pass", "fail", "error"))
        # concurrency 5 in definition order: runs finish in waves of 5, in order
        assert [r["status"] in ("pass", "fail", "error") for r in runs] == [True] * finished + [False] * (
            12 - finished
        )
        assert statuses["in_progress"] <= 5
        if batch["status"] == "complete" and finished == 12:
            break
        assert time.monotonic() < deadline, "batch did not complete"
        time.sleep(0.03)
    assert {"in_progress", "pending", "pass"} <= seen_statuses
    assert (batch["pass_count"], batch["fail_count"], batch["error_count"]) == (10, 1, 1)
    assert batch["user_modified_timestamp"] == batch["creation_timestamp"] + 3 * 1200
    for run in runs:
        assert run["result_explanation"]
        assert isinstance(run["transcript_snapshot"], list)
        assert run["transcript_snapshot"]
    failed = {r["test_case_definition_id"]: r for r in runs if r["status"] != "pass"}
    assert set(failed) == {"tcd_booking_07", "tcd_booking_11"}
    assert failed["tcd_booking_07"]["status"] == "fail"
    assert "double-booking" in failed["tcd_booking_07"]["result_explanation"]
    assert failed["tcd_booking_11"]["status"] == "error"
    assert failed["tcd_booking_07"]["test_case_definition_snapshot"]["name"] == "Double-booking is prevented"


def test_counts_equal_runs_within_one_read(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    """With a frozen-in-time batch (huge time scale) the batch and its runs agree exactly."""
    retell_emulator.reset(time_scale=1000)
    batch = create(api, BOOKING, BOOKING_IDS)
    runs = all_runs(api, batch["test_case_batch_job_id"], limit=5)
    assert [r["status"] for r in runs] == ["in_progress"] * 5 + ["pending"] * 7
    assert all("result_explanation" not in r and r.get("transcript_snapshot") is None for r in runs)
    assert [r["test_case_definition_id"] for r in runs] == BOOKING_IDS
    one = api.get(f"/get-test-run/{runs[6]['test_case_job_id']}").json()
    assert one == runs[6]


def test_time_scale_zero_completes_at_creation(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.reset(time_scale=0)
    batch = create(api, SUPPORT, SUPPORT_IDS)
    assert batch["status"] == "complete"
    assert (batch["pass_count"], batch["total_count"]) == (8, 8)
    assert batch["user_modified_timestamp"] == batch["creation_timestamp"]


def test_flaky_case_fails_first_then_passes(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.reset(time_scale=0)
    first = create(api, FLAKY, FLAKY_IDS)
    second = create(api, FLAKY, FLAKY_IDS)
    third = create(api, FLAKY, ["tcd_flaky_03"])
    assert (first["pass_count"], first["fail_count"]) == (2, 1)
    assert (second["pass_count"], second["fail_count"]) == (3, 0)
    assert (third["pass_count"], third["fail_count"]) == (1, 0)
    runs = all_runs(api, first["test_case_batch_job_id"])
    flaky = next(r for r in runs if r["test_case_definition_id"] == "tcd_flaky_03")
    assert flaky["status"] == "fail"
    assert "timed out" in flaky["result_explanation"]


def test_reset_restores_outcome_counters_and_clears_batches(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.reset(time_scale=0)
    assert create(api, FLAKY, FLAKY_IDS)["fail_count"] == 1
    retell_emulator.reset(time_scale=0)
    listed = api.get("/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_flaky"}).json()
    assert listed == {"items": [], "has_more": False}
    assert create(api, FLAKY, FLAKY_IDS)["fail_count"] == 1


# ---------------------------------------------------------------------------------------- listing


def test_list_batch_tests_newest_first_with_pagination(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.reset(time_scale=0)
    created = [create(api, BOOKING, BOOKING_IDS[: i + 1])["test_case_batch_job_id"] for i in range(5)]
    create(api, SUPPORT, SUPPORT_IDS[:1])  # another engine: never listed below
    seen: list[str] = []
    params: dict[str, Any] = {"type": "retell-llm", "llm_id": "llm_booking", "limit": 2}
    pages = 0
    while True:
        body = api.get("/v2/list-batch-tests", params=params).json()
        pages += 1
        assert len(body["items"]) <= 2
        seen += [b["test_case_batch_job_id"] for b in body["items"]]
        if not body["has_more"]:
            assert "pagination_key" not in body
            break
        params["pagination_key"] = body["pagination_key"]
    assert pages == 3
    assert seen == list(reversed(created))
    default = api.get("/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_booking"}).json()
    assert len(default["items"]) == 5
    assert default["has_more"] is False
    by_version = api.get(
        "/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_booking", "version": 2}
    ).json()
    assert len(by_version["items"]) == 5
    other_version = api.get(
        "/v2/list-batch-tests", params={"type": "retell-llm", "llm_id": "llm_booking", "version": 1}
    ).json()
    assert other_version["items"] == []
    flows = api.get(
        "/v2/list-batch-tests", params={"type": "conversation-flow", "conversation_flow_id": "cf_support"}
    )
    assert [b["total_count"] for b in flows.json()["items"]] == [1]


def test_list_batch_tests_without_version_means_the_latest_version(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.reset(time_scale=0)
    old = create(api, {**BOOKING, "version": 1}, BOOKING_IDS[:1])["test_case_batch_job_id"]
    older = create(api, {**BOOKING, "version": 0}, BOOKING_IDS[:2])["test_case_batch_job_id"]
    latest = create(api, BOOKING, BOOKING_IDS[:3])["test_case_batch_job_id"]  # records version 2
    explicit = create(api, {**BOOKING, "version": 2}, BOOKING_IDS[:4])["test_case_batch_job_id"]

    def listed(**extra: Any) -> list[str]:
        body = api.get("/v2/list-batch-tests", params={**BOOKING, **extra}).json()
        return [b["test_case_batch_job_id"] for b in body["items"]]

    assert listed() == [explicit, latest]  # newest first, latest version (2) only
    assert listed(version=2) == [explicit, latest]
    assert listed(version=1) == [old]
    assert listed(version=0) == [older]
    # an engine the seed names without any version: its unversioned batches are its latest
    unversioned = create(api, FLAKY, FLAKY_IDS[:1])["test_case_batch_job_id"]
    pinned = create(api, {**FLAKY, "version": 3}, FLAKY_IDS[:1])["test_case_batch_job_id"]
    flaky = api.get("/v2/list-batch-tests", params=FLAKY).json()["items"]
    assert [b["test_case_batch_job_id"] for b in flaky] == [unversioned]
    pinned_listing = api.get("/v2/list-batch-tests", params={**FLAKY, "version": 3}).json()["items"]
    assert [b["test_case_batch_job_id"] for b in pinned_listing] == [pinned]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "type"),
        ({"llm_id": "llm_booking"}, 400, "type"),
        ({"type": "custom-llm", "llm_id": "x"}, 400, "type"),
        ({"type": "retell-llm"}, 400, "llm_id"),
        ({"type": "conversation-flow", "llm_id": "llm_booking"}, 400, "conversation_flow_id"),
        ({"type": "retell-llm", "llm_id": "llm_nope"}, 404, "llm_nope"),
        ({"type": "retell-llm", "llm_id": "llm_booking", "limit": 0}, 400, "limit"),
        ({"type": "retell-llm", "llm_id": "llm_booking", "limit": 1001}, 400, "limit"),
        ({"type": "retell-llm", "llm_id": "llm_booking", "limit": "ten"}, 400, "limit"),
        ({"type": "retell-llm", "llm_id": "llm_booking", "version": "x"}, 400, "version"),
        (
            {"type": "retell-llm", "llm_id": "llm_booking", "pagination_key": "tcbj_nope"},
            400,
            "pagination_key",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/v2/list-batch-tests", "/v2/list-test-case-definitions"])
def test_list_query_validation(
    api: httpx.Client, path: str, params: dict, status: int, fragment: str
) -> None:
    assert_error(api.get(path, params=params), status, fragment)


def test_list_test_runs_paginates_in_definition_order(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.reset(time_scale=0)
    ids = list(reversed(BOOKING_IDS[:7]))
    batch = create(api, BOOKING, ids)
    first = api.get(f"/v2/list-test-runs/{batch['test_case_batch_job_id']}", params={"limit": 2}).json()
    assert first["has_more"] is True
    assert len(first["items"]) == 2
    assert first["pagination_key"] == first["items"][-1]["test_case_job_id"]
    runs = all_runs(api, batch["test_case_batch_job_id"], limit=2)
    assert [r["test_case_definition_id"] for r in runs] == ids
    assert len({r["test_case_job_id"] for r in runs}) == 7
    assert_error(
        api.get(f"/v2/list-test-runs/{batch['test_case_batch_job_id']}", params={"pagination_key": "bad"}),
        400,
        "pagination_key",
    )


def test_list_definitions_by_engine_with_pagination(api: httpx.Client) -> None:
    params: dict[str, Any] = {"type": "retell-llm", "llm_id": "llm_booking", "limit": 5}
    ids: list[str] = []
    while True:
        body = api.get("/v2/list-test-case-definitions", params=params).json()
        ids += [d["test_case_definition_id"] for d in body["items"]]
        if not body["has_more"]:
            break
        params["pagination_key"] = body["pagination_key"]
    assert ids == BOOKING_IDS
    flows = api.get(
        "/v2/list-test-case-definitions",
        params={"type": "conversation-flow", "conversation_flow_id": "cf_support"},
    ).json()
    assert [d["test_case_definition_id"] for d in flows["items"]] == SUPPORT_IDS
    # definitions without an engine version match any version
    versioned = api.get(
        "/v2/list-test-case-definitions", params={"type": "retell-llm", "llm_id": "llm_flaky", "version": 3}
    ).json()
    assert len(versioned["items"]) == 3


def test_list_definitions_version_rule(api: httpx.Client) -> None:
    """Without version: every definition of the engine; with one: those usable at that version."""
    pinned = api.post(
        "/create-test-case-definition",
        json={
            "name": "v1 only",
            "response_engine": {**BOOKING, "version": 1},
            "user_prompt": "p",
            "metrics": [],
        },
    ).json()["test_case_definition_id"]

    def listed(**extra: Any) -> list[str]:
        body = api.get("/v2/list-test-case-definitions", params={**BOOKING, "limit": 100, **extra}).json()
        return [d["test_case_definition_id"] for d in body["items"]]

    assert listed() == [*BOOKING_IDS, pinned]
    assert listed(version=1) == [*BOOKING_IDS, pinned]
    assert listed(version=2) == BOOKING_IDS


# ---------------------------------------------------------------------------------------- definitions


def test_definition_crud(api: httpx.Client) -> None:
    got = api.get("/get-test-case-definition/tcd_booking_02")
    assert got.status_code == 200
    definition = got.json()
    assert definition["name"] == "Reschedules an appointment"
    assert definition["type"] == "simulation"
    assert "outcomes" not in definition
    assert "outcome" not in definition
    assert "result_explanation" not in definition

    body = {
        "name": "Confirms a booking by email",
        "response_engine": {**BOOKING, "version": 2},
        "user_prompt": "You want a confirmation email.",
        "metrics": ["Agent confirms an email will be sent"],
        "dynamic_variables": {"customer_name": "Ana"},
    }
    created = api.post("/create-test-case-definition", json=body)
    assert created.status_code == 201, created.text
    new = created.json()
    def_id = new["test_case_definition_id"]
    assert new["name"] == body["name"]
    assert new["dynamic_variables"] == {"customer_name": "Ana"}
    assert new["response_engine"] == {**BOOKING, "version": 2}
    assert new["tool_mocks"] == []
    assert new["llm_model"]

    updated = api.put(f"/update-test-case-definition/{def_id}", json={"name": "Renamed"})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Renamed"
    assert updated.json()["user_prompt"] == body["user_prompt"]
    assert api.get(f"/get-test-case-definition/{def_id}").json()["name"] == "Renamed"

    listed = api.get("/v2/list-test-case-definitions", params={"type": "retell-llm", "llm_id": "llm_booking"})
    assert def_id in [d["test_case_definition_id"] for d in listed.json()["items"]]
    batch = create(api, BOOKING, [def_id])
    assert batch["total_count"] == 1
    # a versioned definition only matches its own version
    assert_error(
        api.post(
            "/create-batch-test",
            json={"response_engine": {**BOOKING, "version": 1}, "test_case_definition_ids": [def_id]},
        ),
        400,
        def_id,
    )

    deleted = api.delete(f"/delete-test-case-definition/{def_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(api.get(f"/get-test-case-definition/{def_id}"), 404, def_id)
    assert_error(api.delete(f"/delete-test-case-definition/{def_id}"), 404, def_id)
    assert_error(api.put(f"/update-test-case-definition/{def_id}", json={"name": "x"}), 404, def_id)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"response_engine": BOOKING, "user_prompt": "p", "metrics": []}, 400, "name"),
        ({"name": "n", "user_prompt": "p", "metrics": []}, 400, "response_engine"),
        ({"name": "n", "response_engine": BOOKING, "metrics": []}, 400, "user_prompt"),
        ({"name": "n", "response_engine": BOOKING, "user_prompt": "p"}, 400, "metrics"),
        ({"name": "n", "response_engine": BOOKING, "user_prompt": "p", "metrics": "m"}, 400, "metrics"),
        (
            {
                "name": "n",
                "response_engine": {"type": "custom-llm", "llm_websocket_url": "wss://x"},
                "user_prompt": "p",
                "metrics": [],
            },
            400,
            "custom LLM",
        ),
        (
            {
                "name": "n",
                "response_engine": {"type": "retell-llm", "llm_id": "llm_x"},
                "user_prompt": "p",
                "metrics": [],
            },
            404,
            "llm_x",
        ),
    ],
)
def test_create_definition_validation(api: httpx.Client, body: dict, status: int, fragment: str) -> None:
    assert_error(api.post("/create-test-case-definition", json=body), status, fragment)


def test_update_definition_validation(api: httpx.Client) -> None:
    assert_error(
        api.put("/update-test-case-definition/tcd_booking_01", json={"metrics": "x"}), 400, "metrics"
    )
    assert_error(api.put("/update-test-case-definition/tcd_booking_01", json=[1]), 400, "object")
    assert api.get("/get-test-case-definition/tcd_booking_01").json()["metrics"] != "x"


# ---------------------------------------------------------------------------------------- agents


def test_get_agent(api: httpx.Client) -> None:
    agent = api.get("/get-agent/agent_booking").json()
    assert agent["agent_id"] == "agent_booking"
    assert agent["version"] == 2
    assert agent["response_engine"] == {**BOOKING, "version": 2}
    assert agent["agent_name"] == "Appointment Booking"
    assert agent["voice_id"]
    assert isinstance(agent["last_modification_timestamp"], int)
    older = api.get("/get-agent/agent_booking", params={"version": 0}).json()
    assert older["version"] == 0
    flow = api.get("/get-agent/agent_support").json()
    assert flow["response_engine"] == {**SUPPORT, "version": 1}
    custom = api.get("/get-agent/agent_custom").json()
    assert custom["response_engine"] == {
        "type": "custom-llm",
        "llm_websocket_url": "wss://example.invalid/llm",
    }
    assert_error(api.get("/get-agent/agent_nope"), 404, "agent_nope")
    assert_error(api.get("/get-agent/agent_booking", params={"version": 3}), 404, "version 3")
    assert_error(api.get("/get-agent/agent_booking", params={"version": "x"}), 400, "version")


def test_list_agents_v2(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    seed_order = ["agent_support", "agent_booking", "agent_flaky", "agent_custom"]

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [a["agent_id"] for a in response.json()["items"]]

    everything = api.post("/v2/list-agents")  # no body at all, as some clients send
    assert ids(everything) == list(reversed(seed_order))  # descending (newest first) by default
    assert everything.json()["has_more"] is False
    item = everything.json()["items"][-1]
    assert item == {
        "agent_id": "agent_support",
        "agent_name": "Customer Support",
        "channel": "voice",
        "is_suspended": False,
        "tags": {},
        "user_modified_timestamp": item["user_modified_timestamp"],
        "is_transfer_agent": False,
    }
    assert ids(api.post("/v2/list-agents", json={}, params={"sort_order": "ascending"})) == seed_order
    first = api.post("/v2/list-agents", json={}, params={"limit": 3, "sort_order": "ascending"}).json()
    assert [a["agent_id"] for a in first["items"]] == seed_order[:3]
    assert (first["has_more"], first["pagination_key"]) == (True, "agent_flaky")
    rest = api.post(
        "/v2/list-agents", params={"sort_order": "ascending", "pagination_key": first["pagination_key"]}
    )
    assert ids(rest) == ["agent_custom"]

    def filtered(criteria: dict[str, Any]) -> list[str]:
        return ids(
            api.post(
                "/v2/list-agents", json={"filter_criteria": criteria}, params={"sort_order": "ascending"}
            )
        )

    assert filtered({"query": "BOOKING"}) == ["agent_booking"]  # agent name, case-insensitive
    assert filtered({"query": "agent_fl"}) == ["agent_flaky"]  # agent id
    assert filtered({"channel": {"op": "eq", "type": "string", "value": "chat"}}) == []
    assert filtered({"channel": {"op": "sw", "type": "string", "value": "vo"}}) == seed_order
    assert filtered({"is_transfer_agent": {"op": "eq", "type": "boolean", "value": False}}) == seed_order
    assert (
        filtered({"query": "support", "is_transfer_agent": {"op": "eq", "type": "boolean", "value": True}})
        == []
    )
    assert_error(api.post("/v2/list-agents", json={"filter_criteria": {"channel": "voice"}}), 400, "channel")
    assert_error(api.post("/v2/list-agents", json={"filter_criteria": {"name": "x"}}), 400, "name")
    assert_error(api.post("/v2/list-agents", params={"sort_order": "up"}), 400, "sort_order")
    assert_error(api.post("/v2/list-agents", params={"limit": 0}), 400, "limit")
    assert_error(api.post("/v2/list-agents", params={"pagination_key": "agent_nope"}), 400, "pagination_key")
    assert_error(api.post("/v2/list-agents", json=[1]), 400, "object")
    assert_error(api.get("/v2/list-agents"), 405)  # POST only, as in retell-sdk 6.2


def test_list_agents_v1_is_an_array_of_agents(api: httpx.Client) -> None:
    response = api.get("/list-agents")
    assert response.status_code == 200
    agents = response.json()
    assert [a["agent_id"] for a in agents] == [
        "agent_support",
        "agent_booking",
        "agent_flaky",
        "agent_custom",
    ]
    assert agents[1] == api.get("/get-agent/agent_booking").json()


# ---------------------------------------------------------------------------------------- control API


def test_seed_replaces_state(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.seed(
        {
            "agents": [{"agent_id": "agent_x", "response_engine": {"type": "retell-llm", "llm_id": "llm_x"}}],
            "test_case_definitions": [
                {"name": "one", "agent_id": "agent_x", "outcome": "error", "result_explanation": "boom"},
                {"name": "two", "response_engine": {"type": "retell-llm", "llm_id": "llm_x"}},
            ],
        },
        time_scale=0,
    )
    assert retell_emulator.time_scale == 0
    assert_error(api.get("/get-agent/agent_booking"), 404)
    listed = api.get(
        "/v2/list-test-case-definitions", params={"type": "retell-llm", "llm_id": "llm_x"}
    ).json()
    ids = [d["test_case_definition_id"] for d in listed["items"]]
    assert ids == ["tcd_seed_001", "tcd_seed_002"]
    batch = create(api, {"type": "retell-llm", "llm_id": "llm_x"}, ids)
    assert (batch["status"], batch["pass_count"], batch["error_count"]) == ("complete", 1, 1)
    runs = all_runs(api, batch["test_case_batch_job_id"])
    assert runs[0]["result_explanation"] == "boom"
    retell_emulator.reset()
    assert api.get("/get-agent/agent_booking").status_code == 200
    assert retell_emulator.time_scale == 0.01


def test_seed_from_yaml_file(retell_emulator: RetellEmulator, api: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(
        "agents:\n  - agent_id: a1\n"
        "    response_engine: {type: conversation-flow, conversation_flow_id: cf_1}\n"
        "test_case_definitions:\n  - {test_case_definition_id: t1, name: T, agent_id: a1, outcomes: [fail]}\n"
    )
    retell_emulator.seed(path, time_scale=0)
    batch = create(api, {"type": "conversation-flow", "conversation_flow_id": "cf_1"}, ["t1"])
    assert batch["fail_count"] == 1


def test_invalid_seed_is_rejected(retell_emulator: RetellEmulator) -> None:
    response = httpx.post(
        retell_emulator.url + "/_emulator/seed",
        json={
            "test_case_definitions": [
                {"name": "x", "response_engine": {"type": "retell-llm", "llm_id": "l"}, "outcome": "maybe"}
            ]
        },
        trust_env=False,
    )
    assert_error(response, 400, "outcomes")
    assert_error(
        httpx.post(retell_emulator.url + "/_emulator/seed", json={"bogus": 1}, trust_env=False), 400, "bogus"
    )


def test_control_api_is_not_logged_and_needs_no_key(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    health = httpx.get(retell_emulator.url + "/_emulator/health", trust_env=False)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    api.get("/get-agent/agent_booking")
    api.get("/get-agent/agent_support", params={"version": 1})
    api.post("/create-batch-test", json={})
    entries = retell_emulator.requests()
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/get-agent/agent_booking", 200),
        ("GET", "/get-agent/agent_support", 200),
        ("POST", "/create-batch-test", 400),
    ]
    assert entries[1]["query"] == {"version": "1"}
    assert all(e["fault"] is None and isinstance(e["timestamp"], float) for e in entries)
    assert entries[0]["timestamp"] <= entries[1]["timestamp"] <= entries[2]["timestamp"]
    assert retell_emulator.count("GET") == 2
    assert retell_emulator.count(path="/get-agent/*") == 2
    assert retell_emulator.count("POST", "/create-batch-test") == 1
    retell_emulator.clear_requests()
    assert retell_emulator.count() == 0


def test_request_log_records_the_client_and_counts_connections(retell_emulator: RetellEmulator) -> None:
    with retell_emulator.client() as client:  # one keep-alive connection
        for _ in range(5):
            assert client.get("/get-agent/agent_booking").status_code == 200
        local = client.get("/get-agent/agent_support")
    entries = retell_emulator.requests()
    assert len(entries) == 6
    host, _, port = entries[0]["client"].rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    assert len({e["client"] for e in entries}) == 1
    assert local.status_code == 200
    assert retell_emulator.connections() == 1
    for _ in range(5):  # five clients: five connections
        with retell_emulator.client() as client:
            assert client.get("/get-agent/agent_flaky").status_code == 200
    assert retell_emulator.connections() == 6
    assert retell_emulator.connections(path="/get-agent/agent_flaky") == 5
    assert retell_emulator.connections("GET", "/get-agent/agent_booking") == 1
    assert retell_emulator.connections("POST") == 0
    retell_emulator.clear_requests()
    assert retell_emulator.connections() == 0


def test_connection_json(retell_emulator: RetellEmulator) -> None:
    import json

    conn = json.loads(retell_emulator.connection_json(max_retries=1, timeout=5))
    assert conn == {
        "conn_type": "retell",
        "host": retell_emulator.url,
        "password": retell_emulator.api_key,
        "extra": {"max_retries": 1, "timeout": 5},
    }
    assert retell_emulator.api_key not in repr(retell_emulator)


def test_request_log_keeps_each_request_body(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    api.get("/get-agent/agent_booking")
    api.put("/update-test-case-definition/tcd_booking_01", json={"user_prompt": "new"})
    api.post("/create-batch-test", content=b"not json")
    bodies = [e["body"] for e in retell_emulator.requests()]
    assert bodies == [None, {"user_prompt": "new"}, "not json"]
