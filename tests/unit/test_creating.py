"""The durable create protocol, driven step by step against a scripted Retell with a fake clock.

Every test counts the batches Retell ends up billing: exactly one, whatever the network did.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from _drive import NOW, Driver, log, no_reply, status
from _retell_helpers import LLM_ENGINE, batch_json, page, run_json

from airflow_provider_retell.creating import (
    CREATE_PATH,
    UNBOUNDED_GRACE_SECONDS,
    MemoryIntentStore,
    create_batch,
)
from airflow_provider_retell.exceptions import RetellAPIError, RetellPermanentError, RetellTimeoutError
from airflow_provider_retell.models import parse_engine_input
from airflow_provider_retell.operations import RECENT_PAGE_SIZE, Call
from airflow_provider_retell.retry import RetryPolicy

IDS = ["tcd_a", "tcd_b", "tcd_c"]
ENGINE = parse_engine_input(LLM_ENGINE)
SETTLE = 300.0


class FakeRetell:
    """Batches of one engine; what each create does is scripted in ``creates``.

    A create entry is ``"ok"``, an error that proves nothing was applied, or ``(error, visible_after)``:
    Retell made the batch but the reply was lost, and listings show it ``visible_after`` seconds on.
    """

    def __init__(self, creates: list[Any] | None = None, failing_listings: int = 0) -> None:
        self.creates = list(creates or [])
        self.failing_listings = failing_listings
        self.batches: list[tuple[float, dict[str, Any], list[str]]] = []  # (visible at, batch, ids)
        self.posts = 0
        self._ids = itertools.count(1)

    def add(
        self, *, age: float = 0, ids: list[str] = IDS, total: int | None = None, engine: dict | None = None
    ) -> str:
        batch_id = f"tcbj_{next(self._ids)}"
        created = int((time.time() - age) * 1000)
        batch = batch_json(
            batch_id,
            status="in_progress",
            engine=engine or LLM_ENGINE,
            passed=0,
            total=len(ids) if total is None else total,
            created_ms=created,
        )
        self.batches.append((time.time() - age, batch, ids))
        return batch_id

    @property
    def billed(self) -> list[str]:
        return [b["test_case_batch_job_id"] for _, b, _ in self.batches]

    def visible(self) -> list[dict[str, Any]]:
        now = time.time()
        shown = [b for at, b, _ in self.batches if at <= now]
        return sorted(shown, key=lambda b: b["creation_timestamp"], reverse=True)

    def __call__(self, call: Call) -> Any:
        if call.method == "POST":
            assert call.path == CREATE_PATH
            self.posts += 1
            outcome = self.creates.pop(0) if self.creates else "ok"
            if isinstance(outcome, RetellAPIError):
                raise outcome  # not applied
            batch_id = f"tcbj_{next(self._ids)}"
            created = int(time.time() * 1000)
            batch = batch_json(
                batch_id,
                status="in_progress",
                engine=LLM_ENGINE,
                passed=0,
                total=len(IDS),
                created_ms=created,
            )
            if outcome == "ok":
                self.batches.append((time.time(), batch, list(call.json["test_case_definition_ids"])))
                return batch
            error, visible_after = outcome
            self.batches.append(
                (time.time() + visible_after, batch, list(call.json["test_case_definition_ids"]))
            )
            raise error
        if call.path == "/v2/list-batch-tests":
            if self.failing_listings:
                self.failing_listings -= 1
                raise status(503)
            items = self.visible()
            start = int(call.params.get("pagination_key") or 0)
            limit = int(call.params["limit"])
            chunk = items[start : start + limit]
            more = start + limit < len(items)
            return page(chunk, str(start + limit) if more else None)
        if call.path.startswith("/v2/list-test-runs/"):
            wanted = call.path.rsplit("/", 1)[1]
            for _, batch, ids in self.batches:
                if batch["test_case_batch_job_id"] == wanted:
                    return page(
                        [run_json(f"{wanted}_{i}", "pending", definition_id=d) for i, d in enumerate(ids)]
                    )
        raise AssertionError(f"unexpected call {call}")


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def create(
    retell: FakeRetell, clock: Any, store: MemoryIntentStore | None = None, **kw: Any
) -> tuple[Any, Driver, MemoryIntentStore]:
    store = store if store is not None else MemoryIntentStore()
    kw.setdefault("settle_seconds", SETTLE)
    kw.setdefault("end", NOW + 3600)
    driver = Driver(retell, clock)
    try:
        result: Any = driver.run(create_batch(ENGINE, IDS, store=store, log=log, **kw))
    except Exception as exc:  # the test inspects it
        result = exc
    return result, driver, store


def test_a_create_that_works_sends_once_and_leaves_no_intent(clock: Any) -> None:
    retell = FakeRetell()
    retell.add(age=86_400)  # old history is not read past the first page
    batch, driver, store = create(retell, clock)
    assert batch.id == retell.billed[-1]
    assert retell.posts == 1
    assert driver.paths() == ["/v2/list-batch-tests", CREATE_PATH]
    assert store.intent is None


def test_the_intent_is_recorded_before_the_post(clock: Any) -> None:
    retell = FakeRetell()
    seen: list[Any] = []

    class Watching(MemoryIntentStore):
        def save(self, intent: dict[str, Any]) -> None:
            seen.append((retell.posts, dict(intent)))
            super().save(intent)

    create(retell, clock, store=Watching())
    ((posts_before, intent),) = seen
    assert posts_before == 0
    assert intent["submitted_at"] == NOW
    assert intent["test_case_definition_ids"] == IDS
    assert intent["engine"] == LLM_ENGINE


def test_when_the_intent_cannot_be_recorded_nothing_is_sent(clock: Any) -> None:
    class Broken(MemoryIntentStore):
        def save(self, intent: dict[str, Any]) -> None:
            raise OSError("state store unavailable")

    retell = FakeRetell()
    error, _, _ = create(retell, clock, store=Broken())
    assert isinstance(error, OSError)
    assert retell.posts == 0
    assert retell.billed == []


@pytest.mark.parametrize(
    "failure",
    [
        status(500),
        status(502),
        status(503),
        status(504),
        status(408),
        no_reply("timeout"),
        no_reply("dropped"),
        RetellAPIError("the reply is not valid JSON", status_code=201, reason="reply"),
    ],
    ids=lambda e: f"{e.reason}-{e.status_code}",
)
def test_an_ambiguous_create_adopts_its_batch(clock: Any, failure: RetellAPIError) -> None:
    retell = FakeRetell(creates=[(failure, 0)])
    batch, _, store = create(retell, clock)
    assert batch.id == retell.billed[0]
    assert retell.posts == 1
    assert len(retell.billed) == 1
    assert store.intent is None


def test_case_1_a_failed_listing_is_not_evidence_of_absence(clock: Any) -> None:
    """Reply lost, then the reconciliation listings fail: no second create, the batch is found later."""
    retell = FakeRetell(creates=[(status(504), 0)])
    listings = iter([None, status(503), status(503), status(503)])  # the pre-create listing works

    def respond(call: Call) -> Any:
        if call.path == "/v2/list-batch-tests" and (failure := next(listings, None)) is not None:
            raise failure
        return retell(call)

    driver = Driver(respond, clock)
    batch = driver.run(
        create_batch(ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=NOW + 3600, log=log)
    )
    assert batch.id == retell.billed[0]
    assert retell.posts == 1
    assert len(retell.billed) == 1


def test_case_1_listings_failing_past_the_settle_window_never_resend(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), 0)])
    retell.failing_listings = 0

    def respond(call: Call) -> Any:
        if call.path == "/v2/list-batch-tests" and retell.posts:
            raise status(503)
        return retell(call)

    driver = Driver(respond, clock)
    store = MemoryIntentStore()
    with pytest.raises(RetellTimeoutError, match="next try"):
        driver.run(create_batch(ENGINE, IDS, store=store, settle_seconds=SETTLE, end=NOW + 1000, log=log))
    assert retell.posts == 1
    assert store.intent is not None  # kept: the next try reconciles before it may send
    assert time.time() == pytest.approx(NOW + 1000)


@pytest.mark.parametrize(
    "failure", [status(504), no_reply("dropped"), no_reply("timeout")], ids=lambda e: e.reason
)
@pytest.mark.parametrize("visible_after", [1.5, 30, 299])
def test_case_2_a_batch_that_shows_up_late_is_adopted(
    clock: Any, failure: RetellAPIError, visible_after: float
) -> None:
    """The gateway answers at once while Retell is still creating: listings see nothing for a while."""
    retell = FakeRetell(creates=[(failure, visible_after)] * 3)
    batch, driver, _ = create(retell, clock)
    assert batch.id == retell.billed[0]
    assert retell.posts == 1
    assert len(retell.billed) == 1
    assert len(driver.paths("GET")) >= 3  # it listed again and again, never sent again


def test_no_batch_within_the_settle_window_sends_again_once(clock: Any) -> None:
    retell = FakeRetell(
        creates=[RetellAPIError("lost", status_code=504, reason="status")]
    )  # 504, not applied
    batch, driver, _ = create(retell, clock)
    assert retell.posts == 2
    assert len(retell.billed) == 1
    assert batch.id == retell.billed[0]
    second_post = [i for i, c in enumerate(driver.calls) if c.method == "POST"][1]
    assert driver.calls[second_post - 1].path == "/v2/list-batch-tests"
    # the decision to send again came from a listing made after the settle window
    assert time.time() >= NOW + SETTLE


def test_a_batch_landing_after_the_settle_window_is_the_documented_residual(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), SETTLE + 60)])
    create(retell, clock)
    assert retell.posts == 2  # the create was re-sent: the first batch appeared too late
    clock.shift(120)
    assert len(retell.visible()) == 2  # this is the residual window docs/reliability.md names


def test_sends_after_ambiguous_failures_are_bounded(clock: Any) -> None:
    not_applied = RetellAPIError("gateway", status_code=502, reason="status")
    retell = FakeRetell(creates=[not_applied] * 10)
    error, _, store = create(retell, clock, retry=RetryPolicy(max_retries=2), settle_seconds=5)
    assert isinstance(error, RetellAPIError)
    assert "3 creates failed" in str(error)
    assert retell.posts == 3
    assert retell.billed == []
    assert store.intent is None


def test_several_candidates_fail_naming_them_and_clear_the_intent(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), 0)])

    def respond(call: Call) -> Any:
        reply = retell(call)
        if (
            call.method == "GET"
            and call.path == "/v2/list-batch-tests"
            and retell.posts
            and len(retell.batches) == 1
        ):
            retell.add()  # someone else made the same batch meanwhile
            reply = retell(call)
        return reply

    driver = Driver(respond, clock)
    store = MemoryIntentStore()
    with pytest.raises(RetellPermanentError) as info:
        driver.run(create_batch(ENGINE, IDS, store=store, settle_seconds=SETTLE, end=NOW + 3600, log=log))
    for batch_id in retell.billed:
        assert batch_id in str(info.value)
    assert retell.posts == 1
    assert store.intent is None


@pytest.mark.parametrize(
    "theirs",
    [
        {"age": 10},  # listed before our create: never ours
        {"ids": ["tcd_x", "tcd_y", "tcd_z"]},  # same size, other cases
        {"total": 4, "ids": ["tcd_a", "tcd_b", "tcd_c", "tcd_d"]},
        {"engine": {**LLM_ENGINE, "llm_id": "llm_2"}},
    ],
    ids=["before", "other-cases", "other-size", "other-engine"],
)
def test_batches_that_are_not_ours_are_never_adopted(clock: Any, theirs: dict[str, Any]) -> None:
    retell = FakeRetell(creates=[RetellAPIError("lost", status_code=500, reason="status")])
    if theirs.get("age") == 10:
        retell.add(age=10)
        theirs_id = retell.billed[0]
    else:
        theirs_id = None

    def respond(call: Call) -> Any:
        nonlocal theirs_id
        if call.method == "GET" and retell.posts == 1 and theirs_id is None:
            theirs_id = retell.add(**theirs)
        return retell(call)

    driver = Driver(respond, clock)
    batch = driver.run(
        create_batch(ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=NOW + 3600, log=log)
    )
    assert batch.id != theirs_id
    assert retell.posts == 2


def test_case_3_a_later_try_reconciles_before_it_sends(clock: Any) -> None:
    """The worker died (or execution_timeout fired) mid-POST: the batch landed, the reply never came."""
    retell = FakeRetell()
    store = MemoryIntentStore()
    first = Driver(retell, clock)
    operation = create_batch(ENGINE, IDS, store=store, settle_seconds=SETTLE, end=NOW + 3600, log=log)
    step = operation.send(None)
    while not (hasattr(step, "method") and step.method == "POST"):
        step = operation.send(first.respond(step))
    retell(step)  # Retell applies the create...
    operation.close()  # ...and the try is killed before the reply arrives
    assert store.intent is not None

    clock.shift(40)
    batch, driver, _ = create(retell, clock, store=store)
    assert batch.id == retell.billed[0]
    assert retell.posts == 1
    assert "POST" not in [c.method for c in driver.calls]
    assert store.intent is None


def test_case_3_an_intent_whose_create_never_landed_waits_out_the_settle_window(clock: Any) -> None:
    store = MemoryIntentStore()
    store.save(
        {"submitted_at": NOW - 100, "engine": LLM_ENGINE, "test_case_definition_ids": IDS, "before": []}
    )
    retell = FakeRetell()
    batch, driver, _ = create(retell, clock, store=store)
    assert retell.posts == 1
    assert batch.id == retell.billed[0]
    first_post = next(i for i, c in enumerate(driver.calls) if c.method == "POST")
    assert time.time() >= NOW - 100 + SETTLE  # waited from the recorded submit time, not from now
    assert driver.calls[first_post - 1].path == "/v2/list-batch-tests"


def test_an_intent_for_other_cases_is_refused(clock: Any) -> None:
    store = MemoryIntentStore()
    store.save(
        {"submitted_at": NOW, "engine": LLM_ENGINE, "test_case_definition_ids": ["tcd_z"], "before": []}
    )
    retell = FakeRetell()
    error, _, _ = create(retell, clock, store=store)
    assert isinstance(error, RetellAPIError)
    assert retell.posts == 0


def test_without_a_deadline_the_protocol_still_ends(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), 0)])

    def respond(call: Call) -> Any:
        if call.path == "/v2/list-batch-tests" and retell.posts:
            raise status(503)
        return retell(call)

    driver = Driver(respond, clock)
    with pytest.raises(RetellTimeoutError):
        driver.run(
            create_batch(ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=None, log=log)
        )
    assert time.time() <= NOW + SETTLE + UNBOUNDED_GRACE_SECONDS + 1


def test_a_permanent_error_on_create_clears_the_intent_and_raises(clock: Any) -> None:
    retell = FakeRetell(creates=[status(402, "trial ended")])
    error, _, store = create(retell, clock)
    assert isinstance(error, RetellPermanentError)
    assert store.intent is None
    assert retell.posts == 1


def test_a_create_that_surely_did_not_land_is_sent_again_under_a_new_intent(clock: Any) -> None:
    """A 429 (or no connection) proves Retell did not act: sent again after Retry-After, with a fresh
    snapshot and submit time, so the settle window of the create that lands is measured from it."""
    retell = FakeRetell(creates=[status(429, retry_after=7), no_reply("connect")])
    saved: list[dict[str, Any]] = []

    class Watching(MemoryIntentStore):
        def save(self, intent: dict[str, Any]) -> None:
            saved.append(dict(intent))
            super().save(intent)

    batch, driver, _ = create(retell, clock, store=Watching())
    assert batch.id == retell.billed[0]
    assert retell.posts == 3
    assert len(retell.billed) == 1
    assert [c.path for c in driver.calls].count("/v2/list-batch-tests") == 3  # a snapshot before each send
    assert [i["submitted_at"] for i in saved] == [NOW, NOW + 7, saved[2]["submitted_at"]]
    assert saved[2]["submitted_at"] > NOW + 7
    assert all(
        c.retry is None for c in driver.calls if c.method == "POST"
    )  # never retried blind by the runner


def test_a_batch_that_matches_all_but_the_version_fails_closed(clock: Any) -> None:
    retell = FakeRetell(creates=[RetellAPIError("lost", status_code=500, reason="status")])

    def respond(call: Call) -> Any:
        if call.method == "GET" and retell.posts == 1 and len(retell.batches) == 0:
            retell.add(engine={**LLM_ENGINE, "version": 3})
        return retell(call)

    driver = Driver(respond, clock)
    with pytest.raises(RetellPermanentError, match="another engine version"):
        driver.run(
            create_batch(
                ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=NOW + 3600, log=log
            )
        )
    assert retell.posts == 1  # neither adopted nor sent again


def test_our_batch_is_found_whatever_retells_clock_says(clock: Any) -> None:
    """The worker's clock runs three minutes ahead: Retell stamps our batch 'before' our submit time.
    Batches newer than the snapshot are candidates, whatever their timestamps."""
    retell = FakeRetell(creates=[(status(504), 0)])
    retell.add(age=3600)  # history

    def respond(call: Call) -> Any:
        reply = retell(call) if call.method != "POST" else None
        if call.method == "POST":
            try:
                retell(call)
            finally:
                _, batch, _ = retell.batches[-1]
                batch["creation_timestamp"] -= 180_000  # Retell's clock lags ours by 3 minutes
        return reply

    driver = Driver(respond, clock)
    batch = driver.run(
        create_batch(ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=NOW + 3600, log=log)
    )
    assert batch.id == retell.billed[-1]
    assert retell.posts == 1


def test_a_runs_listing_not_there_yet_is_never_absence(clock: Any) -> None:
    """A candidate whose runs are not listed yet cannot be adopted (it may be another run's batch) and
    cannot be ignored: listings go on, and after the settle window the create fails closed."""
    retell = FakeRetell(creates=[(status(504), 0)])

    def respond(call: Call) -> Any:
        if call.path.startswith("/v2/list-test-runs/"):
            return page([])
        return retell(call)

    driver = Driver(respond, clock)
    with pytest.raises(RetellPermanentError, match="runs not listed yet"):
        driver.run(
            create_batch(
                ENGINE, IDS, store=MemoryIntentStore(), settle_seconds=SETTLE, end=NOW + 3600, log=log
            )
        )
    assert retell.posts == 1
    assert time.time() >= NOW + SETTLE


# -- the recent-batches listing stays cheap ------------------------------------------------------------


def test_the_pre_create_listing_reads_one_page_of_a_long_history(clock: Any) -> None:
    retell = FakeRetell()
    for age in range(2500):
        retell.add(age=3600 + age)
    _, driver, _ = create(retell, clock)
    listings = [c for c in driver.calls if c.path == "/v2/list-batch-tests"]
    assert len(listings) == 1
    assert listings[0].params["limit"] == RECENT_PAGE_SIZE


def test_a_listing_that_is_not_newest_first_is_read_to_the_end(clock: Any) -> None:
    retell = FakeRetell()
    for age in range(120):
        retell.add(age=3600 + age)
    retell.visible = lambda: [b for _, b, _ in reversed(retell.batches)]  # type: ignore[method-assign]  # oldest first
    _, driver, _ = create(retell, clock)
    listings = [c for c in driver.calls if c.path == "/v2/list-batch-tests"]
    assert len(listings) == 3  # 120 batches by 50: every page, because the order did not hold
