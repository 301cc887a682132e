"""Retell operations written once, without I/O, driven by the hook's thin sync and async runners.

An operation is a generator: it yields a :class:`Call` (one HTTP request) or a :class:`Sleep`, is
sent back the reply's JSON body (or has the ``RetellAPIError`` thrown in), and returns its result,
the way httpx drives an ``auth_flow`` from both its clients. Pagination, polling, the outage
policy and the create protocol are therefore plain code that unit tests drive step by step.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_retell.exceptions import PERMANENT_STATUSES, RetellAPIError, RetellPermanentError
from airflow_provider_retell.models import (
    BaseModelT,
    BatchTest,
    Page,
    TestableEngine,
    TestRun,
    engine_query,
    parse_response,
)
from airflow_provider_retell.redact import MAX_MESSAGE_CHARS, scrub_reply_text
from airflow_provider_retell.retry import OutagePolicy, is_transient
from airflow_provider_retell.validation import MAX_TEST_CASE_DEFINITION_IDS, validate_id

T = TypeVar("T")

#: Pages one listing may read before it is a broken server, not a long history.
MAX_PAGES = 100
#: Items per page: Retell allows 1000. Runs carry transcripts, so their pages stay small.
PAGE_SIZE = 1000
RUNS_PAGE_SIZE = 50
#: Newest batches read per page when only the recent ones matter (the create protocol).
RECENT_PAGE_SIZE = 50
#: How long the last poll may run past the deadline (replies that trickle are cut here).
LAST_POLL_GRACE_SECONDS = 3.0
#: Largest reply read: a page of 50 runs with transcripts stays far below; one object far below
#: the small cap (a reply that size would only stall the triggerer's event loop while parsed).
MAX_REPLY_BYTES = 32 * 1024 * 1024
SMALL_REPLY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Call:
    """One request. ``retry`` decides which failures the runner retries with the bounded policy
    (None: one attempt, the operation handles failures); ``end`` is the epoch second the request may
    not outlive by more than ``LAST_POLL_GRACE_SECONDS``, and after which it is not retried."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    retry: Callable[[BaseException], bool] | None = is_transient
    end: float | None = None
    max_bytes: int = MAX_REPLY_BYTES


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Call | Sleep
Operation = Generator[Step, Any, T]


# -- replies ----------------------------------------------------------------------------------------


def interpret_reply(
    status: int, content: bytes, retry_after_header: str | None, call: Call, scrub: Callable[[str], str]
) -> Any:
    """The JSON body of a success, or the ``RetellAPIError`` that the status means. The whole text is
    scrubbed of secrets first, so nothing Retell echoes (a name, an explanation) carries the key on."""
    if 200 <= status < 300:
        if status == 204 or not content:
            return None
        try:
            return json.loads(scrub(content.decode("utf-8", "replace")))
        except (ValueError, RecursionError) as exc:
            problem = (
                "is nested too deeply to read" if isinstance(exc, RecursionError) else "is not valid JSON"
            )
            raise RetellAPIError(
                f"the reply {problem}", status_code=status, method=call.method, path=call.path, reason="reply"
            ) from None
    try:
        body = json.loads(content)
        message = str(body.get("message") or body) if isinstance(body, dict) else str(body)
    except (ValueError, RecursionError):
        message = content[:1000].decode("utf-8", "replace")
    retry_after = None
    if retry_after_header:
        try:
            retry_after = float(retry_after_header)
        except ValueError:
            retry_after = None
    error_cls = RetellPermanentError if status in PERMANENT_STATUSES else RetellAPIError
    message = scrub(message) or f"HTTP {status}"
    raise error_cls(
        message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…",
        status_code=status,
        method=call.method,
        path=call.path,
        retry_after=retry_after,
        reason="status",
    )


def reply_too_large(call: Call) -> RetellAPIError:
    return RetellAPIError(
        f"the reply is larger than {call.max_bytes // (1024 * 1024)} MiB: not reading it",
        method=call.method,
        path=call.path,
        reason="reply",
    )


# -- reads ------------------------------------------------------------------------------------------


def read(
    path: str, model: type[BaseModelT], params: Mapping[str, Any] | None = None
) -> Operation[BaseModelT]:
    body = yield Call("GET", path, params, max_bytes=SMALL_REPLY_BYTES)
    return parse_response(model, body, method="GET", path=path)


def paginate(
    path: str,
    model: type[BaseModelT],
    query: Mapping[str, Any],
    *,
    page_size: int | None = None,
    retry: Callable[[BaseException], bool] | None = is_transient,
    end: float | None = None,
    keep_reading: Callable[[list[BaseModelT]], bool] | None = None,
    max_items: int | None = None,
) -> Operation[list[BaseModelT]]:
    """Every item of a ``/v2/list-*`` endpoint (at most ``max_items``, when the count is known); a key
    seen twice, too many pages, or the deadline passing between pages is an error."""
    items: list[BaseModelT] = []
    seen: set[str] = set()
    key: str | None = None
    page_size = page_size or PAGE_SIZE
    for number in range(MAX_PAGES):
        if number and end is not None and time.time() >= end:  # every page has its own small grace
            raise RetellAPIError(
                "the deadline passed while reading the pages", method="GET", path=path, reason="timeout"
            )
        params = {**query, "limit": page_size, **({"pagination_key": key} if key else {})}
        body = yield Call("GET", path, params, retry=retry, end=end)
        page = parse_response(Page, body, method="GET", path=path)
        found = [parse_response(model, item, method="GET", path=path) for item in page.items]
        items += found
        if (
            not page.has_more
            or not page.pagination_key
            or (max_items is not None and len(items) >= max_items)
        ):
            return items
        if keep_reading is not None and not keep_reading(found):
            return items
        if page.pagination_key in seen:
            # The key itself is not quoted: it is Retell's text, and a prefix would escape scrubbing.
            raise RetellAPIError(
                f"the listing repeats pagination_key (page {len(seen) + 1} sent the key of an earlier "
                "page): stopped reading",
                method="GET",
                path=path,
                reason="reply",
            )
        seen.add(key := page.pagination_key)
    raise RetellAPIError(
        f"the listing has more than {MAX_PAGES} pages of {page_size}: stopped reading",
        method="GET",
        path=path,
        reason="reply",
    )


def get_batch(
    batch_test_id: str, *, retry: Any = is_transient, end: float | None = None
) -> Operation[BatchTest]:
    """One batch; a reply about another batch is an error, never taken for the one polled."""
    path = f"/get-batch-test/{validate_id(batch_test_id, 'batch_test_id')}"
    body = yield Call("GET", path, retry=retry, end=end, max_bytes=SMALL_REPLY_BYTES)
    batch = parse_response(BatchTest, body, method="GET", path=path)
    if batch.id != batch_test_id:
        raise RetellAPIError(
            f"the reply is about batch test {batch.id}, not {batch_test_id}", method="GET", path=path
        )
    return batch


def list_runs(
    batch_test_id: str, *, retry: Any = is_transient, end: float | None = None, expected: int | None = None
) -> Operation[list[TestRun]]:
    """A batch's runs; with ``expected`` (its total_count) no page past them is read."""
    path = f"/v2/list-test-runs/{validate_id(batch_test_id, 'batch_test_id')}"
    size = RUNS_PAGE_SIZE if expected is None else max(1, min(RUNS_PAGE_SIZE, expected))
    most = MAX_TEST_CASE_DEFINITION_IDS if expected is None else expected  # a batch has at most 200 runs
    return (yield from paginate(path, TestRun, {}, page_size=size, retry=retry, end=end, max_items=most))


def recent_batches(
    engine: TestableEngine,
    since_ms: float,
    *,
    stop_at: Sequence[str] | None = None,
    end: float | None = None,
    retry: Callable[[BaseException], bool] | None = is_transient,
) -> Operation[list[BatchTest]]:
    """The engine's newest batches, reading as few pages as the listing's order allows.

    ``stop_at`` None (a snapshot): every batch read, down to ``since_ms``. ``stop_at`` given (the
    batches known from a snapshot): the batches newer than the first known one, whatever Retell's
    clock says. Retell does not document the order: each page must be newest first and continue
    the one before; once that fails, every page is read and ``since_ms`` decides what is recent.
    """
    known = None if stop_at is None else set(stop_at)
    ordered = True
    last: int | None = None
    boundary: int | None = None  # creation time of the newest known batch met, in an ordered listing

    def keep_reading(page: list[BatchTest]) -> bool:
        nonlocal ordered, last, boundary
        stamps = [b.creation_timestamp for b in page]
        in_order = all(a >= b for a, b in itertools.pairwise(stamps))
        ordered = ordered and in_order and (last is None or not stamps or last >= stamps[0])
        last = stamps[-1] if stamps else last
        if not ordered:
            return True
        if known is None:
            return last is None or last >= since_ms
        if boundary is None:
            boundary = next((b.creation_timestamp for b in page if b.id in known), None)
        # past the newest known batch, but a batch made in the same millisecond may still follow
        return boundary is None or (last is not None and last >= boundary)

    query = engine_query(engine)
    found = yield from paginate(
        "/v2/list-batch-tests",
        BatchTest,
        query,
        page_size=RECENT_PAGE_SIZE,
        retry=retry,
        end=end,
        keep_reading=keep_reading,
    )
    unique = list({b.id: b for b in reversed(found)}.values())[::-1]  # a batch listed twice counts once
    if known is None:
        return unique
    if ordered:
        return [
            b for b in unique if b.id not in known and (boundary is None or b.creation_timestamp >= boundary)
        ]
    return [b for b in unique if b.id not in known and b.creation_timestamp >= since_ms]


# -- waiting: the outage policy, written once ---------------------------------------------------------


class Progress:
    """Logs a run's progress when it changes, and an unknown status once per change."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self._line = ""
        self._unknown: dict[str, str] = {}

    def show(self, batches: Sequence[BatchTest]) -> None:
        for batch in batches:
            if not batch.has_known_status and self._unknown.get(batch.id) != batch.status:
                self._unknown[batch.id] = batch.status
                self.log.warning(
                    "Batch test %s has unknown status %r: treated as not finished",
                    batch.id,
                    scrub_reply_text(batch.status, limit=64),
                )
        line = describe(batches)
        if line != self._line:
            self._line = line
            self.log.info("%s", line)


def describe(batches: Sequence[BatchTest]) -> str:
    """``Batch test tcbj_1: 12/40 done: 1 failed, 0 errored`` (summed over several batches)."""
    ids = ", ".join(b.id for b in batches[:5]) + (f" and {len(batches) - 5} more" if len(batches) > 5 else "")
    done = sum(b.done_count for b in batches)
    total = sum(b.total_count for b in batches)
    failed = sum(b.fail_count for b in batches)
    errored = sum(b.error_count for b in batches)
    noun = "Batch test" if len(batches) == 1 else "Batch tests"
    return f"{noun} {ids}: {done}/{total} done: {failed} failed, {errored} errored"


def poll_once(
    ids: Sequence[str], done: dict[str, BatchTest], latest: dict[str, BatchTest], *, end: float | None
) -> Operation[None]:
    """One read of each batch not yet complete, single attempt each: failures are the caller's."""
    for number, batch_test_id in enumerate(ids):
        if number and end is not None and time.time() >= end:
            return  # the deadline passed mid-sweep: the caller decides, without more reads
        if batch_test_id not in done:
            batch = yield from get_batch(batch_test_id, retry=None, end=end)
            latest[batch_test_id] = batch
            if batch.is_complete:
                done[batch_test_id] = batch


class TimedOut(Exception):
    """The deadline passed while waiting; ``latest`` is what was last seen of each batch."""

    def __init__(self, latest: dict[str, BatchTest], error: RetellAPIError | None) -> None:
        super().__init__("deadline passed")
        self.latest = latest
        self.error = error


def poll_until_complete(
    ids: Sequence[str],
    policy: OutagePolicy,
    end: float,
    log: Any,
    *,
    done: dict[str, BatchTest] | None = None,
    first_poll_at: float | None = None,
) -> Operation[dict[str, BatchTest]]:
    """Poll every batch until all are complete. A transient error means "not finished yet": back
    off and go on until ``end``, then raise :class:`TimedOut`. Permanent errors raise at once."""
    done = {} if done is None else done
    latest: dict[str, BatchTest] = dict(done)
    progress = Progress(log)
    failures, error = 0, None
    if first_poll_at is not None and (wait := min(first_poll_at, end) - time.time()) > 0:
        yield Sleep(wait)  # the task polled just before deferring: no second read right away
    while True:
        try:
            yield from poll_once(ids, done, latest, end=end)
        except RetellAPIError as exc:
            if not exc.transient:
                raise
            failures, error = failures + 1, exc
            log.warning("Reading batch test status failed (%s): will try again", exc)
        else:
            failures, error = 0, None
            progress.show([latest[i] for i in ids if i in latest])
        if all(i in done for i in ids):
            return done
        left = end - time.time()
        if left <= 0:
            raise TimedOut(latest, error)
        yield Sleep(min(policy.delay(failures, error), left))


def patiently(make: Callable[[], Operation[T]], policy: OutagePolicy, end: float, log: Any) -> Operation[T]:
    """Run a read while waiting: transient failures back off and try again until ``end``."""
    failures = 0
    while True:
        try:
            return (yield from make())
        except RetellAPIError as exc:
            if not exc.transient:
                raise
            failures += 1
            left = end - time.time()
            if left <= 0:
                raise TimedOut({}, exc) from exc
            log.warning("%s: will try again", exc)
            yield Sleep(min(policy.delay(failures, exc), left))
