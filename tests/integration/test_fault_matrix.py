"""Every fault the emulator can inject, against the hook and the trigger, with exact request counts.

Each test ends in success or a clear failure, and asserts how many requests Retell (the emulator)
saw. docs/reliability.md tabulates these tests; keep the two in step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellAPIError, RetellPermanentError
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
IDS = ["tcd_booking_01", "tcd_booking_02", "tcd_booking_07"]
CREATE = "/create-batch-test"
GET = "/get-batch-test/*"
LIST = "/v2/list-batch-tests"
MAX_RETRIES = 3


@pytest.fixture
def emulator(retell_conn):
    """The emulator at time scale 0: a batch is complete the moment it is created."""
    retell_conn.reset(time_scale=0)
    return retell_conn


@pytest.fixture
def make_hook(emulator, monkeypatch) -> Iterator[Callable[..., RetellHook]]:
    """``make_hook(**extra)``: a hook on ``retell_default`` with these connection extras."""
    hooks: list[RetellHook] = []

    def _make(**extra: Any) -> RetellHook:
        extra = {"max_retries": MAX_RETRIES, "max_retry_wait": 0.05, "create_settle_seconds": 1, **extra}
        monkeypatch.setenv("AIRFLOW_CONN_RETELL_DEFAULT", emulator.connection_json(**extra))
        hooks.append(RetellHook())
        return hooks[-1]

    yield _make
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(make_hook) -> RetellHook:
    return make_hook()


def existing_batch(emulator) -> str:
    """A complete batch, made through the API directly; the request log is cleared afterwards."""
    with emulator.client() as client:
        reply = client.post(CREATE, json={"response_engine": BOOKING, "test_case_definition_ids": IDS})
    assert reply.status_code == 201
    emulator.clear_requests()
    return str(reply.json()["test_case_batch_job_id"])


def batch_ids(emulator) -> list[str]:
    with emulator.client() as client:
        reply = client.get(LIST, params={**BOOKING, "limit": 1000})
    return [b["test_case_batch_job_id"] for b in reply.json()["items"]]


def statuses(emulator, method: str, path: str) -> list[Any]:
    return [r["status"] for r in emulator.requests(method, path)]


async def trigger_events(batch_test_id: str, end_in: float = 20.0) -> list[dict[str, Any]]:
    trigger = RetellBatchTestTrigger(
        batch_test_id, "retell_default", poll_interval=0.1, end_time=time.time() + end_in
    )
    return [event.payload async for event in trigger.run()]


# -- 429 and Retry-After ----------------------------------------------------------------------------


def test_read_429_honours_retry_after(emulator, make_hook):
    hook = make_hook(max_retry_wait=1)
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=429, retry_after=0.3)

    start = time.monotonic()
    batch = hook.get_batch_test(batch_test_id)
    elapsed = time.monotonic() - start

    assert batch.id == batch_test_id
    assert statuses(emulator, "GET", GET) == [429, 200]
    stamps = [r["timestamp"] for r in emulator.requests("GET", GET)]
    assert stamps[1] - stamps[0] >= 0.3
    assert elapsed < 1.0  # Retry-After, not the exponential backoff's longer wait


def test_read_429_retry_after_capped_by_max_retry_wait(emulator, make_hook):
    hook = make_hook(max_retry_wait=0.2)
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=429, retry_after=30)

    start = time.monotonic()
    hook.get_batch_test(batch_test_id)

    assert 0.2 <= time.monotonic() - start < 1.5
    assert statuses(emulator, "GET", GET) == [429, 200]


def test_create_429_is_resent_without_reconciling(emulator, make_hook):
    hook = make_hook(max_retry_wait=1)
    emulator.add_fault("POST", CREATE, "status", status_code=429, retry_after=0.3)

    start = time.monotonic()
    batch = hook.create_batch_test(BOOKING, IDS)

    assert time.monotonic() - start >= 0.3
    assert statuses(emulator, "POST", CREATE) == [429, 201]
    assert emulator.count("GET", LIST) == 2  # a 429 was not applied: a fresh snapshot, no reconciling
    assert batch_ids(emulator) == [batch.id]


async def test_trigger_survives_429(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=429, retry_after=0.1, times=2)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert statuses(emulator, "GET", GET) == [429, 429, 200]


# -- 5xx ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status_code", [500, 502, 503, 504])
def test_read_5xx_once_then_success(emulator, hook, status_code):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=status_code)

    assert hook.get_batch_test(batch_test_id).is_complete
    assert statuses(emulator, "GET", GET) == [status_code, 200]


@pytest.mark.parametrize("status_code", [500, 502, 503, 504])
def test_create_5xx_once_is_reconciled_then_resent(emulator, hook, status_code):
    emulator.add_fault("POST", CREATE, "status", status_code=status_code)

    start = time.monotonic()
    batch = hook.create_batch_test(BOOKING, IDS)

    # A 5xx might have been applied: the engine's batches are listed until the settle window (1 s
    # here) has passed with none new; only then is the create sent again.
    assert time.monotonic() - start >= 1.0
    assert statuses(emulator, "POST", CREATE) == [status_code, 201]
    assert emulator.count("GET", LIST) == 4  # before, at once, after the window, before the resend
    assert batch_ids(emulator) == [batch.id]


def test_read_5xx_storm_fails_after_max_retries(emulator, hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=503, times=10)

    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test(batch_test_id)

    assert not isinstance(info.value, RetellPermanentError)  # a task retry may still help
    assert info.value.status_code == 503
    assert "503" in str(info.value)
    assert "/get-batch-test/" in str(info.value)
    assert emulator.count("GET", GET) == MAX_RETRIES + 1


def test_create_5xx_storm_fails_after_max_retries_without_a_batch(emulator, hook):
    emulator.add_fault("POST", CREATE, "status", status_code=502, times=10)

    with pytest.raises(RetellAPIError) as info:
        hook.create_batch_test(BOOKING, IDS)

    assert info.value.status_code == 502
    assert emulator.count("POST", CREATE) == MAX_RETRIES + 1
    assert emulator.count("GET", LIST) == 3 * (MAX_RETRIES + 1)  # before each send, twice after it
    assert batch_ids(emulator) == []


async def test_trigger_survives_a_5xx_storm(emulator):
    batch_test_id = existing_batch(emulator)
    # More failures in a row than the hook's bounded retries allow: a wait outlasts them all.
    emulator.add_fault("GET", GET, "status", status_code=503, times=MAX_RETRIES + 2)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert emulator.count("GET", GET) == MAX_RETRIES + 3  # one request per poll, backing off


@pytest.mark.parametrize("status_code", [400, 401, 404])
def test_read_permanent_status_is_not_retried(emulator, hook, status_code):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=status_code)

    with pytest.raises(RetellPermanentError) as info:
        hook.get_batch_test(batch_test_id)

    assert info.value.status_code == status_code
    assert emulator.count("GET", GET) == 1


async def test_trigger_permanent_status_yields_error_event(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=401)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "error"
    assert event["status_code"] == 401
    assert "API key was rejected" in event["message"]
    assert emulator.api_key not in event["message"]
    assert emulator.count("GET", GET) == 1


def test_create_permanent_status_is_not_reconciled(emulator, hook):
    emulator.add_fault("POST", CREATE, "status", status_code=400)

    with pytest.raises(RetellPermanentError):
        hook.create_batch_test(BOOKING, IDS)

    assert emulator.count("POST", CREATE) == 1
    assert emulator.count("GET", LIST) == 1
    assert batch_ids(emulator) == []


# -- dropped connections ----------------------------------------------------------------------------


def test_read_dropped_connection_is_retried(emulator, hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "drop")

    assert hook.get_batch_test(batch_test_id).id == batch_test_id
    assert statuses(emulator, "GET", GET) == [None, 200]


def test_create_dropped_connection_not_applied_is_resent(emulator, hook):
    emulator.add_fault("POST", CREATE, "drop")  # the emulator does NOT apply a dropped request

    batch = hook.create_batch_test(BOOKING, IDS)

    assert statuses(emulator, "POST", CREATE) == [None, 201]
    assert emulator.count("GET", LIST) == 4  # re-sent only after the settle window showed nothing
    assert batch_ids(emulator) == [batch.id]


async def test_trigger_survives_a_dropped_connection(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "drop", times=2)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert statuses(emulator, "GET", GET) == [None, None, 200]


# -- delay beyond the read timeout ------------------------------------------------------------------


def test_read_delay_beyond_timeout_is_retried(emulator, make_hook):
    hook = make_hook(timeout=0.3)
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "delay", seconds=1)

    start = time.monotonic()
    assert hook.get_batch_test(batch_test_id).id == batch_test_id

    assert time.monotonic() - start < 1.0  # gave up on the slow reply instead of waiting for it
    assert emulator.count("GET", GET) == 2


def test_create_delay_beyond_timeout_adopts_the_batch(emulator, make_hook):
    hook = make_hook(timeout=0.3, max_retry_wait=1, create_settle_seconds=5)
    emulator.add_fault("POST", CREATE, "delay", seconds=1)  # the batch IS created, after 1 s

    batch = hook.create_batch_test(BOOKING, IDS)

    assert emulator.count("POST", CREATE) == 1  # never re-sent after a timeout: only listed again
    assert emulator.count("GET", LIST) >= 2
    assert batch_ids(emulator) == [batch.id]


# -- malformed replies ------------------------------------------------------------------------------


def test_read_malformed_json_fails_clearly_without_retry(emulator, hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "malformed")

    with pytest.raises(RetellAPIError, match="not valid JSON") as info:
        hook.get_batch_test(batch_test_id)

    assert info.value.status_code == 200
    assert emulator.count("GET", GET) == 1


def test_create_malformed_json_is_adopted(emulator, hook):
    emulator.add_fault("POST", CREATE, "malformed")  # applied: the batch exists

    batch = hook.create_batch_test(BOOKING, IDS)

    assert emulator.count("POST", CREATE) == 1
    assert emulator.count("GET", LIST) == 2
    assert batch_ids(emulator) == [batch.id]
    assert batch.total_count == len(IDS)


# -- lost create replies ----------------------------------------------------------------------------


@pytest.mark.parametrize("lost", [{"status_code": 504}, {}], ids=["504", "drop"])
def test_create_lost_reply_is_adopted(emulator, hook, lost):
    emulator.add_fault("POST", CREATE, "lost_reply", **lost)

    batch = hook.create_batch_test(BOOKING, IDS)

    assert emulator.count("POST", CREATE) == 1
    assert emulator.count("GET", LIST) == 2
    assert batch_ids(emulator) == [batch.id]


@pytest.mark.parametrize("lost", [{"status_code": 504}, {}], ids=["504", "drop"])
async def test_async_create_lost_reply_is_adopted(emulator, make_hook, lost):
    hook = make_hook()
    emulator.add_fault("POST", CREATE, "lost_reply", **lost)

    try:
        batch = await hook.acreate_batch_test(BOOKING, IDS)
    finally:
        await hook.aclose()

    assert emulator.count("POST", CREATE) == 1
    assert batch_ids(emulator) == [batch.id]


def test_create_lost_reply_with_a_second_new_batch_fails_without_guessing(emulator, hook):
    """Two identical creates on one engine at once (one of them not ours): refuse to pick."""
    real_send = hook._send

    def send_and_race(call: Any) -> Any:
        if call.method == "POST":  # another client creates the same batch just before ours...
            with emulator.client() as client:
                assert client.post(CREATE, json=call.json).status_code == 201
            emulator.add_fault("POST", CREATE, "lost_reply", status_code=504)  # ...and our reply is lost
        return real_send(call)

    hook._send = send_and_race  # type: ignore[method-assign]

    with pytest.raises(RetellPermanentError, match="not creating another") as info:
        hook.create_batch_test(BOOKING, IDS)

    assert len(batch_ids(emulator)) == 2
    assert all(b in str(info.value) for b in batch_ids(emulator))
    assert emulator.count("POST", CREATE) == 2  # the racing client's and ours: never a third


# -- replies that differ from the contract ----------------------------------------------------------


async def test_trigger_waits_through_an_unknown_status(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", json={"status": "paused"}, times=3)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert event["batch_test"]["status"] == "complete"
    assert emulator.count("GET", GET) == 4


def test_extra_fields_are_tolerated(emulator, hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", json={"new_field": {"x": 1}, "cost_usd": 0.42})

    batch = hook.get_batch_test(batch_test_id)

    assert batch.is_complete
    assert batch.total_count == len(IDS)
    assert emulator.count("GET", GET) == 1


async def test_trigger_event_drops_extra_fields(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", json={"new_field": "x"})

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert "new_field" not in event["batch_test"]
    assert emulator.count("GET", GET) == 1


def test_missing_required_field_fails_naming_it(emulator, hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", remove=["total_count"])

    with pytest.raises(RetellAPIError, match="total_count"):
        hook.get_batch_test(batch_test_id)

    assert emulator.count("GET", GET) == 1


async def test_trigger_missing_required_field_yields_error_event(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", remove=["total_count"], times=100)

    (event,) = await trigger_events(batch_test_id, end_in=5)

    assert event["status"] == "error"
    assert "total_count" in event["message"]
    assert emulator.count("GET", GET) == 1


# -- many ambiguous creates -------------------------------------------------------------------------


def test_fifty_ambiguous_creates_make_no_duplicates(emulator, hook):
    created = []
    for i in range(50):
        lost = {"status_code": 504} if i % 2 == 0 else {}
        emulator.add_fault("POST", CREATE, "lost_reply", **lost)
        created.append(hook.create_batch_test(BOOKING, IDS).id)

    assert len(set(created)) == 50
    assert sorted(batch_ids(emulator)) == sorted(created)
    assert emulator.count("POST", CREATE) == 50
    assert {r["fault"] for r in emulator.requests("POST", CREATE)} == {"lost_reply"}
