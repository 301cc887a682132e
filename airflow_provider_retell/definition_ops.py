"""Writes of test case definitions, without I/O: create (durable, reconciled by name), update, delete.

Retell has no idempotency key. An update or a delete may simply be sent again (the same fields to
the same id; a 404 on a delete means the definition is gone already). A create may not: a lost
reply can hide a definition that exists. It follows the batch create protocol (``creating.py``),
with the name as the identity on the engine:

1. The engine's definitions are listed; one with the name there already is an error (names are the
   identity: update it instead), so a definition with the name that appears later is ours. Then,
   immediately before the POST, the intent (submit time, engine, name) is recorded where a later
   try finds it (the sync operator: the task's ``task_state_store``). If it cannot be recorded,
   nothing is sent.
2. After any outcome that may have created it (no reply, a timeout, a 5xx, a dropped connection,
   an unreadable or implausible 2xx), the engine's definitions are listed until the name appears
   once (adopted), or twice (the create fails, naming both), or listings that started after the
   settle window (``create_settle_seconds`` from the submit time) show none (then it is sent
   again). A failed listing is never evidence of absence.
3. A later call that finds a recorded intent reconciles it first, the same way; the sync also drops
   an intent whose name its own listing shows (that create landed).

Definitions belong to the engine, not to one version of it: they are created without a version
and listed without one (``engine_query(..., with_version=False)``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_retell.creating import (
    IntentStore,
    ListingPace,
)
from airflow_provider_retell.definitions import DefinitionSpec
from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellPermanentError,
    RetellTimeoutError,
)
from airflow_provider_retell.models import (
    TestableEngine,
    TestCaseDefinition,
    engine_query,
    parse_engine_input,
    parse_response,
)
from airflow_provider_retell.operations import SMALL_REPLY_BYTES, Call, Operation, Sleep, paginate
from airflow_provider_retell.retry import RetryPolicy
from airflow_provider_retell.validation import validate_id

LIST_PATH = "/v2/list-test-case-definitions"
CREATE_PATH = "/create-test-case-definition"
#: ``task_state_store`` key of a definition create whose outcome is not known yet.
INTENT_KEY = "retell_definition_create"


class TaskStateIntentStore:
    """The intent under one key of a task's ``task_state_store``: a sync sends one create at a time,
    and a retry of the task finds what the try before it left."""

    def __init__(self, task_state_store: Any, key: str = INTENT_KEY) -> None:
        self.store, self.key = task_state_store, key

    @classmethod
    def of(cls, context: Mapping[str, Any]) -> TaskStateIntentStore:
        """The store of a running task; without one an intent could not outlive the try: nothing is sent."""
        task_state_store = context.get("task_state_store")
        if task_state_store is None:
            raise RetellError(
                "The task context has no task_state_store, so a create's intent could not outlive this try; "
                "not sending one (the provider needs Airflow 3.3)"
            )
        return cls(task_state_store)

    def load(self) -> dict[str, Any] | None:
        value = self.store.get(self.key)
        return dict(value) if isinstance(value, dict) else None

    def save(self, intent: dict[str, Any]) -> None:
        self.store.set(self.key, intent)

    def clear(self) -> None:
        self.store.delete(self.key)

    def resolve(self, definition: TestCaseDefinition) -> None:
        self.clear()  # the definition is found by name from now on: nothing else to keep


class DefinitionIntent(BaseModel):
    """A create that was (or is about to be) sent, and how to recognise its definition: the name."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    submitted_at: float
    engine: dict[str, Any]
    name: str

    def is_for(self, engine: TestableEngine, name: str) -> bool:
        return self.engine == engine.model_dump(exclude_none=True) and self.name == name

    def describe(self) -> str:
        sent = time.strftime("%H:%M:%S", time.gmtime(self.submitted_at))
        return f"the create of test case definition {self.name!r} sent at {sent} UTC"


def definition_engine(engine: TestableEngine) -> TestableEngine:
    """The engine a definition belongs to: its type and id, never a version."""
    return engine.model_copy(update={"version": None})


def forget_landed(
    store: IntentStore[TestCaseDefinition], engine: TestableEngine, listed: Sequence[TestCaseDefinition]
) -> None:
    """Drop a recorded intent whose definition ``listed`` (the engine's definitions) shows: it landed."""
    stored = store.load()
    if stored is None:
        return
    intent = _intent(stored)
    if intent is None or (
        intent.engine == definition_engine(engine).model_dump(exclude_none=True)
        and any(d.name == intent.name for d in listed)
    ):
        store.clear()


# -- operations -------------------------------------------------------------------------------------


def list_definitions(
    engine: TestableEngine, *, end: float | None = None
) -> Operation[list[TestCaseDefinition]]:
    """Every definition of the engine (all versions), all pages."""
    query = engine_query(engine, with_version=False)
    return (yield from paginate(LIST_PATH, TestCaseDefinition, query, end=end))


def update_definition(definition_id: str, changes: Mapping[str, Any]) -> Operation[TestCaseDefinition]:
    """Send ``changes`` (only the fields to change). Idempotent, so the runner's retries may resend it."""
    path = f"/update-test-case-definition/{validate_id(definition_id, 'test_case_definition_id')}"
    reply = yield Call("PUT", path, json=dict(changes), max_bytes=SMALL_REPLY_BYTES)
    updated = parse_response(TestCaseDefinition, reply, method="PUT", path=path)
    if updated.test_case_definition_id != definition_id:
        raise RetellAPIError(
            f"the reply is about test case definition {updated.test_case_definition_id}, not {definition_id}",
            method="PUT",
            path=path,
        )
    return updated


def delete_definition(definition_id: str) -> Operation[None]:
    """Delete one definition; one that is gone already (404, e.g. a resent delete) is deleted."""
    path = f"/delete-test-case-definition/{validate_id(definition_id, 'test_case_definition_id')}"
    try:
        yield Call("DELETE", path, max_bytes=SMALL_REPLY_BYTES)
    except RetellPermanentError as exc:
        if exc.status_code != 404:
            raise


def create_definition(
    engine: TestableEngine,
    spec: DefinitionSpec,
    *,
    store: IntentStore[TestCaseDefinition],
    settle_seconds: float,
    log: Any,
    retry: RetryPolicy | None = None,
    end: float | None = None,
) -> Operation[TestCaseDefinition]:
    """Create one definition on ``engine``: never two, whatever the network does (module doc).

    ``retry`` bounds the creates sent again after failures that proved nothing was made; ``end``
    (epoch seconds) bounds the whole protocol (None: the settle window plus ``UNBOUNDED_GRACE_SECONDS``).
    """
    engine, retry, name = definition_engine(engine), retry or RetryPolicy(), spec.name
    sent = False  # a create of this name may have landed: one definition with the name is then ours
    stored = store.load()
    earlier = _intent(stored) if stored is not None else None
    if earlier is not None:
        log.warning("%s had no known outcome: looking for it before sending anything", earlier.describe())
        found = yield from _reconcile(earlier, store, settle_seconds, end, log)
        sent = earlier.is_for(engine, name)
        if found is not None and sent:
            return found
    elif stored is not None:
        store.clear()  # not an intent this code wrote: nothing to look for
    failures = 0
    while True:
        listed = yield from list_definitions(engine, end=end)
        same = [d for d in listed if d.name == name]
        if sent and len(same) == 1:  # it landed after the settle window
            log.warning(
                "Adopting test case definition %s (%r): it appeared late",
                same[0].test_case_definition_id,
                name,
            )
            return same[0]
        if same:
            ids = ", ".join(d.test_case_definition_id for d in same)
            raise RetellInputError(
                f"the engine has a test case definition named {name!r} already ({ids}): names are the "
                "identity of a test case, so it is not created again; update it instead"
            )
        if end is not None and time.time() >= end:
            raise RetellTimeoutError(
                f"The deadline passed before test case definition {name!r} could be created"
            )
        intent = DefinitionIntent(
            submitted_at=time.time(), engine=engine.model_dump(exclude_none=True), name=name
        )
        store.save(intent.model_dump())  # raises when it cannot be recorded: then nothing is sent
        body = {**spec.create_body(), "response_engine": intent.engine}
        try:
            reply = yield Call(
                "POST", CREATE_PATH, json=body, retry=None, end=end, max_bytes=SMALL_REPLY_BYTES
            )
            created = parse_response(TestCaseDefinition, reply, method="POST", path=CREATE_PATH)
            if created.name != name:
                raise RetellAPIError(
                    f"the create's reply names test case definition {created.test_case_definition_id}, "
                    "which is not the one just made",
                    method="POST",
                    path=CREATE_PATH,
                    reason="reply",
                )
        except RetellAPIError as exc:
            if exc.maybe_applied:
                sent = True
                log.warning(
                    "The create of %r has no known outcome (%s): looking for it before sending again",
                    name,
                    exc,
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
                raise RetellAPIError(
                    f"{failures} creates of test case definition {name!r} failed and made none; the last "
                    f"with: {exc.message}",
                    status_code=exc.status_code,
                    method="POST",
                    path=CREATE_PATH,
                    reason=exc.reason,
                ) from None
            yield Sleep(retry.delay(failures, exc))
            continue
        store.resolve(created)
        return created


def _intent(stored: dict[str, Any]) -> DefinitionIntent | None:
    try:
        return DefinitionIntent.model_validate(stored)
    except ValidationError:
        return None


def _reconcile(
    intent: DefinitionIntent,
    store: IntentStore[TestCaseDefinition],
    settle_seconds: float,
    end: float | None,
    log: Any,
) -> Operation[TestCaseDefinition | None]:
    """The definition ``intent`` made, or None once listings since the settle window show none."""
    pace = ListingPace(intent.submitted_at, settle_seconds, end)
    engine = parse_engine_input(intent.engine)
    while True:
        started = time.time()
        try:
            listed = yield from list_definitions(engine, end=pace.end)
        except RetellAPIError as exc:
            if not exc.transient:
                raise
            log.warning("Listing test case definitions failed (%s): no evidence the create did not land", exc)
        else:
            ours = [d for d in listed if d.name == intent.name]
            if len(ours) == 1:
                log.warning(
                    "Adopting test case definition %s, made by %s",
                    ours[0].test_case_definition_id,
                    intent.describe(),
                )
                store.resolve(ours[0])
                return ours[0]
            if ours:
                store.clear()  # a person must look; the next sync fails on the duplicate name until then
                ids = ", ".join(d.test_case_definition_id for d in ours)
                raise RetellPermanentError(
                    f"{intent.describe()} had no known outcome, and {len(ours)} definitions with that name "
                    f"appeared ({ids}); not creating another: delete the extra ones in Retell",
                    method="POST",
                    path=CREATE_PATH,
                )
            if started >= pace.settled_at:
                log.warning(
                    "No test case definition %r appeared within the %.0f s settle window: sending it again",
                    intent.name,
                    settle_seconds,
                )
                store.clear()
                return None
        yield from pace.next_listing(
            f"The deadline passed while {intent.describe()} still had no known outcome. The intent "
            "stays recorded: the next try of this task looks for it before sending anything."
        )
