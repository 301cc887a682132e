"""Fault injection over real HTTP: each action applies exactly N times, then normal service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator, RetellEmulatorError

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
CREATE_BODY = {"response_engine": BOOKING, "test_case_definition_ids": ["tcd_booking_01", "tcd_booking_02"]}
LIST_PARAMS = {"type": "retell-llm", "llm_id": "llm_booking"}


@pytest.fixture
def api(retell_emulator: RetellEmulator) -> Iterator[httpx.Client]:
    with retell_emulator.client(timeout=5.0) as client:
        yield client


def batches(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/v2/list-batch-tests", params=LIST_PARAMS)
    assert response.status_code == 200
    return response.json()["items"]


def test_status_fault_applies_exactly_n_times_and_does_not_apply_the_request(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    fault_id = retell_emulator.add_fault(
        "POST", "/create-batch-test", "status", times=2, status_code=429, retry_after=3
    )
    assert fault_id
    for _ in range(2):
        response = api.post("/create-batch-test", json=CREATE_BODY)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json() == {"status": "error", "message": "Too Many Requests"}
    assert batches(api) == []
    response = api.post("/create-batch-test", json=CREATE_BODY)
    assert response.status_code == 201
    assert len(batches(api)) == 1
    faults = retell_emulator.faults()
    assert [(f["id"], f["remaining"], f["times"]) for f in faults] == [(fault_id, 0, 2)]
    log = retell_emulator.requests("POST", "/create-batch-test")
    assert [(e["status"], e["fault"]) for e in log] == [(429, "status"), (429, "status"), (201, None)]


def test_status_fault_with_glob_method_star_and_message(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("*", "/get-agent/*", "status", status_code=503, message="upstream busy")
    other = api.get("/v2/list-test-case-definitions", params=LIST_PARAMS)
    assert other.status_code == 200  # does not match the glob: fault untouched
    response = api.get("/get-agent/agent_booking")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "message": "upstream busy"}
    assert "retry-after" not in response.headers
    assert api.get("/get-agent/agent_booking").status_code == 200


def test_method_must_match(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.add_fault("POST", "/get-agent/*", "status", status_code=500)
    assert api.get("/get-agent/agent_booking").status_code == 200
    assert retell_emulator.faults()[0]["remaining"] == 1


def test_faults_apply_before_authentication(retell_emulator: RetellEmulator) -> None:
    retell_emulator.add_fault("GET", "/get-agent/*", "status", status_code=502)
    response = httpx.get(retell_emulator.url + "/get-agent/agent_booking", trust_env=False)
    assert response.status_code == 502
    response = httpx.get(retell_emulator.url + "/get-agent/agent_booking", trust_env=False)
    assert response.status_code == 401


def test_drop_gives_a_transport_error_without_status(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "drop", times=2)
    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            api.post("/create-batch-test", json=CREATE_BODY)
    assert batches(api) == []  # a dropped request is not applied
    assert api.post("/create-batch-test", json=CREATE_BODY).status_code == 201
    log = retell_emulator.requests("POST")
    assert [(e["status"], e["fault"]) for e in log] == [(None, "drop"), (None, "drop"), (201, None)]


def test_delay_then_normal_handling_even_after_a_client_timeout(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "delay", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        api.post("/create-batch-test", json=CREATE_BODY, timeout=httpx.Timeout(5.0, read=0.2))
    deadline = time.monotonic() + 5
    while not batches(api):
        assert time.monotonic() < deadline, "the delayed create was never applied"
        time.sleep(0.05)
    assert len(batches(api)) == 1
    retell_emulator.add_fault("GET", "/get-agent/*", "delay", seconds=0.3)
    started = time.monotonic()
    assert api.get("/get-agent/agent_booking").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert api.get("/get-agent/agent_booking").status_code == 200
    assert time.monotonic() - started < 0.3
    delayed = retell_emulator.requests("POST", "/create-batch-test")
    assert [(e["status"], e["fault"]) for e in delayed] == [(201, "delay")]


def test_malformed_reply_is_not_json_but_the_request_is_applied(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "malformed")
    response = api.post("/create-batch-test", json=CREATE_BODY)
    assert response.status_code == 201
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(batches(api)) == 1
    assert api.post("/create-batch-test", json=CREATE_BODY).json()["total_count"] == 2


def test_lost_reply_with_status_creates_the_batch(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "lost_reply", status_code=504)
    submitted = int(time.time() * 1000)
    response = api.post("/create-batch-test", json=CREATE_BODY)
    assert response.status_code == 504
    assert response.json()["status"] == "error"
    listed = batches(api)
    assert len(listed) == 1
    assert listed[0]["creation_timestamp"] >= submitted
    assert listed[0]["total_count"] == 2
    assert retell_emulator.requests("POST")[0]["status"] == 504


def test_lost_reply_without_status_drops_after_applying(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "lost_reply")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/create-batch-test", json=CREATE_BODY)
    assert len(batches(api)) == 1
    assert api.post("/create-batch-test", json=CREATE_BODY).status_code == 201
    assert len(batches(api)) == 2
    log = retell_emulator.requests("POST")
    assert [(e["status"], e["fault"]) for e in log] == [(None, "lost_reply"), (201, None)]


def test_patch_merges_and_removes_fields(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    batch_id = api.post("/create-batch-test", json=CREATE_BODY).json()["test_case_batch_job_id"]
    retell_emulator.add_fault(
        "GET",
        "/get-batch-test/*",
        "patch",
        times=2,
        json={"status": "paused", "extra": 1},
        remove=["total_count"],
    )
    for _ in range(2):
        body = api.get(f"/get-batch-test/{batch_id}").json()
        assert body["status"] == "paused"
        assert body["extra"] == 1
        assert "total_count" not in body
        assert body["test_case_batch_job_id"] == batch_id
    normal = api.get(f"/get-batch-test/{batch_id}").json()
    assert normal["status"] in ("in_progress", "complete")
    assert normal["total_count"] == 2
    assert "extra" not in normal


def wait_for_batches(api: httpx.Client, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(listed := batches(api)) < count:
        assert time.monotonic() < deadline, f"expected {count} batches, have {len(listed)}"
        time.sleep(0.02)
    return listed


def test_late_apply_replies_at_once_and_creates_the_batch_later(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "late_apply", seconds=0.5, status_code=504)
    submitted = time.time()
    started = time.monotonic()
    response = api.post("/create-batch-test", json=CREATE_BODY)
    assert time.monotonic() - started < 0.4  # the reply does not wait for the apply
    assert response.status_code == 504
    assert response.json() == {"status": "error", "message": "Gateway Timeout"}
    assert batches(api) == []
    listed = wait_for_batches(api, 1)
    appeared = time.time()
    assert appeared - submitted >= 0.5
    assert len(listed) == 1
    batch = listed[0]
    assert batch["total_count"] == 2
    assert batch["response_engine"] == {**BOOKING, "version": 2}
    # timestamps are those of the apply, not of the request
    assert submitted * 1000 + 450 <= batch["creation_timestamp"] <= appeared * 1000 + 1
    time.sleep(0.2)
    assert len(batches(api)) == 1  # applied exactly once
    log = retell_emulator.requests("POST")
    assert [(e["status"], e["fault"]) for e in log] == [(504, "late_apply")]  # the apply is not logged


def test_late_apply_without_status_drops_then_applies(
    retell_emulator: RetellEmulator, api: httpx.Client
) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "late_apply", seconds=0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/create-batch-test", json=CREATE_BODY)
    assert len(wait_for_batches(api, 1)) == 1
    assert [(e["status"], e["fault"]) for e in retell_emulator.requests("POST")] == [(None, "late_apply")]


def test_late_apply_replays_the_same_request_including_auth(retell_emulator: RetellEmulator) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "late_apply", seconds=0, status_code=502, times=2)
    url = retell_emulator.url + "/create-batch-test"
    # wrong key: the late apply is refused like the request would have been
    bad = httpx.post(url, json=CREATE_BODY, headers={"Authorization": "Bearer nope"}, trust_env=False)
    assert bad.status_code == 502
    good = httpx.post(
        url + "?ignored=1",
        json={**CREATE_BODY, "test_case_definition_ids": ["tcd_booking_03"]},
        headers=retell_emulator.headers,
        trust_env=False,
    )
    assert good.status_code == 502
    with retell_emulator.client() as api:
        listed = wait_for_batches(api, 1)
        time.sleep(0.2)
        assert len(batches(api)) == 1
    assert listed[0]["total_count"] == 1
    runs = httpx.get(
        f"{retell_emulator.url}/v2/list-test-runs/{listed[0]['test_case_batch_job_id']}",
        headers=retell_emulator.headers,
        trust_env=False,
    ).json()["items"]
    assert [r["test_case_definition_id"] for r in runs] == ["tcd_booking_03"]
    assert retell_emulator.requests("POST")[1]["query"] == {"ignored": "1"}


def test_reset_cancels_a_pending_late_apply(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.add_fault("POST", "/create-batch-test", "late_apply", seconds=0.3, status_code=504)
    assert api.post("/create-batch-test", json=CREATE_BODY).status_code == 504
    retell_emulator.reset()
    time.sleep(0.5)
    assert batches(api) == []


def test_first_matching_fault_wins_and_clear(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.add_fault("GET", "/get-agent/*", "status", status_code=500)
    retell_emulator.add_fault("GET", "/get-agent/agent_booking", "status", status_code=503)
    assert api.get("/get-agent/agent_booking").status_code == 500
    assert api.get("/get-agent/agent_booking").status_code == 503
    assert api.get("/get-agent/agent_booking").status_code == 200
    retell_emulator.add_fault("GET", "/get-agent/*", "status", status_code=500, times=5)
    retell_emulator.clear_faults()
    assert retell_emulator.faults() == []
    assert api.get("/get-agent/agent_booking").status_code == 200


def test_reset_clears_faults_and_log(retell_emulator: RetellEmulator, api: httpx.Client) -> None:
    retell_emulator.add_fault("GET", "/get-agent/*", "status", status_code=500)
    api.get("/v2/list-batch-tests", params=LIST_PARAMS)
    assert retell_emulator.count() == 1
    retell_emulator.reset()
    assert retell_emulator.faults() == []
    assert retell_emulator.count() == 0
    assert api.get("/get-agent/agent_booking").status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "GET", "path": "/x", "action": "explode"},
        {"method": "GET", "action": "drop"},
        {"method": "GET", "path": "/x", "action": "status"},
        {"method": "GET", "path": "/x", "action": "status", "status_code": 99},
        {"method": "GET", "path": "/x", "action": "delay"},
        {"method": "GET", "path": "/x", "action": "drop", "times": 0},
        {"method": "GET", "path": "/x", "action": "drop", "seconds": 1},
        {"method": "GET", "path": "/x", "action": "patch", "json": [1]},
        {"method": "POST", "path": "/x", "action": "late_apply"},
        {"method": "POST", "path": "/x", "action": "late_apply", "seconds": -1},
        {"method": "POST", "path": "/x", "action": "late_apply", "seconds": "1"},
        {"method": "POST", "path": "/x", "action": "late_apply", "seconds": 1, "status_code": 600},
        {"method": "POST", "path": "/x", "action": "late_apply", "seconds": 1, "retry_after": 1},
    ],
)
def test_invalid_fault_specs_are_rejected(retell_emulator: RetellEmulator, spec: dict) -> None:
    response = httpx.post(retell_emulator.url + "/_emulator/faults", json=spec, trust_env=False)
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    with pytest.raises(RetellEmulatorError):
        retell_emulator.add_fault(
            spec["method"],
            spec.get("path", ""),
            spec["action"],
            **{k: v for k, v in spec.items() if k not in ("method", "path", "action")},
        )
    assert retell_emulator.faults() == []
