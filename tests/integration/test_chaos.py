"""The chaos suite: every numbered attack of issue 8, replayed against the provider.

Retell is the emulator (its fault actions), the hostile network is ``tests/chaos.py`` (a scripted
server on loopback, often forwarding to the emulator). Tests are named ``test_<case>_...`` after
the issue's numbered cases (1-13). Each asserts how many batches Retell billed (exactly one), or
the bounded failure: its exception type, its message and its elapsed time.

docs/reliability.md ("Attacks and what holds") tabulates these tests; keep the two in step.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowTaskTimeout, TaskDeferred
from airflow.sdk.execution_time.timeout import timeout as execution_timeout

from airflow_provider_retell.creating import MemoryIntentStore
from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellPermanentError,
    RetellQualityGateError,
    RetellTimeoutError,
)
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.operations import SMALL_REPLY_BYTES
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.results import MAX_RESULT_BYTES
from airflow_provider_retell.sensors.batch_test import RetellBatchTestSensor
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from tests.chaos import (
    ChaosServer,
    Lazy,
    Reply,
    Request,
    Trickle,
    chaos_server,
    endless_page,
    forward,
    nested_json,
)
from tests.fakes import FakeStore, FakeTI, fake_context

__all__ = ["chaos_server"]  # the fixture, imported so pytest finds it

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
SUPPORT = {"type": "conversation-flow", "conversation_flow_id": "cf_support"}
IDS = ["tcd_booking_01", "tcd_booking_02", "tcd_booking_07"]  # one of them fails
SUPPORT_IDS = ["tcd_support_01", "tcd_support_02", "tcd_support_03"]  # all pass
CREATE = "/create-batch-test"
GET = "/get-batch-test/*"
LIST = "/v2/list-batch-tests"
RUNS = "/v2/list-test-runs/*"
FAST = {"max_retries": 3, "max_retry_wait": 0.05, "create_settle_seconds": 1}
#: How far past its deadline a wait may end (the issue's bound; the code allows 3 s).
OVERRUN = 5.0
#: A gate that passes anything whose counts add up: what fails must be the counts themselves.
NO_BOUNDS = {"max_failures": None, "max_errors": None, "min_pass_rate": None, "fail_on_empty": False}


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def emulator(retell_conn):
    """The emulator at time scale 0 (a batch is complete the moment it exists), ``retell_default`` on it."""
    retell_conn.reset(time_scale=0)
    return retell_conn


@pytest.fixture
def connect(emulator, monkeypatch) -> Callable[..., None]:
    """``connect(host=..., password=..., **extra)``: point ``retell_default`` elsewhere (FAST extras)."""

    def _connect(host: str | None = None, password: str | None = None, **extra: Any) -> None:
        conn = {
            "conn_type": "retell",
            "host": host or emulator.url,
            "password": emulator.api_key if password is None else password,
            "extra": {**FAST, **extra},
        }
        monkeypatch.setenv("AIRFLOW_CONN_RETELL_DEFAULT", json.dumps(conn))

    return _connect


@pytest.fixture
def make_hook(connect) -> Iterator[Callable[..., RetellHook]]:
    """``make_hook(**extra)``: a hook on ``retell_default`` with these connection extras."""
    hooks: list[RetellHook] = []

    def _make(host: str | None = None, **extra: Any) -> RetellHook:
        connect(host, **extra)
        hooks.append(RetellHook())
        return hooks[-1]

    yield _make
    for hook in hooks:
        hook.close()


@pytest.fixture
def via_chaos(chaos_server: ChaosServer, emulator, connect) -> ChaosServer:
    """``retell_default`` goes through the chaos server, which forwards whatever no rule takes."""
    chaos_server.handler = forward(emulator.url)
    connect(chaos_server.url)
    return chaos_server


def billed(emulator, engine: dict[str, Any] = BOOKING) -> list[str]:
    """Every batch of the engine (its latest version) that Retell made (this listing is logged too:
    read the request log first)."""
    with emulator.client() as client:
        reply = client.get(LIST, params={**engine, "limit": 1000})
    return [b["test_case_batch_job_id"] for b in reply.json()["items"]]


def existing_batch(emulator, engine: dict[str, Any] = SUPPORT, ids: list[str] = SUPPORT_IDS) -> str:
    """A batch made directly through the API; the request log is cleared afterwards."""
    with emulator.client() as client:
        reply = client.post(CREATE, json={"response_engine": engine, "test_case_definition_ids": ids})
    assert reply.status_code == 201
    emulator.clear_requests()
    return str(reply.json()["test_case_batch_job_id"])


def statuses(emulator, method: str, path: str) -> list[Any]:
    return [r["status"] for r in emulator.requests(method, path)]


def gaps(emulator, method: str, path: str) -> list[float]:
    stamps = [r["timestamp"] for r in emulator.requests(method, path)]
    return [b - a for a, b in itertools.pairwise(stamps)]


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def operator(**kwargs: Any) -> RetellBatchTestOperator:
    kwargs.setdefault("response_engine", SUPPORT)
    kwargs.setdefault("test_case_definition_ids", SUPPORT_IDS)
    kwargs.setdefault("wait_for_completion", True)
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("timeout", 60)
    return RetellBatchTestOperator(task_id="run_batch_test", **kwargs)


def sensor(batch_test_id: str, **kwargs: Any) -> RetellBatchTestSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 60)
    return RetellBatchTestSensor(task_id="wait_for_batch_test", batch_test_id=batch_test_id, **kwargs)


class RescheduleTI(FakeTI):
    """What a sensor in reschedule mode asks of its task instance."""

    def __init__(self) -> None:
        super().__init__()
        self.first_reschedule: datetime | None = None

    def get_first_reschedule_date(self, context: Any) -> datetime | None:
        return self.first_reschedule


def run_rescheduled(task: RetellBatchTestSensor, context: dict[str, Any]) -> tuple[Any, list[float]]:
    """Run a reschedule-mode sensor as the scheduler would: again at each reschedule date.
    Returns its result and how far ahead each reschedule was asked for (seconds)."""
    asked: list[float] = []
    ti = context["ti"]
    for _ in range(50):
        try:
            return task.execute(context), asked
        except AirflowRescheduleException as later:
            now = datetime.now(timezone.utc)
            ti.first_reschedule = ti.first_reschedule or now
            asked.append((later.reschedule_date - now).total_seconds())
            time.sleep(max((later.reschedule_date - now).total_seconds(), 0))
    raise AssertionError("the sensor never finished")


async def run_deferrable(
    task: Any, context: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> Any:
    """Run a task as Airflow would: execute, and when it defers, the trigger, then the method named.
    The trigger's events are appended to ``events``."""
    events = [] if events is None else events
    try:
        return task.execute(context)
    except TaskDeferred as deferred:
        events += [event.payload async for event in deferred.trigger.run()]
        assert len(events) == 1
        return getattr(task, deferred.method_name)(context, event=events[0])


async def trigger_events(batch_test_id: str, end_in: float = 20.0, poll: float = 0.1) -> list[dict[str, Any]]:
    trigger = RetellBatchTestTrigger(
        batch_test_id, "retell_default", poll_interval=poll, end_time=time.time() + end_in
    )
    return [event.payload async for event in trigger.run()]


# == 1. A lost create reply, then failing listings: a failed listing is no evidence of absence ========


def test_1_lost_reply_then_failing_listings_makes_one_batch(emulator, make_hook, capfd):
    hook = make_hook(create_settle_seconds=0.1)
    emulator.add_fault("POST", CREATE, "lost_reply", status_code=504)  # Retell made it; we saw a 504
    emulator.add_fault("GET", LIST, "delay", seconds=0)  # the listing before the create goes through
    # ...the listings after it fail past the settle window (a whole hook call of 4 tries, then 2 more).
    emulator.add_fault("GET", LIST, "status", status_code=503, times=6)

    batch = hook.create_batch_test(BOOKING, IDS)

    assert statuses(emulator, "GET", LIST) == [200] + [503] * 6 + [200]
    assert emulator.count("POST", CREATE) == 1  # never sent again, though no listing showed it in 0.1 s
    assert billed(emulator) == [batch.id]
    assert "no evidence the create did not land" in capfd.readouterr().out


async def test_1_async_lost_reply_then_dropped_listings_makes_one_batch(emulator, make_hook):
    hook = make_hook(create_settle_seconds=0.2)
    emulator.add_fault("POST", CREATE, "lost_reply")  # applied, then the connection is dropped
    emulator.add_fault("GET", LIST, "delay", seconds=0)
    emulator.add_fault("GET", LIST, "drop", times=6)
    try:
        batch = await hook.acreate_batch_test(BOOKING, IDS)
    finally:
        await hook.aclose()

    assert statuses(emulator, "GET", LIST) == [200] + [None] * 6 + [200]
    assert emulator.count("POST", CREATE) == 1
    assert billed(emulator) == [batch.id]


# == 2. A 504 or a drop while Retell is still creating: the batch shows up a moment later ============


@pytest.mark.parametrize("answer", [{"status_code": 504}, {}], ids=["504", "drop"])
def test_2_gateway_fails_while_retell_is_still_creating(emulator, make_hook, answer):
    hook = make_hook(create_settle_seconds=5)
    # Every create is answered 504 (or dropped) at once and lands 0.8 s later.
    emulator.add_fault("POST", CREATE, "late_apply", seconds=0.8, times=5, **answer)
    clock = Clock()

    batch = hook.create_batch_test(BOOKING, IDS)

    assert emulator.count("GET", LIST) >= 3  # before; at once (nothing yet); after it landed
    assert emulator.count("POST", CREATE) == 1
    assert billed(emulator) == [batch.id]
    assert 0.8 <= clock.elapsed < 5  # adopted as soon as it appeared, not at the end of the window


def test_2_every_create_504s_one_batch(emulator, make_hook):
    hook = make_hook(create_settle_seconds=0.5)
    emulator.add_fault("POST", CREATE, "status", status_code=504)  # a 504 that was really not applied
    emulator.add_fault("POST", CREATE, "late_apply", status_code=504, seconds=0.3, times=5)

    batch = hook.create_batch_test(BOOKING, IDS)

    assert billed(emulator) == [batch.id]
    # The first 504 made nothing: sent again only after listings since the settle window showed none.
    # The second 504 made the batch 0.3 s later: found, adopted, no third create.
    assert statuses(emulator, "POST", CREATE) == [504, 504]
    first, second = (r["timestamp"] for r in emulator.requests("POST", CREATE))
    # The window runs from the submit time, taken just before the listing that precedes the POST.
    assert second - first >= 0.5 - 0.1


# == 3. A create that times out and lands later; a task killed mid-POST =============================
# (the real execution_timeout under dag.test() is tests/e2e/test_chaos_e2e.py)


def test_3_create_timing_out_past_the_try_is_adopted_by_the_next_try(emulator, make_hook):
    store = MemoryIntentStore()  # task_state_store: it outlives the try
    emulator.add_fault("POST", CREATE, "delay", seconds=1.5)  # Retell makes it 1.5 s after the POST
    first_try = make_hook(timeout=0.3, create_settle_seconds=10)

    with pytest.raises(RetellTimeoutError, match="intent stays recorded") as info:
        first_try.create_batch_test(BOOKING, IDS, intent_store=store, end=time.time() + 0.8)

    assert "next try of this task looks for its batch" in str(info.value)
    assert store.load() is not None
    assert billed(emulator) == []  # not there yet
    second_try = make_hook(create_settle_seconds=10)

    batch = second_try.create_batch_test(BOOKING, IDS, intent_store=store, end=time.time() + 10)

    assert billed(emulator) == [batch.id]
    assert emulator.count("POST", CREATE) == 1
    assert store.load() is None  # cleared once the batch id is known


def test_3_task_killed_mid_post_next_try_adopts(emulator, make_hook):
    store = MemoryIntentStore()
    emulator.add_fault("POST", CREATE, "delay", seconds=1.0)
    first_try = make_hook(create_settle_seconds=10)

    # Airflow's own execution_timeout (SIGALRM) fires while the POST waits for its reply.
    with pytest.raises(AirflowTaskTimeout), execution_timeout(0.4):
        first_try.create_batch_test(BOOKING, IDS, intent_store=store)

    intent = store.load()
    assert intent is not None
    assert intent["test_case_definition_ids"] == IDS
    second_try = make_hook(create_settle_seconds=10)

    batch = second_try.create_batch_test(BOOKING, IDS, intent_store=store, end=time.time() + 10)

    assert billed(emulator) == [batch.id]
    assert emulator.count("POST", CREATE) == 1
    assert store.load() is None


class BrokenStore(MemoryIntentStore):
    def save(self, intent: dict[str, Any]) -> None:
        raise OSError("the metadata database is gone")


def test_3_intent_that_cannot_be_recorded_sends_nothing(emulator, make_hook):
    with pytest.raises(OSError, match="metadata database"):
        make_hook().create_batch_test(BOOKING, IDS, intent_store=BrokenStore())

    assert emulator.count("POST", CREATE) == 0
    assert billed(emulator) == []


def test_3_task_without_a_durable_store_sends_nothing(emulator):
    context = fake_context()
    del context["task_state_store"]

    with pytest.raises(RetellError, match="task_state_store"):
        operator(response_engine=BOOKING, test_case_definition_ids=IDS).execute(context)

    assert emulator.count("POST", CREATE) == 0


class RecordingStore(FakeStore):
    """A ``task_state_store`` that keeps a copy of every write: each is where a dead worker may leave it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[dict[str, Any]] = []

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.writes.append(json.loads(json.dumps(value)))
        super().set(key, value)


def test_3_a_worker_dying_after_any_write_of_the_record_makes_no_second_batch(emulator):
    store = RecordingStore()
    operator(response_engine=BOOKING, test_case_definition_ids=IDS, **NO_BOUNDS).execute(fake_context(store))
    assert emulator.count("POST", CREATE) == 1
    sent = next(i for i, w in enumerate(store.writes) if w["create_intent"] is not None)

    for written in store.writes[sent:]:  # after each write from the intent on, the worker dies...
        if written["create_intent"] is None and None in written["rounds"][-1]["batch_test_ids"]:
            # ...and the next try starts from this record: neither the intent nor the batch id.
            retry = fake_context(FakeStore({"retell_batch_test": written}))
            operator(response_engine=BOOKING, test_case_definition_ids=IDS, **NO_BOUNDS).execute(retry)
            assert emulator.count("POST", CREATE) == 1


# == 4. Five or more 5xx/429 in a row in every waiting path: no failure before the deadline ==========
# One outage policy: a transient error while waiting means "not finished yet", Retry-After honoured.

STORM = 5  # one more than the hook's bounded retries (max_retries=3: 4 requests) would survive
RETRY_AFTER = 0.25


def storm(emulator, path: str, times: int = STORM) -> None:
    """503s and 429s alternating, each with ``Retry-After``."""
    for i in range(times):
        emulator.add_fault("GET", path, "status", status_code=(503, 429)[i % 2], retry_after=RETRY_AFTER)


def assert_weathered(emulator, path: str) -> None:
    """Every failed read was followed by another, never sooner than Retry-After; the last succeeded."""
    assert statuses(emulator, "GET", path)[: STORM + 1] == [503, 429, 503, 429, 503, 200]
    assert min(gaps(emulator, "GET", path)[:STORM]) >= RETRY_AFTER - 0.02


def test_4_sync_operator_wait_outlasts_a_storm(emulator):
    storm(emulator, GET)

    result = operator().execute(fake_context())

    assert result["gate_passed"] is True
    assert_weathered(emulator, GET)
    assert billed(emulator, SUPPORT) == [result["batch_test_id"]]


async def test_4_check_before_deferring_and_trigger_outlast_a_storm(emulator):
    """The trigger alone: also test_fault_matrix.py::test_trigger_survives_a_5xx_storm (5 503s)."""
    storm(emulator, GET)  # the task's own look before deferring gets the first 503, the trigger the rest

    events: list[dict[str, Any]] = []
    result = await run_deferrable(operator(deferrable=True), fake_context(), events)

    assert [event["status"] for event in events] == ["complete"]
    assert result["gate_passed"] is True
    assert statuses(emulator, "GET", GET) == [503, 429, 503, 429, 503, 200]
    assert min(gaps(emulator, "GET", GET)[1:]) >= RETRY_AFTER - 0.02  # the trigger's backoff
    assert emulator.count("POST", CREATE) == 1


async def test_4_retry_after_of_the_check_before_deferring_is_honoured(emulator):
    emulator.add_fault("GET", GET, "status", status_code=429, retry_after=1)

    await run_deferrable(operator(deferrable=True), fake_context())

    (gap,) = gaps(emulator, "GET", GET)
    assert gap >= 1.0 - 0.02


def test_4_sensor_poke_outlasts_a_storm(emulator):
    batch_test_id = existing_batch(emulator)
    storm(emulator, GET)

    result = sensor(batch_test_id).execute(fake_context())

    assert result["batch_test_id"] == batch_test_id
    assert result["gate_passed"] is True
    assert_weathered(emulator, GET)


def test_4_sensor_reschedule_outlasts_a_storm(emulator):
    batch_test_id = existing_batch(emulator)
    storm(emulator, GET)
    context = fake_context()
    context["ti"] = RescheduleTI()

    result, asked = run_rescheduled(sensor(batch_test_id, mode="reschedule"), context)

    assert result["gate_passed"] is True
    assert len(asked) == STORM  # one reschedule per failed poke...
    assert min(asked) >= RETRY_AFTER - 0.05  # ...each one at least Retry-After away
    assert_weathered(emulator, GET)


def test_4_sensor_reschedule_never_sleeps_past_the_deadline(emulator):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "status", status_code=503, retry_after=600)
    context = fake_context()
    context["ti"] = RescheduleTI()

    with pytest.raises(AirflowRescheduleException) as info:
        sensor(batch_test_id, mode="reschedule", timeout=5).execute(context)

    asked = (info.value.reschedule_date - datetime.now(timezone.utc)).total_seconds()
    assert asked <= 5 + OVERRUN


@pytest.mark.parametrize("mode", ["block", "poke"])
def test_4_runs_listing_that_builds_the_result_outlasts_a_storm(emulator, mode):
    """agent_booking's batch has a failure: its runs are listed to name it, through the storm. (After
    a deferral the worker lists them as in block mode: ``BatchTestWaiter._read``.)"""
    if mode == "poke":
        task: Any = sensor(existing_batch(emulator, BOOKING, IDS), **NO_BOUNDS)
    else:
        task = operator(response_engine=BOOKING, test_case_definition_ids=IDS, **NO_BOUNDS)
    storm(emulator, RUNS)

    result = task.execute(fake_context())

    assert (result["pass_count"], result["fail_count"], result["total_count"]) == (2, 1, 3)
    assert [c["test_case_definition_id"] for c in result["failed_test_cases"]] == ["tcd_booking_07"]
    assert_weathered(emulator, RUNS)
    assert len(billed(emulator)) == 1


# == 5. A reply that trickles (1 byte a second) cannot outlive the deadline by more than 5 s ==========

ONE_BYTE_A_SECOND = {"headers": Trickle(1, 1.0, "headers"), "body": Trickle(1, 1.0, "body")}


def test_5_sync_operator_wait_with_trickling_headers_ends_at_the_deadline(via_chaos, emulator):
    via_chaos.route("GET", GET, forward(emulator.url, trickle=ONE_BYTE_A_SECOND["headers"]))
    clock = Clock()

    with pytest.raises(RetellTimeoutError) as info:
        operator(timeout=1).execute(fake_context())

    assert 1 <= clock.elapsed < 1 + OVERRUN
    assert "Timed out after 1s" in str(info.value)
    assert "keeps running in Retell" in str(info.value)
    assert emulator.count("POST", CREATE) == 1
    assert len([r for r in via_chaos.requests if r.method == "GET" and "/get-batch-test/" in r.path]) == 1


@pytest.fixture
def short_grace(monkeypatch) -> float:
    """The last poll's grace past the deadline cut from 3 s to 0.5 s (the 3 s is measured above)."""
    monkeypatch.setattr("airflow_provider_retell.hooks.retell.LAST_POLL_GRACE_SECONDS", 0.5)
    return 0.5


def test_5_sensor_poke_with_a_trickling_body_ends_at_the_deadline(via_chaos, emulator, short_grace):
    batch_test_id = existing_batch(emulator)
    via_chaos.route("GET", GET, forward(emulator.url, trickle=ONE_BYTE_A_SECOND["body"]))
    clock = Clock()

    with pytest.raises(RetellTimeoutError, match="Timed out after 1s"):
        sensor(batch_test_id, timeout=1).execute(fake_context())

    assert 1 <= clock.elapsed < 1 + short_grace + 1


async def test_5_trigger_with_a_trickling_reply_ends_at_the_deadline(via_chaos, emulator, short_grace):
    batch_test_id = existing_batch(emulator)
    via_chaos.route("GET", GET, forward(emulator.url, trickle=Trickle(1, 1.0, "both")))
    clock = Clock()

    (event,) = await trigger_events(batch_test_id, end_in=1)

    assert 1 <= clock.elapsed < 1 + short_grace + 1
    assert event["status"] == "timeout"
    assert "no whole reply within the request's time budget" in event["message"]


def test_5_create_reconciliation_listing_that_trickles_ends_at_the_deadline(via_chaos, emulator, make_hook):
    """After an ambiguous create, the listings that look for its batch are bounded by the run's
    deadline too (no hook retry past it), so a trickling listing cannot hold the task."""
    hook = make_hook(via_chaos.url, create_settle_seconds=30)
    emulator.add_fault("POST", CREATE, "lost_reply", status_code=504)
    via_chaos.route("GET", LIST, forward(emulator.url), times=1)  # the listing before the create
    via_chaos.route("GET", LIST, forward(emulator.url, trickle=ONE_BYTE_A_SECOND["headers"]))
    store = MemoryIntentStore()
    clock = Clock()

    with pytest.raises(RetellTimeoutError, match="intent stays recorded"):
        hook.create_batch_test(BOOKING, IDS, intent_store=store, end=time.time() + 1)

    assert 1 <= clock.elapsed < 1 + OVERRUN
    assert store.load() is not None  # the next try looks for the batch before sending anything
    assert emulator.count("POST", CREATE) == 1


# == 6. A listing that never ends: stopped at a repeated key or at the page cap, naming the endpoint ==


def test_6_repeated_pagination_key_stops_at_once(via_chaos, make_hook):
    hook = make_hook(via_chaos.url)
    via_chaos.route("GET", RUNS, endless_page([], "page_again"))
    clock = Clock()

    with pytest.raises(RetellAPIError) as info:
        hook.list_test_runs("tcbj_endless")

    assert "GET /v2/list-test-runs/tcbj_endless" in str(info.value)
    assert "repeats" in str(info.value)
    assert not info.value.transient  # a broken server: not retried
    assert len(via_chaos.requests) == 2  # the key came back on the second page
    assert clock.elapsed < 2


def test_6_endless_distinct_keys_stop_at_the_page_cap(via_chaos, make_hook):
    hook = make_hook(via_chaos.url)
    keys = itertools.count()
    via_chaos.route("GET", LIST, lambda req: endless_page([], f"key_{next(keys)}"))
    clock = Clock()

    with pytest.raises(RetellAPIError, match="more than 100 pages") as info:
        hook.list_batch_tests(BOOKING)

    assert "GET /v2/list-batch-tests" in str(info.value)
    assert len(via_chaos.requests) == 100
    assert clock.elapsed < 10


def test_6_endless_listing_before_a_create_sends_nothing(via_chaos, emulator, make_hook):
    hook = make_hook(via_chaos.url)
    via_chaos.route("GET", LIST, endless_page([], "page_again"))

    with pytest.raises(RetellAPIError, match="repeats"):
        hook.create_batch_test(BOOKING, IDS)

    assert [r.method for r in via_chaos.requests] == ["GET", "GET"]
    assert billed(emulator) == []


def test_6_endless_runs_listing_fails_the_wait_naming_the_endpoint(via_chaos, emulator):
    via_chaos.route("GET", RUNS, endless_page([], "page_again"))
    clock = Clock()

    with pytest.raises(RetellAPIError, match="/v2/list-test-runs/") as info:
        operator(response_engine=BOOKING, test_case_definition_ids=IDS, **NO_BOUNDS).execute(fake_context())

    assert "repeats" in str(info.value)
    assert clock.elapsed < 5  # a broken listing is not an outage: no waiting it out
    assert emulator.count("POST", CREATE) == 1


# == 7. A complete batch whose counts do not add up fails the gate, whatever the bounds ===============

FIVE = ["tcd_booking_01", "tcd_booking_02", "tcd_booking_03", "tcd_booking_04", "tcd_booking_05"]
BAD_COUNTS = {  # (pass, fail, error) of 5 cases that all passed
    "none-of-5": (0, 0, 0),
    "1-of-5": (1, 0, 0),
    "7-passed-of-5": (7, 0, 0),
    "negative": (6, -1, 0),
}


@pytest.mark.parametrize("path", ["operator", "sensor-poke", "deferrable-trigger-event"])
@pytest.mark.parametrize("counts", BAD_COUNTS.values(), ids=BAD_COUNTS.keys())
async def test_7_counts_that_do_not_add_up_fail_the_gate(emulator, path, counts):
    passed, failed, errored = counts
    patch = {"pass_count": passed, "fail_count": failed, "error_count": errored}
    if path == "sensor-poke":
        task: Any = sensor(existing_batch(emulator, BOOKING, FIVE), **NO_BOUNDS)
    else:
        task = operator(
            response_engine=BOOKING,
            test_case_definition_ids=FIVE,
            deferrable="deferrable" in path,
            **NO_BOUNDS,
        )
    if "deferrable" in path:  # the look before deferring sees it running: the trigger's event carries it
        emulator.add_fault("GET", GET, "patch", json={"status": "in_progress"})
    emulator.add_fault("GET", GET, "patch", json=patch, times=100)
    context, events = fake_context(), []

    with pytest.raises(RetellQualityGateError) as info:
        await run_deferrable(task, context, events)

    if events:  # the counts reached the task through the trigger's event, and were not trusted there
        assert events[0]["batch_test"]["pass_count"] == passed
    assert f"{passed} passed + {failed} failed + {errored} errored != 5 total" in str(info.value)
    (pushed,) = [value for key, value in context["ti"].pushed if key == "return_value"]
    assert pushed["gate_passed"] is False
    assert any("do not add up" in reason for reason in pushed["gate_reasons"])
    assert len(billed(emulator)) == 1


# == 8-10. Strict input: durations, the engine's keys, ids. Nothing is sent ==========================
# tests/integration/test_bad_input.py already covers, with zero requests: the operator's poll_interval
# 0 / nan / inf, timeout -5 / inf / 1e14, the sensor's poke_interval nan, the extras timeout 0 and
# "inf", connect_timeout "nan" (case 8); the operator's response_engine {"verison": 2} (case 9); the
# ids "..", "x?version=7", "x#y", "agent booking", "tcd_booking_01\n" on the operator and ".." on
# the sensor (case 10). What it does not cover is here.


def trigger_with(**kwargs: Any) -> Callable[[], Any]:
    kwargs = {"batch_test_id": "tcbj_1", "poll_interval": 1, "end_time": time.time() + 60, **kwargs}
    return lambda: RetellBatchTestTrigger(**kwargs)


def hook_call(method: str, *args: Any) -> Callable[[], Any]:
    return lambda: getattr(RetellHook(), method)(*args)


BAD_DURATIONS: dict[str, tuple[Callable[[], Any], str]] = {
    "op-poll-interval-1e14": (lambda: operator(poll_interval=1e14), "poll_interval"),
    "op-poll-interval-below-0.1": (lambda: operator(poll_interval=0.01), "poll_interval"),
    "op-timeout-nan": (lambda: operator(timeout=math.nan), "timeout"),
    "op-timeout-8-days": (lambda: operator(timeout=timedelta(days=8)), "timeout"),
    "sensor-timeout-inf": (lambda: sensor("tcbj_1", timeout=math.inf), "timeout"),
    "sensor-timeout-nan": (lambda: sensor("tcbj_1", timeout=math.nan), "timeout"),
    "sensor-poke-interval-1e14": (lambda: sensor("tcbj_1", poke_interval=1e14), "poke_interval"),
    "sensor-poke-interval-inf": (lambda: sensor("tcbj_1", poke_interval=math.inf), "poke_interval"),
    "trigger-poll-interval-nan": (trigger_with(poll_interval=math.nan), "poll_interval"),
    "trigger-end-time-inf": (trigger_with(end_time=math.inf), "end_time"),
    "trigger-end-time-nan": (trigger_with(end_time=math.nan), "end_time"),
    "trigger-first-poll-inf": (trigger_with(first_poll_at=math.inf), "first_poll_at"),
}
BAD_EXTRAS = {
    "timeout": [0, "0", "inf", "-inf", "nan", -1, 1e14],
    "connect_timeout": [0, "inf", -1],
    "max_retry_wait": ["nan", "inf", -0.5],
    "max_retries": [1e14, "inf", 0.5],
    "create_settle_seconds": ["inf", "nan", -1, 1e14],
}


@pytest.mark.parametrize(("call", "argument"), BAD_DURATIONS.values(), ids=BAD_DURATIONS.keys())
def test_8_durations_out_of_range_are_refused(emulator, call, argument):
    with pytest.raises(RetellInputError) as info:
        call()

    assert argument in str(info.value)
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("extra", "value"),
    [(extra, value) for extra, values in BAD_EXTRAS.items() for value in values],
    ids=[f"{extra}={value}" for extra, values in BAD_EXTRAS.items() for value in values],
)
def test_8_connection_extras_out_of_range_are_refused(emulator, connect, extra, value):
    connect(**{extra: value})

    with pytest.raises(RetellInputError) as info:
        RetellHook().get_batch_test("tcbj_1")

    assert f"extra {extra!r}" in str(info.value)
    assert emulator.requests() == []


@pytest.mark.parametrize(
    "call",
    [
        hook_call("create_batch_test", {**BOOKING, "verison": 2}, IDS),
        hook_call("list_batch_tests", {**BOOKING, "verison": 2}),
        hook_call("list_test_case_definitions", {**BOOKING, "verison": 2}),
        lambda: operator(response_engine={**BOOKING, "verison": 2}),  # refused when the DAG is parsed
    ],
    ids=["hook-create", "hook-list-batches", "hook-list-definitions", "operator-at-parse"],
)
def test_9_a_typo_in_response_engine_is_refused_by_name(emulator, call):
    with pytest.raises(RetellInputError, match="verison"):
        call()

    assert emulator.requests() == []


HOSTILE_IDS = [
    "..", ".", "x?version=7", "x#y", "a b", "a\tb", "tcbj_1\n", "tcbj_1\r\nX-Injected: 1", "a\x00b",
    "a/b", "a%2Fb", "%2e%2e", "tcbj_é", "", "x" * 129,
]  # fmt: skip
HOSTILE_ENTRY_POINTS: dict[str, Callable[[str], Any]] = {
    "hook-get-batch": lambda bad: RetellHook().get_batch_test(bad),
    "hook-list-runs": lambda bad: RetellHook().list_test_runs(bad),
    "hook-get-agent": lambda bad: RetellHook().get_agent(bad),
    "hook-create-engine-id": lambda bad: RetellHook().create_batch_test(
        {"type": "retell-llm", "llm_id": bad}, IDS
    ),
    "hook-create-case-ids": lambda bad: RetellHook().create_batch_test(BOOKING, ["tcd_booking_01", bad]),
    "operator-agent-id": lambda bad: operator(response_engine=None, agent_id=bad),
    "operator-case-ids": lambda bad: operator(test_case_definition_ids=[bad]),
    "sensor-batch-id": lambda bad: sensor(bad),
    "sensor-batch-ids": lambda bad: sensor(["tcbj_1", bad]),  # type: ignore[list-item]
    "trigger-batch-ids": lambda bad: RetellBatchTestTrigger(batch_test_ids=["tcbj_1", bad], end_time=1.0),
}


@pytest.mark.parametrize("entry", HOSTILE_ENTRY_POINTS.values(), ids=HOSTILE_ENTRY_POINTS.keys())
@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=[repr(b)[:20] for b in HOSTILE_IDS])
def test_10_hostile_ids_never_reach_a_url(emulator, entry, bad):
    with pytest.raises(RetellInputError, match="Retell id"):
        entry(bad)

    assert emulator.requests() == []


def test_10_a_create_reply_with_a_hostile_id_is_not_used(via_chaos, emulator, make_hook):
    """The reply is unusable, so the create is ambiguous: its batch is found by listing, never re-sent."""
    hook = make_hook(via_chaos.url)
    hostile = {"test_case_batch_job_id": "../get-agent/agent_booking"}
    via_chaos.route("POST", CREATE, forward(emulator.url, lambda d: {**d, **hostile}), times=1)

    batch = hook.create_batch_test(BOOKING, IDS)

    assert batch.id.startswith("tcbj_")
    assert emulator.count("POST", CREATE) == 1
    assert billed(emulator) == [batch.id]


async def test_10_a_reply_about_another_batch_is_an_error(emulator, make_hook):
    batch_test_id = existing_batch(emulator)
    emulator.add_fault("GET", GET, "patch", json={"test_case_batch_job_id": "tcbj_someone_else"}, times=2)

    with pytest.raises(RetellAPIError, match=f"about batch test tcbj_someone_else, not {batch_test_id}"):
        make_hook().get_batch_test(batch_test_id)
    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "error"
    assert "tcbj_someone_else" in event["message"]
    assert emulator.count("GET", GET) == 2  # neither retried nor waited out


# == 11. Environment proxies never see an http:// request or its key; https honours the proxy ========

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def proxy_everything(chaos_server: ChaosServer, monkeypatch) -> ChaosServer:
    """Every proxy variable names the chaos server; nothing is exempt from it."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, chaos_server.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return chaos_server


def test_11_http_to_loopback_never_goes_through_an_environment_proxy(proxy_everything, emulator, make_hook):
    hook = make_hook()

    batch = hook.create_batch_test(BOOKING, IDS)
    assert hook.get_batch_test(batch.id).is_complete
    assert len(hook.list_test_runs(batch.id)) == len(IDS)

    assert proxy_everything.requests == []
    assert proxy_everything.connections == 0
    assert emulator.count() > 3
    assert billed(emulator) == [batch.id]


async def test_11_trigger_never_goes_through_an_environment_proxy(proxy_everything, emulator):
    batch_test_id = existing_batch(emulator)

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert proxy_everything.connections == 0
    assert emulator.count("GET", GET) == 1


def test_11_http_with_allow_insecure_http_ignores_the_environment_too(proxy_everything, emulator, make_hook):
    hook = make_hook(emulator.url.replace("127.0.0.1", "localhost"), allow_insecure_http=True)

    assert hook.list_batch_tests(BOOKING) == []

    assert hook.settings.proxy is None
    assert proxy_everything.connections == 0


def connect_requests(server: ChaosServer) -> list[Request]:
    assert server.requests, "the proxy saw nothing"
    assert {r.method for r in server.requests} == {"CONNECT"}
    return server.requests


@pytest.mark.parametrize("source", ["extra", "environment"])
def test_11_https_goes_through_the_proxy_with_the_key_inside_the_tunnel(
    chaos_server, emulator, make_hook, monkeypatch, source
):
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = chaos_server.url.replace("://", "://proxyuser:proxy-pass-s3cret@")
    if source == "environment":
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        hook = make_hook("https://api.retell.invalid", max_retries=0)
    else:
        hook = make_hook("https://api.retell.invalid", max_retries=0, proxy=proxy)

    with pytest.raises(RetellAPIError) as info:  # this proxy refuses every tunnel
        hook.get_batch_test("tcbj_1")

    (tunnel,) = connect_requests(chaos_server)
    assert tunnel.raw_target == "api.retell.invalid:443"
    assert "authorization" not in tunnel.headers  # the bearer key would only travel inside TLS
    assert emulator.api_key not in repr(tunnel)
    assert tunnel.headers["proxy-authorization"].startswith("Basic ")
    assert info.value.reason == "connect"  # never reached Retell
    assert "proxy-pass-s3cret" not in str(info.value)
    assert emulator.requests() == []


def test_11_no_proxy_exempts_an_https_host(chaos_server, make_hook, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", chaos_server.url)
    monkeypatch.setenv("NO_PROXY", "localhost,.retell.invalid")

    assert make_hook("https://api.retell.invalid").settings.proxy is None
    assert make_hook("https://api.retellai.com").settings.proxy == chaos_server.url


# == 12. Text from Retell that echoes the key: no form of it in an exception, a log line or an event ==

TOKEN = "C0ffeeKeyCore42"  # what any surviving form of the key would show
KEY = f'sk/"{TOKEN}"\\\'%+&=~'  # characters every escaping scheme rewrites, all legal in a header


def key_forms(key: str) -> list[str]:
    """The key as an echo may show it: raw, JSON-, repr- and unicode-escaped, percent-encoded."""
    percent = [quote(key, safe=""), quote(key), quote_plus(key), quote(key, safe="-_.!~*'()")]
    lower_hex = [re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), p) for p in percent]
    escaped = [json.dumps(key)[1:-1], json.dumps(key).replace("/", "\\/")[1:-1], repr(key)[1:-1]]
    return [key, *escaped, key.encode("unicode_escape").decode(), *percent, *lower_hex]


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text, text[:2000]
        assert TOKEN.lower() not in text.lower()


def key_of(req: Request) -> str:
    return req.headers["authorization"].removeprefix("Bearer ")


def echo_key(status: int, body: str = "json") -> Callable[[Request], Reply]:
    """An error reply whose text holds the request's key in every form: in a JSON message, in a JSON
    list (read back as a Python repr) or in a page that is not JSON."""

    def handler(req: Request) -> Reply:
        key = key_of(req)
        text = "bad credentials: " + " | ".join(key_forms(key))
        if body == "json":
            return Reply(status, json={"status": "error", "message": text})
        if body == "list":
            return Reply(status, json=["bad credentials", key])
        return Reply(status, body=f"<html><body>{text}</body></html>", headers={"content-type": "text/html"})

    return handler


@pytest.fixture
def echoing(chaos_server: ChaosServer, connect) -> ChaosServer:
    assert len(set(key_forms(KEY))) == 11  # different texts: each must be found
    connect(chaos_server.url, password=KEY)
    return chaos_server


@pytest.mark.parametrize("body", ["json", "list", "html"])
@pytest.mark.parametrize("status", [401, 503])
def test_12_an_error_body_echoing_the_key_is_scrubbed_from_errors_and_logs(echoing, capfd, status, body):
    echoing.route("GET", GET, echo_key(status, body))
    hook = RetellHook()

    with pytest.raises(RetellAPIError) as info:
        hook.get_batch_test("tcbj_1")

    assert key_of(echoing.requests[0]) == KEY  # the key really was sent, and echoed
    assert info.value.status_code == status
    assert "***" in str(info.value)
    assert len(echoing.requests) == (1 if status == 401 else 4)  # 503: retried, each retry logged
    out, err = capfd.readouterr()
    assert_no_key(str(info.value), repr(info.value), info.value.message, out, err)


async def test_12_trigger_event_and_log_never_carry_the_key(echoing, capfd):
    echoing.route("GET", GET, echo_key(503), times=2)  # waited out, logged...
    echoing.route("GET", GET, echo_key(401, "html"))  # ...then a permanent error: the event

    (event,) = await trigger_events("tcbj_1")

    assert event["status"] == "error"
    assert event["status_code"] == 401
    assert "***" in event["message"]
    out, err = capfd.readouterr()
    assert_no_key(json.dumps(event), out, err)


def test_12_waiting_task_logs_and_errors_never_carry_the_key(echoing, capfd):
    echoing.route("GET", GET, echo_key(429), times=2)
    echoing.route("GET", GET, echo_key(403))

    with pytest.raises(RetellPermanentError) as info:
        sensor("tcbj_1").execute(fake_context())

    assert info.value.status_code == 403
    out, err = capfd.readouterr()
    assert "will try again" in out + err
    assert_no_key(str(info.value), out, err)


@pytest.mark.parametrize("where", ["pagination_key", "engine_type", "status"])
async def test_12_a_success_reply_echoing_the_key_is_scrubbed_too(echoing, capfd, where):
    """Text from Retell reaches an error or a log line from a 2xx reply too: a listing that repeats
    the key as its pagination key, a field whose invalid value pydantic quotes, an unknown status."""

    def batch(req: Request) -> Reply:
        engine_type = key_of(req) if where == "engine_type" else "retell-llm"
        status = key_of(req) if where == "status" else "in_progress"
        return Reply(
            json={
                "test_case_batch_job_id": "tcbj_1", "status": status,
                "response_engine": {"type": engine_type, "llm_id": "llm_x"},
                "pass_count": 0, "fail_count": 0, "error_count": 0, "total_count": 1,
                "creation_timestamp": 1,
            }
        )  # fmt: skip

    echoing.route("GET", GET, batch)
    echoing.route("GET", RUNS, lambda req: endless_page([], key_of(req)))
    texts: list[str] = []
    if where == "pagination_key":
        with pytest.raises(RetellAPIError) as info:
            RetellHook().list_test_runs("tcbj_1")
        texts.append(str(info.value))
    else:
        events = await trigger_events("tcbj_1", end_in=0.5)
        texts.append(json.dumps(events))
    out, err = capfd.readouterr()
    assert_no_key(*texts, out, err)


@pytest.mark.parametrize(
    "bad_key",
    [
        "sk-line\nX-Injected: 1",
        "sk-nul\x00tail-secret",
        "sk-caf\u00e9-secret",
        "sk-inner space-secret",
        "sk-tab\tsecret",
    ],
    ids=["newline", "nul", "non-ascii", "space", "tab"],
)
def test_12_a_key_httpx_could_not_send_is_refused_without_printing_it(emulator, connect, bad_key):
    connect(password=bad_key)

    with pytest.raises(RetellInputError, match="API key holds a character") as info:
        RetellHook().get_batch_test("tcbj_1")

    assert "secret" not in str(info.value)
    assert "X-Injected" not in str(info.value)
    assert emulator.requests() == []


def test_12_any_error_an_operation_raises_is_scrubbed_by_the_runner(echoing):
    def operation() -> Any:
        yield from ()
        raise RetellAPIError(f"a reply quoted {json.dumps(KEY)} and {quote(KEY)}", reason="reply")

    with pytest.raises(RetellAPIError) as info:
        RetellHook().run(operation())

    assert "a reply quoted" in str(info.value)
    assert_no_key(str(info.value), info.value.message)


# == 13. Sizes are bounded: replies, nesting, unknown fields, the result =============================

MIB = 1024 * 1024


def counted_huge_body(size: int, sent: list[int], *, content_length: bool) -> Reply:
    """A JSON string of ``size`` bytes, generated in 64 KiB chunks; ``sent`` counts what was generated."""
    chunk = b"a" * 65536

    def generate() -> Iterator[bytes]:
        yield b'"'
        for _ in range((size - 2) // len(chunk)):
            sent[0] += len(chunk)
            yield chunk
        yield b'"'

    return Reply(body=Lazy(generate), length=size if content_length else None)


@pytest.mark.parametrize("content_length", [True, False], ids=["announced", "close-delimited"])
def test_13_a_100_mb_reply_is_refused_without_reading_it_all(chaos_server, make_hook, content_length):
    sent = [0]
    chaos_server.route("GET", GET, counted_huge_body(100 * MIB, sent, content_length=content_length))
    hook = make_hook(chaos_server.url)
    clock = Clock()

    with pytest.raises(RetellAPIError, match="larger than 1 MiB: not reading it") as info:
        hook.get_batch_test("tcbj_1")  # one batch test: far below the 1 MiB cap of a single object

    assert not info.value.transient
    assert len(chaos_server.requests) == 1
    assert clock.elapsed < 5
    if content_length:  # refused on its Content-Length: only what the socket buffers took was sent
        assert sent[0] < 16 * MIB
    else:  # read up to the cap, then dropped
        assert SMALL_REPLY_BYTES <= sent[0] < SMALL_REPLY_BYTES + 16 * MIB


async def test_13_a_100_mb_reply_ends_the_trigger_with_an_error(chaos_server, connect):
    sent = [0]
    chaos_server.route("GET", GET, counted_huge_body(100 * MIB, sent, content_length=False))
    connect(chaos_server.url)

    (event,) = await trigger_events("tcbj_1")

    assert event["status"] == "error"
    assert "larger than 1 MiB" in event["message"]
    assert sent[0] < SMALL_REPLY_BYTES + 16 * MIB


@pytest.mark.parametrize("objects", [False, True], ids=["arrays", "objects"])
async def test_13_deeply_nested_json_is_a_clear_error(chaos_server, connect, objects):
    chaos_server.route("GET", GET, nested_json(100_000, objects=objects))
    chaos_server.route("GET", RUNS, Reply(503, body=nested_json(100_000, objects=objects).body))
    connect(chaos_server.url, max_retries=0)
    hook = RetellHook()

    with pytest.raises(RetellAPIError, match="nested too deeply") as sync_error:
        hook.get_batch_test("tcbj_1")
    with pytest.raises(RetellAPIError, match="nested too deeply") as async_error:
        await hook.aget_batch_test("tcbj_1")
    with pytest.raises(RetellAPIError, match="HTTP 503") as error_reply:  # an error status: cut text
        hook.list_test_runs("tcbj_1")
    await hook.aclose()

    assert sync_error.value.__suppress_context__  # a clear error, not a RecursionError's traceback
    assert sync_error.value.reason == async_error.value.reason == "reply"
    assert len(str(error_reply.value)) < 1000


async def test_13_nested_unknown_fields_never_reach_the_trigger_event(emulator):
    batch_test_id = existing_batch(emulator)
    nested: Any = "deep"
    for _ in range(200):
        nested = {"n": nested}
    emulator.add_fault(
        "GET",
        GET,
        "patch",
        json={
            "cost_breakdown": {"usd": 1.5, "per_case": [nested] * 50},
            "response_engine": {"type": "conversation-flow", "conversation_flow_id": "cf_support",
                                "version": 1, "internal": nested},
        },
    )  # fmt: skip

    (event,) = await trigger_events(batch_test_id)

    assert event["status"] == "complete"
    assert set(event["batch_test"]) == {
        "test_case_batch_job_id", "status", "response_engine", "pass_count", "fail_count", "error_count",
        "total_count", "creation_timestamp", "user_modified_timestamp",
    }  # fmt: skip
    assert event["batch_test"]["response_engine"] == {**SUPPORT, "version": 1}
    assert len(json.dumps(event)) < 2000


@pytest.fixture
def failing_suite(emulator) -> list[str]:
    """An engine with 200 test cases that all fail, with long names and long explanations."""
    ids = [f"tcd_big_{i:03d}_{'x' * 100}" for i in range(200)]
    emulator.seed(
        {
            "agents": [{"agent_id": "agent_big", "response_engine": {"type": "retell-llm", "llm_id": "llm_big"}}],
            "test_case_definitions": [
                {"test_case_definition_id": tcd, "name": f"case {tcd} " + "n" * 5000,
                 "response_engine": {"type": "retell-llm", "llm_id": "llm_big"}, "outcome": "fail",
                 "result_explanation": "e" * 50_000}
                for tcd in ids
            ],
        },
        time_scale=0,
    )  # fmt: skip
    return ids


@pytest.mark.parametrize("gate", ["off", "failing"])
def test_13_a_huge_result_stays_within_64_kib(emulator, failing_suite, gate):
    bounds = NO_BOUNDS if gate == "off" else {}
    task = operator(response_engine={"type": "retell-llm", "llm_id": "llm_big"}, **bounds)
    task.test_case_definition_ids = None  # every definition of the engine: 200 cases
    context = fake_context()

    if gate == "off":
        result = task.execute(context)
    else:
        with pytest.raises(RetellQualityGateError, match="200 failed") as info:
            task.execute(context)
        assert len(str(info.value)) < MAX_RESULT_BYTES
        (result,) = [value for key, value in context["ti"].pushed if key == "return_value"]

    assert len(json.dumps(result).encode()) <= MAX_RESULT_BYTES
    assert result["truncated"] is True
    assert (result["fail_count"], result["total_count"]) == (200, 200)
    assert 0 < len(result["failed_test_cases"]) <= 50
    assert all(len(case["name"]) <= 200 for case in result["failed_test_cases"])
    assert all(len(case["result_explanation"] or "") <= 500 for case in result["failed_test_cases"])
    assert emulator.count("POST", CREATE) == 1
