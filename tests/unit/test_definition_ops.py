"""Definition writes, driven step by step against a scripted Retell with a fake clock.

The create tests count the definitions Retell ends up holding under the name: exactly one, whatever
the network did (reconciliation by name, like the batch create in test_creating.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from _drive import NOW, Driver, log, no_reply, status
from _retell_helpers import LLM_ENGINE, page

from airflow_provider_retell.creating import UNBOUNDED_GRACE_SECONDS, MemoryIntentStore
from airflow_provider_retell.definition_ops import (
    CREATE_PATH,
    INTENT_KEY,
    LIST_PATH,
    TaskStateIntentStore,
    create_definition,
    delete_definition,
    forget_landed,
    update_definition,
)
from airflow_provider_retell.definitions import DefinitionSpec
from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellInputError,
    RetellPermanentError,
    RetellTimeoutError,
)
from airflow_provider_retell.models import TestCaseDefinition as DefinitionModel
from airflow_provider_retell.models import parse_engine_input
from airflow_provider_retell.operations import Call
from airflow_provider_retell.retry import RetryPolicy
from tests.fakes import FakeStore

ENGINE = parse_engine_input(LLM_ENGINE)  # llm_1, version 2
DEFINITION_ENGINE = {"type": "retell-llm", "llm_id": "llm_1"}  # what a definition belongs to
SPEC = DefinitionSpec(name="refund", user_prompt="You want a refund.", metrics=["offers a refund"])
SETTLE = 30.0


class FakeRetell:
    """The engine's definitions; what each create does is scripted in ``creates``.

    A create entry is ``"ok"``, an error that proves nothing was applied, or ``(error, visible_after)``:
    Retell made the definition but the reply was lost, and listings show it ``visible_after`` seconds on
    (None: never made at all, although the reply was ambiguous).
    """

    def __init__(self, creates: list[Any] | None = None, page_size: int = 2) -> None:
        self.creates = list(creates or [])
        self.page_size = page_size
        self.definitions: list[tuple[float, dict[str, Any]]] = []  # (visible at, definition)
        self.posts: list[dict[str, Any]] = []
        self.listings = 0
        self._ids = itertools.count(1)

    def add(self, name: str, *, visible_at: float | None = None, **fields: Any) -> str:
        definition_id = f"tcd_{next(self._ids)}"
        definition = {
            "test_case_definition_id": definition_id,
            "name": name,
            "response_engine": DEFINITION_ENGINE,
            "user_prompt": "p",
            "metrics": ["m"],
            **fields,
        }
        self.definitions.append((time.time() if visible_at is None else visible_at, definition))
        return definition_id

    def named(self, name: str) -> list[str]:
        """Every definition with the name Retell holds, visible yet or not."""
        return [d["test_case_definition_id"] for _, d in self.definitions if d["name"] == name]

    def __call__(self, call: Call) -> Any:
        if call.method == "POST":
            assert call.path == CREATE_PATH
            self.posts.append(call.json)
            outcome = self.creates.pop(0) if self.creates else "ok"
            if isinstance(outcome, RetellAPIError):
                raise outcome  # not applied
            fields = {k: v for k, v in call.json.items() if k not in ("name", "response_engine")}
            if outcome == "ok":
                definition_id = self.add(call.json["name"], **fields)
                return next(d for _, d in self.definitions if d["test_case_definition_id"] == definition_id)
            error, visible_after = outcome
            if visible_after is not None:
                self.add(call.json["name"], visible_at=time.time() + visible_after, **fields)
            raise error
        if call.path == LIST_PATH:
            assert call.params["llm_id"] == "llm_1"
            assert "version" not in call.params  # definitions are listed whatever their version
            self.listings += 1
            shown = [d for at, d in self.definitions if at <= time.time()]
            start = int(call.params.get("pagination_key") or 0)
            more = start + self.page_size < len(shown)
            return page(shown[start : start + self.page_size], str(start + self.page_size) if more else None)
        raise AssertionError(f"unexpected call {call}")


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def create(
    retell: Any, clock: Any, store: Any = None, spec: DefinitionSpec = SPEC, **kw: Any
) -> tuple[Any, Driver, Any]:
    store = store if store is not None else MemoryIntentStore()
    kw.setdefault("settle_seconds", SETTLE)
    kw.setdefault("retry", RetryPolicy(max_retries=2, initial_wait=0.5))
    driver = Driver(retell, clock)
    try:
        result: Any = driver.run(create_definition(ENGINE, spec, store=store, log=log, **kw))
    except Exception as exc:  # the test inspects it
        result = exc
    return result, driver, store


def intent(name: str = "refund", age: float = 0.0) -> dict[str, Any]:
    return {"submitted_at": NOW - age, "engine": DEFINITION_ENGINE, "name": name}


# -- create ------------------------------------------------------------------------------------------


def test_a_create_that_works_lists_then_sends_once_and_leaves_no_intent(clock: Any) -> None:
    retell = FakeRetell()
    for name in ("a", "b", "c"):  # two pages: every page is read before deciding the name is free
        retell.add(name)
    created, driver, store = create(retell, clock)
    assert isinstance(created, DefinitionModel)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert driver.paths() == [LIST_PATH, LIST_PATH, CREATE_PATH]
    assert store.intent is None


def test_the_body_is_the_spec_with_the_engine_and_no_version(clock: Any) -> None:
    retell = FakeRetell()
    spec = DefinitionSpec(name="refund", user_prompt="u", metrics=["m"], tool_mocks=[])
    create(retell, clock, spec=spec)
    assert retell.posts == [
        {
            "name": "refund",
            "user_prompt": "u",
            "metrics": ["m"],
            "tool_mocks": [],
            "response_engine": DEFINITION_ENGINE,
        }
    ]


def test_the_intent_is_recorded_before_the_post(clock: Any) -> None:
    retell = FakeRetell()
    seen: list[Any] = []

    class Watching(MemoryIntentStore):
        def save(self, intent: dict[str, Any]) -> None:
            seen.append((len(retell.posts), dict(intent)))
            super().save(intent)

    create(retell, clock, store=Watching())
    assert seen == [(0, intent())]


def test_when_the_intent_cannot_be_recorded_nothing_is_sent(clock: Any) -> None:
    class Broken(MemoryIntentStore):
        def save(self, intent: dict[str, Any]) -> None:
            raise OSError("state store unavailable")

    retell = FakeRetell()
    error, _, _ = create(retell, clock, store=Broken())
    assert isinstance(error, OSError)
    assert retell.posts == []


def test_a_name_the_engine_has_already_is_not_created_again(clock: Any) -> None:
    retell = FakeRetell()
    existing = retell.add("refund")
    error, driver, store = create(retell, clock)
    assert isinstance(error, RetellInputError)
    assert "'refund'" in str(error)
    assert existing in str(error)
    assert driver.paths("POST") == []
    assert store.intent is None


@pytest.mark.parametrize(
    "failure",
    [
        status(500),
        status(503),
        status(504),
        status(408),
        no_reply("timeout"),
        no_reply("dropped"),
        RetellAPIError("the reply is not valid JSON", status_code=201, reason="reply"),
    ],
    ids=lambda e: f"{e.reason}-{e.status_code}",
)
def test_a_lost_reply_is_reconciled_by_name_never_sent_again(clock: Any, failure: RetellAPIError) -> None:
    retell = FakeRetell(creates=[(failure, 0)])
    created, driver, store = create(retell, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 1
    assert driver.paths() == [LIST_PATH, CREATE_PATH, LIST_PATH]
    assert store.intent is None


def test_a_definition_that_appears_late_is_adopted_within_the_settle_window(clock: Any) -> None:
    retell = FakeRetell(creates=[(no_reply("dropped"), 7.0)])  # emulator: late_apply
    created, driver, _ = create(retell, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 1
    assert sum(driver.sleeps) >= 7.0
    assert time.time() - NOW < SETTLE


def test_a_create_that_never_landed_is_sent_again_after_the_settle_window(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), None)])
    created, _driver, store = create(retell, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 2
    assert time.time() - NOW >= SETTLE
    assert store.intent is None


def test_a_definition_that_appears_after_the_settle_window_is_still_adopted(clock: Any) -> None:
    """The last reconciling listing shows nothing; the listing before the next POST shows it: ours."""
    retell = FakeRetell(creates=[(status(504), None)])
    inner = retell.__call__
    late: list[str] = []

    def respond(call: Call) -> Any:
        if call.path == LIST_PATH and time.time() >= NOW + SETTLE and not late:
            late.append("listed once past the window")
        elif call.path == LIST_PATH and late and not retell.named("refund"):
            retell.add("refund")  # Retell finally shows the first create
        return inner(call)

    created, _, _ = create(respond, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 1


def test_two_definitions_with_the_name_after_a_lost_reply_fail_naming_them(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), 0)])
    inner = retell.__call__

    def respond(call: Call) -> Any:
        reply = inner(call)
        if call.method == "POST" or len(retell.posts) != 1 or len(retell.named("refund")) > 1:
            return reply
        retell.add("refund")  # someone else made one too
        return inner(call)

    error, _driver, store = create(respond, clock)
    assert isinstance(error, RetellPermanentError)
    for definition_id in retell.named("refund"):
        assert definition_id in str(error)
    assert len(retell.posts) == 1
    assert store.intent is None


def test_a_rejected_create_is_not_reconciled(clock: Any) -> None:
    retell = FakeRetell(creates=[status(422, "metrics are invalid")])
    error, driver, store = create(retell, clock)
    assert isinstance(error, RetellPermanentError)
    assert error.status_code == 422
    assert driver.paths() == [LIST_PATH, CREATE_PATH]
    assert store.intent is None


def test_a_refused_transient_create_is_sent_again_after_a_pause(clock: Any) -> None:
    retell = FakeRetell(creates=[status(429, retry_after=2.0)])  # 429: Retell did not act on it
    created, driver, _ = create(retell, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 2
    assert driver.sleeps == [2.0]


def test_creates_that_never_land_give_up_after_the_retries(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(503), None)] * 5)
    error, _, store = create(retell, clock, retry=RetryPolicy(max_retries=1, initial_wait=0.1))
    assert isinstance(error, RetellAPIError)
    assert "2 creates of test case definition 'refund' failed and made none" in str(error)
    assert len(retell.posts) == 2
    assert retell.named("refund") == []
    assert store.intent is None


def test_a_failed_listing_is_not_evidence_of_absence(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), 3.0)])
    inner = retell.__call__
    failures = iter([status(503)] * 4)

    def respond(call: Call) -> Any:
        if call.path == LIST_PATH and retell.posts and (failure := next(failures, None)) is not None:
            raise failure
        return inner(call)

    created, _, _ = create(respond, clock)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 1


def test_listings_failing_past_every_window_stop_with_the_intent_kept(clock: Any) -> None:
    retell = FakeRetell(creates=[(status(504), None)])
    inner = retell.__call__

    def respond(call: Call) -> Any:
        if call.path == LIST_PATH and retell.posts:
            raise status(503)
        return inner(call)

    error, _, store = create(respond, clock)
    assert isinstance(error, RetellTimeoutError)
    assert "next try" in str(error)
    assert len(retell.posts) == 1
    assert store.intent == intent()
    assert time.time() >= NOW + SETTLE + UNBOUNDED_GRACE_SECONDS


def test_a_reply_about_another_definition_is_no_reply(clock: Any) -> None:
    retell = FakeRetell()
    inner = retell.__call__

    def respond(call: Call) -> Any:
        reply = inner(call)
        return {**reply, "name": "someone else's"} if call.method == "POST" else reply

    created, _, _ = create(respond, clock)
    assert created.name == "refund"
    assert retell.named("refund") == [created.test_case_definition_id]
    assert len(retell.posts) == 1


# -- an intent left by an earlier try ------------------------------------------------------------------


def test_a_retry_adopts_what_the_earlier_try_created(clock: Any) -> None:
    retell = FakeRetell()
    made = retell.add("refund")
    store = MemoryIntentStore()
    store.save(intent(age=5))
    created, driver, _ = create(retell, clock, store=store)
    assert created.test_case_definition_id == made
    assert driver.paths() == [LIST_PATH]
    assert store.intent is None


def test_a_retry_waits_for_the_earlier_create_before_sending(clock: Any) -> None:
    retell = FakeRetell()
    retell.add("refund", visible_at=NOW + 10)  # the earlier try's POST lands late
    store = MemoryIntentStore()
    store.save(intent(age=5))
    created, _driver, _ = create(retell, clock, store=store)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert retell.posts == []


def test_a_retry_sends_once_the_earlier_create_proved_absent(clock: Any) -> None:
    retell = FakeRetell()
    store = MemoryIntentStore()
    store.save(intent(age=SETTLE + 1))
    created, driver, _ = create(retell, clock, store=store)
    assert retell.named("refund") == [created.test_case_definition_id]
    assert driver.paths() == [LIST_PATH, LIST_PATH, CREATE_PATH]


def test_an_intent_for_another_case_is_settled_first(clock: Any) -> None:
    retell = FakeRetell()
    other = retell.add("other case")
    store = MemoryIntentStore()
    store.save(intent("other case", age=5))
    created, _, _ = create(retell, clock, store=store)
    assert retell.named("other case") == [other]  # adopted, not created again
    assert retell.named("refund") == [created.test_case_definition_id]
    assert [p["name"] for p in retell.posts] == ["refund"]
    assert store.intent is None


def test_a_stored_value_that_is_no_intent_is_dropped(clock: Any) -> None:
    store = MemoryIntentStore()
    store.save({"unexpected": True})
    created, _, _ = create(FakeRetell(), clock, store=store)
    assert created.name == "refund"
    assert store.intent is None


def test_forget_landed_drops_an_intent_whose_definition_is_listed() -> None:
    listed = [DefinitionModel(test_case_definition_id="tcd_1", name="refund")]
    store = MemoryIntentStore()
    store.save(intent())
    forget_landed(store, ENGINE, [])
    assert store.intent == intent()  # not listed: the create still has to be found
    other_engine = parse_engine_input({"type": "retell-llm", "llm_id": "llm_2"})
    forget_landed(store, other_engine, listed)
    assert store.intent == intent()
    forget_landed(store, ENGINE, listed)  # the engine's version does not matter
    assert store.intent is None


def test_the_task_state_store_keeps_the_intent_under_its_key() -> None:
    backing = FakeStore()
    store = TaskStateIntentStore(backing)
    assert store.load() is None
    store.save(intent())
    assert backing.data == {INTENT_KEY: intent()}
    assert store.load() == intent()
    store.resolve(DefinitionModel(test_case_definition_id="tcd_1", name="refund"))
    assert backing.data == {}
    backing.data[INTENT_KEY] = "garbage"
    assert store.load() is None


# -- update and delete ------------------------------------------------------------------------------


def test_an_update_sends_only_the_changes(clock: Any) -> None:
    sent: list[Call] = []

    def respond(call: Call) -> Any:
        sent.append(call)
        return {"test_case_definition_id": "tcd_1", "name": "refund", **call.json}

    updated = Driver(respond, clock).run(update_definition("tcd_1", {"user_prompt": "new"}))
    assert updated.user_prompt == "new"
    ((call,),) = [sent]
    assert (call.method, call.path, call.json) == (
        "PUT",
        "/update-test-case-definition/tcd_1",
        {"user_prompt": "new"},
    )
    assert call.retry is not None  # idempotent: the runner may send it again


def test_an_update_reply_about_another_definition_is_an_error(clock: Any) -> None:
    with pytest.raises(RetellAPIError, match="tcd_2, not tcd_1"):
        Driver(lambda call: {"test_case_definition_id": "tcd_2"}, clock).run(
            update_definition("tcd_1", {"name": "x"})
        )


def test_a_bad_id_fails_before_any_request(clock: Any) -> None:
    driver = Driver(lambda call: pytest.fail("no request"), clock)
    for operation in (update_definition("../tcd", {"name": "x"}), delete_definition("tcd 1")):
        with pytest.raises(RetellInputError, match="test_case_definition_id"):
            driver.run(operation)
    assert driver.calls == []


@pytest.mark.parametrize("reply", [None, status(404)], ids=["deleted", "gone-already"])
def test_a_delete_succeeds_when_the_definition_is_gone(clock: Any, reply: Any) -> None:
    def respond(call: Call) -> Any:
        assert (call.method, call.path) == ("DELETE", "/delete-test-case-definition/tcd_1")
        if reply is not None:
            raise reply
        return None

    assert Driver(respond, clock).run(delete_definition("tcd_1")) is None


def test_a_delete_refused_otherwise_fails(clock: Any) -> None:
    def respond(call: Call) -> Any:
        raise status(403)

    with pytest.raises(RetellPermanentError):
        Driver(respond, clock).run(delete_definition("tcd_1"))
