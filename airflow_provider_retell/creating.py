"""The durable create protocol: one billed batch for every create, whatever the network does.

Retell has no idempotency key, so a create whose outcome is unknown must be found, not re-sent:

1. The engine's newest batches are listed (``before``: never ours). Then, immediately before each
   POST, the intent is recorded (submit time, engine, ids, ``before``). If it cannot be recorded,
   nothing is sent. The record outlives the try (Airflow's ``task_state_store``), so a retry, an
   ``execution_timeout`` or a dead worker reconciles first.
2. Any outcome after which the batch may exist (no reply, read timeout, 5xx, a dropped
   connection, an unreadable or implausible 2xx) is ambiguous: the engine's batches newer than
   ``before`` are listed until exactly one ran our cases (adopted), several did (the run fails,
   naming them), or listings that started after the settle window (``create_settle_seconds``
   from the submit time) show none (then the create is sent again). A failed listing is never
   evidence of absence, and a batch whose runs are not listed yet, or that matches all but the
   engine version, is never taken for absence either.
3. The batch id and the cleared intent are written in one step (``IntentStore.resolve``), so no
   moment exists in which a killed worker leaves neither behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from airflow_provider_retell.exceptions import RetellAPIError, RetellPermanentError, RetellTimeoutError
from airflow_provider_retell.models import (
    BatchTest,
    TestableEngine,
    TestRun,
    parse_engine_input,
    parse_response,
)
from airflow_provider_retell.operations import (
    SMALL_REPLY_BYTES,
    Call,
    Operation,
    Sleep,
    list_runs,
    patiently,
    recent_batches,
)
from airflow_provider_retell.retry import OutagePolicy, RetryPolicy

CREATE_PATH = "/create-batch-test"
#: How far Retell's clock may lag ours; only used where the listing's order cannot be relied on.
CREATE_CLOCK_SKEW_SECONDS = 120.0
#: Longest pause between two reconciliation listings.
MAX_LISTING_PAUSE_SECONDS = 30.0
#: Without a deadline (the hook used on its own), how long past the settle window listings may
#: keep failing before the create is given up (its intent kept, so a later call looks first).
UNBOUNDED_GRACE_SECONDS = 300.0
_ENGINE_FIELDS = {"type", "llm_id", "conversation_flow_id"}


_Made = TypeVar("_Made", contravariant=True)


class IntentStore(Protocol[_Made]):
    """Where a create's intent lives between attempts and tries (each write must be durable).

    ``_Made`` is what a create makes: a batch test here, a test case definition in ``definition_ops``.
    """

    def load(self) -> dict[str, Any] | None: ...
    def save(self, intent: dict[str, Any]) -> None: ...
    def clear(self) -> None: ...
    def resolve(self, made: _Made) -> None:
        """Record what the intent made and clear the intent, in one write."""
        ...


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

    def resolve(self, made: object) -> None:
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

    def same_kind(self, batch: BatchTest) -> bool:
        """Same engine (type and id) and size, and not listed before: it may be ours."""
        wanted = {k: v for k, v in self.engine.items() if k in _ENGINE_FIELDS}
        return (
            batch.id not in self.before
            and batch.response_engine.model_dump(include=_ENGINE_FIELDS) == wanted
            and batch.total_count == len(self.test_case_definition_ids)
        )

    def same_version(self, batch: BatchTest) -> bool:
        """No contradiction: either side without a version matches; two different versions do not."""
        version, listed = self.engine.get("version"), getattr(batch.response_engine, "version", None)
        return version is None or listed is None or listed == version

    def plausible_reply(self, batch: BatchTest) -> bool:
        """A create's 2xx that names a batch which cannot be the one just made is no reply at all."""
        return self.same_kind(batch) and self.same_version(batch)

    def describe(self) -> str:
        sent = time.strftime("%H:%M:%S", time.gmtime(self.submitted_at))
        return f"the create of {len(self.test_case_definition_ids)} test cases sent at {sent} UTC"


def ran_only_our_cases(intent: CreateIntent, runs: Sequence[TestRun]) -> bool | None:
    """True: every listed run is one of ours (a partial listing included). False: it ran a case we did
    not ask for. None: no run listed yet, so it cannot be told apart."""
    if not runs:
        return None
    return {r.test_case_definition_id for r in runs} <= set(intent.test_case_definition_ids)


def create_batch(
    engine: TestableEngine,
    ids: Sequence[str],
    *,
    store: IntentStore[BatchTest],
    settle_seconds: float,
    end: float | None,
    log: Any,
    retry: RetryPolicy | None = None,
    patient: bool = False,
) -> Operation[BatchTest]:
    """Start one batch of ``ids`` (1-200) on ``engine``: never a second billed batch (module doc).

    ``end`` bounds the whole protocol (None: the settle window plus ``UNBOUNDED_GRACE_SECONDS``).
    ``retry`` bounds the creates re-sent after failures that proved nothing was made. ``patient``
    (the run already billed batches): listings that fail transiently are retried until ``end``.
    """
    retry = retry or RetryPolicy()
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
    failures = 0
    while True:
        if end is not None and time.time() >= end:
            store.clear()  # whatever was recorded made no batch (or was found above)
            raise RetellTimeoutError(
                "The run's deadline passed before the create could be sent; nothing was started."
            )
        before = yield from _listing(
            engine, (time.time() - CREATE_CLOCK_SKEW_SECONDS) * 1000, end, log, patient
        )
        engine_json = _pinned(engine, before).model_dump(exclude_none=True)
        body = {"response_engine": engine_json, "test_case_definition_ids": list(ids)}
        intent = CreateIntent(
            submitted_at=time.time(),
            engine=engine_json,
            test_case_definition_ids=list(ids),
            before=[b.id for b in before],
        )
        store.save(intent.model_dump())  # raises when it cannot be recorded: then nothing is sent
        try:
            reply = yield Call(
                "POST", CREATE_PATH, json=body, retry=None, end=end, max_bytes=SMALL_REPLY_BYTES
            )
            batch = parse_response(BatchTest, reply, method="POST", path=CREATE_PATH)
            if not intent.plausible_reply(batch):
                raise RetellAPIError(
                    f"the create's reply names batch test {batch.id}, which cannot be the one just made",
                    method="POST",
                    path=CREATE_PATH,
                    reason="reply",
                )
        except RetellAPIError as exc:
            if exc.maybe_applied:
                log.warning(
                    "The create's outcome is unknown (%s): looking for its batch before sending again", exc
                )
                found = yield from _reconcile(intent, store, settle_seconds, end, log)
                if found is not None:
                    return found
            else:
                store.clear()  # Retell did not act on it: nothing to find
                if not exc.transient:
                    raise
            failures += 1
            if failures > retry.max_retries or (end is not None and time.time() >= end):
                store.clear()
                raise _gave_up(failures, exc) from None
            yield Sleep(retry.delay(failures, exc))
            continue
        store.resolve(batch)
        return batch


def _pinned(engine: TestableEngine, latest: Sequence[BatchTest]) -> TestableEngine:
    """An engine asked for without a version means its latest: pin the version the listing shows, so
    a version published while a create's outcome is unknown cannot hide the batch from the listing."""
    if engine.version is not None:
        return engine
    versions = {getattr(b.response_engine, "version", None) for b in latest} - {None}
    return engine.model_copy(update={"version": versions.pop()}) if len(versions) == 1 else engine


def _gave_up(failures: int, exc: RetellAPIError) -> RetellAPIError:
    return RetellAPIError(
        f"{failures} creates failed and made no batch; the last with: {exc.message}",
        status_code=exc.status_code,
        method="POST",
        path=CREATE_PATH,
        reason=exc.reason,
    )


def _listing(
    engine: TestableEngine, since_ms: float, end: float | None, log: Any, patient: bool
) -> Operation[list[BatchTest]]:
    """The snapshot before a create. Once the run has billed batches an outage only means "later":
    each listing keeps its bounded retries, and exhausting them waits and tries again until ``end``."""
    if not patient or end is None:
        return (yield from recent_batches(engine, since_ms, end=end))
    return (
        yield from patiently(lambda: recent_batches(engine, since_ms, end=end), OutagePolicy(1.0), end, log)
    )


class ListingPace:
    """When to list again while a create's outcome is unknown: pauses doubling from 1 s up to
    ``MAX_LISTING_PAUSE_SECONDS``, one listing at the end of the settle window, none past ``end``
    (None: the settle window plus ``UNBOUNDED_GRACE_SECONDS``). Shared by batch and definition creates."""

    def __init__(self, submitted_at: float, settle_seconds: float, end: float | None) -> None:
        self.settled_at = submitted_at + settle_seconds
        self.end = self.settled_at + UNBOUNDED_GRACE_SECONDS if end is None else end
        self._pause = 1.0

    def next_listing(self, timed_out: str) -> Operation[None]:
        """Sleep until the next listing; past ``end``, raise ``RetellTimeoutError(timed_out)``."""
        now = time.time()
        if now >= self.end:
            raise RetellTimeoutError(timed_out)
        wait = min(
            self._pause, self.settled_at - now if self.settled_at > now else self._pause, self.end - now
        )
        yield Sleep(max(wait, 0.0))
        self._pause = min(self._pause * 2, MAX_LISTING_PAUSE_SECONDS)


def _reconcile(
    intent: CreateIntent, store: IntentStore[BatchTest], settle_seconds: float, end: float | None, log: Any
) -> Operation[BatchTest | None]:
    """The batch ``intent`` made, or None once listings since the settle window show none."""
    pace = ListingPace(intent.submitted_at, settle_seconds, end)
    settled_at, end = pace.settled_at, pace.end
    engine = parse_engine_input(intent.engine)
    while True:
        started = time.time()
        try:
            recent = yield from recent_batches(
                engine,
                (intent.submitted_at - CREATE_CLOCK_SKEW_SECONDS) * 1000,
                stop_at=intent.before,
                end=end,
            )
            ours: list[BatchTest] = []
            unknown: list[BatchTest] = []
            other_version: list[BatchTest] = []
            for candidate in (b for b in recent if intent.same_kind(b)):
                runs = yield from list_runs(candidate.id, end=end, expected=candidate.total_count)
                verdict = ran_only_our_cases(intent, runs)
                if verdict is False:
                    continue
                if not intent.same_version(candidate):
                    other_version.append(candidate)
                else:
                    (ours if verdict else unknown).append(candidate)
        except RetellAPIError as exc:
            if not exc.transient:
                raise
            log.warning("Listing batch tests failed (%s): that is no evidence the create did not land", exc)
        else:
            if len(ours) == 1 and not unknown:
                log.warning("Adopting batch test %s, made by %s", ours[0].id, intent.describe())
                store.resolve(ours[0])
                return ours[0]
            if len(ours) > 1 or ((ours or unknown or other_version) and started >= settled_at):
                store.clear()  # a person must look; a re-run then starts afresh
                found = ", ".join(b.id for b in ours + unknown + other_version)
                raise RetellPermanentError(
                    f"{intent.describe()} had no known outcome, and batch tests that may be its own appeared "
                    f"({found}: the same cases, or runs not listed yet, or another engine version); not "
                    "creating another: check them in Retell",
                    method="POST",
                    path=CREATE_PATH,
                )
            if not (ours or unknown or other_version) and started >= settled_at:
                log.warning(
                    "No batch test from %s appeared within the %.0f s settle window: sending it again",
                    intent.describe(),
                    settle_seconds,
                )
                return None
        yield from pace.next_listing(
            f"The run's deadline passed while {intent.describe()} still had no known outcome. The "
            "intent stays recorded: the next try of this task looks for its batch before sending anything."
        )
