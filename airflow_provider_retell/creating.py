"""The durable create protocol: one billed batch for every create, whatever the network does.

Retell has no idempotency key, so a create whose outcome is unknown must be found, not re-sent:

1. Before the POST, the intent is recorded (submit time, engine, ids, the engine's batches already
   there). If it cannot be recorded, nothing is sent. The record outlives the try (Airflow's
   ``task_state_store``), so a retry, an ``execution_timeout`` or a dead worker reconciles first.
2. Any outcome after which the batch may exist (no reply, read timeout, 5xx, a dropped
   connection, an unreadable 2xx) is ambiguous: the engine's recent batches are listed until one
   matches (adopted), several match (the run fails, naming them), or listings that started after
   the settle window (``create_settle_seconds`` from the submit time) still show none. Only then
   is the create sent again. A failed listing is never evidence of absence.
3. The record is cleared once the batch id is known.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from airflow_provider_retell.exceptions import RetellAPIError, RetellPermanentError, RetellTimeoutError
from airflow_provider_retell.models import (
    BatchTest,
    TestableEngine,
    TestRun,
    parse_engine_input,
    parse_response,
)
from airflow_provider_retell.operations import Call, Operation, Sleep, list_runs, recent_batches

CREATE_PATH = "/create-batch-test"
#: How far Retell's clock may lag ours when matching an ambiguous create to its batch.
CREATE_CLOCK_SKEW_SECONDS = 120.0
#: Longest pause between two reconciliation listings.
MAX_LISTING_PAUSE_SECONDS = 30.0
#: Without a deadline (the hook used on its own), how long past the settle window listings may
#: keep failing before the create is given up (its intent kept, so a later call looks first).
UNBOUNDED_GRACE_SECONDS = 300.0


class IntentStore(Protocol):
    """Where the create intent lives between attempts and tries (``save`` must be durable)."""

    def load(self) -> dict[str, Any] | None: ...
    def save(self, intent: dict[str, Any]) -> None: ...
    def clear(self) -> None: ...


class MemoryIntentStore:
    """For a create made outside a task (the hook used on its own): durable only in this process."""

    def __init__(self) -> None:
        self.intent: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        return self.intent

    def save(self, intent: dict[str, Any]) -> None:
        self.intent = dict(intent)

    def clear(self) -> None:
        self.intent = None


class CreateIntent(BaseModel):
    """A create that was (or is about to be) sent, and how to recognise its batch."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    submitted_at: float
    engine: dict[str, Any]
    test_case_definition_ids: list[str]
    before: list[str]  # the engine's batches listed just before: never ours

    def is_for(self, engine: TestableEngine, ids: Sequence[str]) -> bool:
        return self.engine == engine.model_dump(exclude_none=True) and self.test_case_definition_ids == list(
            ids
        )

    def may_be_ours(self, batch: BatchTest) -> bool:
        fields = {"type", "llm_id", "conversation_flow_id"}
        same_engine = batch.response_engine.model_dump(include=fields) == {
            k: v for k, v in self.engine.items() if k in fields
        }
        version = self.engine.get("version")
        return (
            batch.id not in self.before
            and same_engine
            and (version is None or getattr(batch.response_engine, "version", None) == version)
            and batch.total_count == len(self.test_case_definition_ids)
            and batch.creation_timestamp >= (self.submitted_at - CREATE_CLOCK_SKEW_SECONDS) * 1000
        )

    def ran_our_cases(self, runs: Sequence[TestRun]) -> bool:
        """The same test cases; a batch whose runs are not listed yet cannot be told apart: maybe ours."""
        return not runs or {r.test_case_definition_id for r in runs} == set(self.test_case_definition_ids)

    def describe(self) -> str:
        sent = time.strftime("%H:%M:%S", time.gmtime(self.submitted_at))
        return f"the create of {len(self.test_case_definition_ids)} test cases sent at {sent} UTC"


def create_batch(
    engine: TestableEngine,
    ids: Sequence[str],
    *,
    store: IntentStore,
    settle_seconds: float,
    end: float | None,
    log: Any,
    max_sends: int = 4,
) -> Operation[BatchTest]:
    """Start one batch of ``ids`` (1-200) on ``engine``: never a second billed batch (module doc).

    ``end`` bounds the whole protocol (None: the settle window plus ``UNBOUNDED_GRACE_SECONDS``);
    ``max_sends`` bounds the creates sent after ambiguous outcomes that proved to be failures.
    """
    stored = store.load()
    if stored is not None:
        intent = CreateIntent.model_validate(stored)
        if not intent.is_for(engine, ids):
            raise RetellAPIError("the recorded create intent is for other test cases: not sending a create")
        log.warning(
            "%s had no known outcome: looking for its batch before sending anything", intent.describe()
        )
        batch = yield from _reconcile(intent, store, settle_seconds, end, log)
        if batch is not None:
            return batch
    engine_json = engine.model_dump(exclude_none=True)
    body = {"response_engine": engine_json, "test_case_definition_ids": list(ids)}
    last_error = RetellAPIError("no create was sent")
    for _ in range(max_sends):
        now = time.time()
        before = yield from recent_batches(engine, (now - CREATE_CLOCK_SKEW_SECONDS) * 1000, end=end)
        intent = CreateIntent(
            submitted_at=now,
            engine=engine_json,
            test_case_definition_ids=list(ids),
            before=[b.id for b in before],
        )
        store.save(intent.model_dump())  # raises when it cannot be recorded: then nothing is sent
        try:
            reply = yield Call("POST", CREATE_PATH, json=body, retry=_surely_not_applied, end=end)
            batch = parse_response(BatchTest, reply, method="POST", path=CREATE_PATH)
        except RetellAPIError as exc:
            if not exc.maybe_applied:
                store.clear()
                raise
            log.warning(
                "The create's outcome is unknown (%s): looking for its batch before sending again", exc
            )
            found = yield from _reconcile(intent, store, settle_seconds, end, log)
            if found is None:
                last_error = exc
                continue
            return found
        store.clear()
        return batch
    store.clear()  # listings since each settle window showed that none of these creates landed
    raise RetellAPIError(
        f"{max_sends} creates had no reply and made no batch; the last failed with: {last_error.message}",
        status_code=last_error.status_code,
        method="POST",
        path=CREATE_PATH,
        reason=last_error.reason,
    )


def _surely_not_applied(exc: BaseException) -> bool:
    """Retried blind by the runner: transient failures that prove Retell did not act (429, no connection)."""
    return isinstance(exc, RetellAPIError) and exc.transient and not exc.maybe_applied


def _reconcile(
    intent: CreateIntent, store: IntentStore, settle_seconds: float, end: float | None, log: Any
) -> Operation[BatchTest | None]:
    """The batch ``intent`` made, or None once listings since the settle window show none."""
    pause = 1.0
    settled_at = intent.submitted_at + settle_seconds
    if end is None:
        end = settled_at + UNBOUNDED_GRACE_SECONDS
    while True:
        started = time.time()
        try:
            engine = parse_engine_input(intent.engine)
            recent = yield from recent_batches(
                engine, (intent.submitted_at - CREATE_CLOCK_SKEW_SECONDS) * 1000, end=end
            )
            ours = []
            for candidate in (b for b in recent if intent.may_be_ours(b)):
                runs = yield from list_runs(candidate.id, end=end)
                if intent.ran_our_cases(runs):
                    ours.append(candidate)
        except RetellAPIError as exc:
            if not exc.transient:
                raise
            log.warning("Listing batch tests failed (%s): that is no evidence the create did not land", exc)
        else:
            if len(ours) == 1:
                log.warning("Adopting batch test %s, made by %s", ours[0].id, intent.describe())
                store.clear()
                return ours[0]
            if ours:
                store.clear()  # a person must look; a re-run then starts afresh
                raise RetellPermanentError(
                    f"{intent.describe()} had no known outcome and {len(ours)} batch tests of this engine "
                    f"with these test cases appeared since ({', '.join(b.id for b in ours)}); not creating "
                    "another: check them in Retell",
                    method="POST",
                    path=CREATE_PATH,
                )
            if started >= settled_at:
                log.warning(
                    "No batch test from %s appeared within the %.0f s settle window: sending it again",
                    intent.describe(),
                    settle_seconds,
                )
                return None
        now = time.time()
        if now >= end:
            raise RetellTimeoutError(
                f"The run's deadline passed while {intent.describe()} still had no known outcome. The "
                "intent stays recorded: the next try of this task looks for its batch before sending anything."
            )
        wait = min(pause, settled_at - now if settled_at > now else pause, end - now)
        yield Sleep(max(wait, 0.0))
        pause = min(pause * 2, MAX_LISTING_PAUSE_SECONDS)
