"""RetellHook: the only place that talks HTTP to Retell.

Every operation is written once, without I/O (``operations.py``, ``creating.py``); this module
holds the two thin runners that drive them, sync (``httpx.Client``) and async (the shared
``httpx.AsyncClient`` of the event loop), and the public methods, each a line that picks one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.log import amask_secret, mask_secret

from airflow_provider_retell.connection import RetellConnectionSettings
from airflow_provider_retell.creating import IntentStore, MemoryIntentStore, create_batch
from airflow_provider_retell.definition_ops import (
    create_definition,
    delete_definition,
    list_definitions,
    update_definition,
)
from airflow_provider_retell.definitions import parse_changes, parse_definition
from airflow_provider_retell.exceptions import (
    RetellAPIError,
    RetellError,
    RetellInputError,
    RetellPermanentError,
)
from airflow_provider_retell.models import (
    Agent,
    BatchTest,
    TestableEngine,
    TestCaseDefinition,
    TestRun,
    engine_query,
    parse_engine_input,
)
from airflow_provider_retell.operations import (
    LAST_POLL_GRACE_SECONDS,
    Call,
    Operation,
    Sleep,
    get_batch,
    interpret_reply,
    list_runs,
    paginate,
    read,
    reply_too_large,
)
from airflow_provider_retell.redact import scrub, secrets_in_use
from airflow_provider_retell.transport import (
    ASYNC_CLIENTS,
    SharedClient,
    request_budget,
    sync_client,
    warm_ssl_context,
)
from airflow_provider_retell.validation import (
    MAX_TEST_CASE_DEFINITION_IDS,
    validate_id,
    validate_ids,
    validate_version,
)

T = TypeVar("T")


def _transport_error(
    exc: httpx.TransportError, call: Call, settings: RetellConnectionSettings
) -> RetellAPIError:
    """What a failure without a reply means: never reached Retell, timed out, or dropped after sending."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)):
        reason = "connect"
    elif isinstance(exc, httpx.TimeoutException):
        reason = "timeout"
    elif isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        reason = "invalid"
    else:
        reason = "dropped"
    message = f"{type(exc).__name__}: {settings.scrub(str(exc)) or 'no reply'}"
    return RetellAPIError(message, method=call.method, path=call.path, reason=reason)


def _scrub_error(exc: RetellError, settings: RetellConnectionSettings) -> None:
    """An error an operation raised may quote a reply (a field's value): scrubbed in place, so it
    keeps its type and traceback, before it reaches a log, a task failure or a trigger event."""
    if isinstance(exc, RetellAPIError):
        exc.message = scrub(exc.message, settings.secrets, limit=len(exc.message))
    exc.args = tuple(
        scrub(arg, settings.secrets, limit=len(arg)) if isinstance(arg, str) else arg for arg in exc.args
    )


def _check_length(response: httpx.Response, call: Call) -> None:
    try:
        declared = int(response.headers.get("content-length", 0))
    except ValueError:
        declared = 0
    if declared > call.max_bytes:
        raise reply_too_large(call)


def _collect(chunks: Iterable[bytes], body: bytearray, call: Call) -> None:
    for chunk in chunks:
        body += chunk
        if len(body) > call.max_bytes:
            raise reply_too_large(call)


def _unusable(exc: httpx.RequestError, call: Call, settings: RetellConnectionSettings) -> RetellAPIError:
    """A reply httpx could not decode (a mangled gzip body): unusable, like one that is not JSON."""
    message = f"{type(exc).__name__}: {settings.scrub(str(exc))}"
    return RetellAPIError(message, method=call.method, path=call.path, reason="reply")


#: Replies larger than this are parsed off the event loop, so one big page cannot stall a triggerer.
OFF_LOOP_BYTES = 256 * 1024


class RetellHook(BaseHook):
    """Auth, HTTP and retries for Retell's test API, with sync methods and ``a``-prefixed twins.

    :param retell_conn_id: a connection of type ``retell`` (default ``retell_default``); password = API
        key, host = optional base URL.
    """

    conn_name_attr = "retell_conn_id"
    default_conn_name = "retell_default"
    conn_type = "retell"
    hook_name = "Retell AI"

    def __init__(self, retell_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(retell_conn_id, str) or not retell_conn_id.strip():
            raise RetellInputError(f"retell_conn_id must be a non-empty string, got {retell_conn_id!r:.80}")
        self.retell_conn_id = retell_conn_id
        self._settings: RetellConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._shared: SharedClient | None = None

    # -- connection -----------------------------------------------------------------------------

    @property
    def settings(self) -> RetellConnectionSettings:
        """What the connection resolves to (base URL, timeouts, retries, proxy), read once; the key
        and the proxy's credentials are registered with Airflow's secrets masker."""
        if self._settings is None:
            conn = self.get_connection(self.retell_conn_id)
            settings = RetellConnectionSettings.from_connection(conn, conn.extra_dejson)
            for secret in (settings.api_key, settings.proxy, *settings.secrets):
                if secret:
                    mask_secret(secret)
            self._settings = settings
        return self._settings

    async def asettings(self) -> RetellConnectionSettings:
        """Async twin of :attr:`settings` (in the triggerer, connections must be read asynchronously)."""
        if self._settings is None:
            conn = await self.aget_connection(self.retell_conn_id)
            settings = RetellConnectionSettings.from_connection(conn, await conn.aextra_dejson())
            for secret in (settings.api_key, settings.proxy, *settings.secrets):
                if secret:
                    await amask_secret(secret)
            self._settings = settings
        return self._settings

    def get_conn(self) -> httpx.Client:
        """The sync ``httpx.Client`` for this connection (made on first use)."""
        if self._client is None or self._client.is_closed:
            self._client = sync_client(self.settings)
        return self._client

    async def _ashared(self) -> SharedClient:
        if self._shared is None:
            settings = await self.asettings()
            await warm_ssl_context()
            self._shared = ASYNC_CLIENTS.acquire(settings)
        return self._shared

    async def aget_conn(self) -> httpx.AsyncClient:
        """The event loop's shared ``httpx.AsyncClient`` for this connection."""
        return (await self._ashared()).client

    def close(self) -> None:
        """Close the sync client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Release the shared async client."""
        if self._shared is not None and self._settings is not None:
            self._shared = None
            await ASYNC_CLIENTS.release(self._settings)

    # -- runners --------------------------------------------------------------------------------

    def _budget(self, call: Call) -> float:
        """Wall-clock bound of one request: the connection's timeouts, cut at the caller's deadline."""
        settings = self._settings or self.settings
        budget = settings.connect_timeout + settings.timeout
        if call.end is not None:
            budget = min(budget, max(call.end - time.time(), 0.0) + LAST_POLL_GRACE_SECONDS)
        return budget

    def run(self, operation: Operation[T]) -> T:
        """Drive an operation with the sync client; what it quotes from replies is scrubbed of the key."""
        settings = self.settings
        with secrets_in_use(settings.secrets):
            try:
                return self._run(operation)
            except RetellError as exc:
                _scrub_error(exc, settings)
                raise

    async def arun(self, operation: Operation[T]) -> T:
        """Drive an operation with the event loop's shared async client (scrubbed as :meth:`run`)."""
        settings = await self.asettings()
        with secrets_in_use(settings.secrets):
            try:
                return await self._arun(operation)
            except RetellError as exc:
                _scrub_error(exc, settings)
                raise

    def _run(self, operation: Operation[T]) -> T:
        reply: Any = None
        error: RetellAPIError | None = None
        while True:
            try:
                step = operation.throw(error) if error is not None else operation.send(reply)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                continue
            try:
                reply = self._call(step)
            except RetellAPIError as exc:
                error = exc

    async def _arun(self, operation: Operation[T]) -> T:
        reply: Any = None
        error: RetellAPIError | None = None
        while True:
            try:
                step = operation.throw(error) if error is not None else operation.send(reply)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                continue
            try:
                reply = await self._acall(step)
            except RetellAPIError as exc:
                error = exc

    def _call(self, call: Call) -> Any:
        if call.retry is None:
            return self._send(call)
        for attempt in self.settings.retry.retrying(self.log, call.retry, call.end):
            with attempt:
                reply = self._send(call)
        return reply

    async def _acall(self, call: Call) -> Any:
        if call.retry is None:
            return await self._asend(call)
        async for attempt in (await self.asettings()).retry.async_retrying(self.log, call.retry, call.end):
            with attempt:
                reply = await self._asend(call)
        return reply

    def _send(self, call: Call) -> Any:
        client, body = self.get_conn(), bytearray()
        try:
            with (
                request_budget(self._budget(call)),
                client.stream(call.method, call.path, params=call.params, json=call.json) as response,
            ):
                _check_length(response, call)
                _collect(response.iter_bytes(), body, call)
        except httpx.TransportError as exc:
            raise _transport_error(exc, call, self.settings) from None
        except httpx.RequestError as exc:
            raise _unusable(exc, call, self.settings) from None
        retry_after = response.headers.get("retry-after")
        return interpret_reply(response.status_code, bytes(body), retry_after, call, self._scrub_body)

    def _scrub_body(self, text: str) -> str:
        return (self._settings or self.settings).scrub(text, limit=None)

    async def _asend(self, call: Call) -> Any:
        shared, settings, body = await self._ashared(), await self.asettings(), bytearray()

        async def exchange() -> httpx.Response:
            async with (
                shared.slots,
                shared.client.stream(  # waiting for a slot counts against the budget
                    call.method, call.path, params=call.params, json=call.json
                ) as response,
            ):
                _check_length(response, call)
                async for chunk in response.aiter_bytes():
                    _collect((chunk,), body, call)
            return response

        try:
            response = await asyncio.wait_for(exchange(), self._budget(call))
        except asyncio.TimeoutError:
            raise RetellAPIError(
                "no whole reply within the request's time budget",
                method=call.method,
                path=call.path,
                reason="timeout",
            ) from None
        except httpx.TransportError as exc:
            raise _transport_error(exc, call, settings) from None
        except httpx.RequestError as exc:
            raise _unusable(exc, call, settings) from None
        args = (
            response.status_code,
            bytes(body),
            response.headers.get("retry-after"),
            call,
            self._scrub_body,
        )
        if len(body) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(interpret_reply, *args)
        return interpret_reply(*args)

    # -- reads ----------------------------------------------------------------------------------

    def get_batch_test(self, batch_test_id: str) -> BatchTest:
        """The batch test (status and counts so far)."""
        return self.run(get_batch(batch_test_id))

    async def aget_batch_test(self, batch_test_id: str) -> BatchTest:
        """Async twin of :meth:`get_batch_test`."""
        return await self.arun(get_batch(batch_test_id))

    def list_test_runs(self, batch_test_id: str) -> list[TestRun]:
        """Every run of a batch, all pages (transcripts are dropped at parse time)."""
        return self.run(list_runs(batch_test_id))

    async def alist_test_runs(self, batch_test_id: str) -> list[TestRun]:
        """Async twin of :meth:`list_test_runs`."""
        return await self.arun(list_runs(batch_test_id))

    def list_batch_tests(self, response_engine: TestableEngine | dict[str, Any]) -> list[BatchTest]:
        """Every batch test of the engine, all pages."""
        return self.run(_list_batch_tests(response_engine))

    async def alist_batch_tests(self, response_engine: TestableEngine | dict[str, Any]) -> list[BatchTest]:
        """Async twin of :meth:`list_batch_tests`."""
        return await self.arun(_list_batch_tests(response_engine))

    def list_test_case_definitions(
        self, response_engine: TestableEngine | dict[str, Any]
    ) -> list[TestCaseDefinition]:
        """Every definition of the engine, whatever its version (all pages)."""
        return self.run(list_definitions(parse_engine_input(response_engine)))

    async def alist_test_case_definitions(
        self, response_engine: TestableEngine | dict[str, Any]
    ) -> list[TestCaseDefinition]:
        """Async twin of :meth:`list_test_case_definitions`."""
        return await self.arun(list_definitions(parse_engine_input(response_engine)))

    def get_agent(self, agent_id: str, version: int | None = None) -> Agent:
        """The agent (latest version when ``version`` is None)."""
        return self.run(_get_agent(agent_id, version))

    async def aget_agent(self, agent_id: str, version: int | None = None) -> Agent:
        """Async twin of :meth:`get_agent`."""
        return await self.arun(_get_agent(agent_id, version))

    def get_agent_response_engine(self, agent_id: str, version: int | None = None) -> Any:
        """The engine a batch test of this agent runs against (may be custom-llm: callers refuse it)."""
        return self.get_agent(agent_id, version).response_engine

    async def aget_agent_response_engine(self, agent_id: str, version: int | None = None) -> Any:
        """Async twin of :meth:`get_agent_response_engine`."""
        return (await self.aget_agent(agent_id, version)).response_engine

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read: a 404 for an unknown id still proves the key works.

        The message is what the UI's Test button shows: it names the problem and the base URL,
        never the key (our errors are scrubbed where Retell's text enters them).
        """
        try:
            where = self.settings.base_url
        except Exception as exc:  # the connection itself is unusable (no key, a bad host or extra)
            return False, str(exc)
        try:
            self._send(Call("GET", "/get-batch-test/airflow-connection-test", retry=None))
        except RetellPermanentError as exc:
            if exc.status_code != 404:
                return False, f"Retell at {where} refused the test request: {exc}"
        except Exception as exc:
            return False, f"Could not reach Retell at {where}: {exc}"
        finally:
            self.close()
        return True, f"Connected to Retell at {where}"

    # -- create ---------------------------------------------------------------------------------

    def create_batch_test(
        self,
        response_engine: TestableEngine | dict[str, Any],
        test_case_definition_ids: Sequence[str],
        *,
        intent_store: IntentStore[BatchTest] | None = None,
        end: float | None = None,
        patient: bool = False,
    ) -> BatchTest:
        """Start a batch test: never a second billed batch, whatever the network does (``creating.py``).

        ``intent_store`` keeps the create's intent where a later try finds it (the operator passes
        the task's ``task_state_store`` record); ``end`` bounds the whole create; ``patient`` waits
        out listing outages until ``end`` (for a run that has already billed batches).
        """
        return self.run(self._create(response_engine, test_case_definition_ids, intent_store, end, patient))

    async def acreate_batch_test(
        self,
        response_engine: TestableEngine | dict[str, Any],
        test_case_definition_ids: Sequence[str],
        *,
        intent_store: IntentStore[BatchTest] | None = None,
        end: float | None = None,
        patient: bool = False,
    ) -> BatchTest:
        """Async twin of :meth:`create_batch_test`."""
        await self.asettings()
        return await self.arun(
            self._create(response_engine, test_case_definition_ids, intent_store, end, patient)
        )

    def _create(
        self,
        engine: Any,
        ids: Sequence[str],
        store: IntentStore[BatchTest] | None,
        end: float | None,
        patient: bool = False,
    ) -> Operation[BatchTest]:
        """Checked before the first step, so bad input fails before any request."""
        engine = parse_engine_input(engine)
        ids = validate_ids(ids, limit=MAX_TEST_CASE_DEFINITION_IDS)
        settings = self._settings or self.settings
        return create_batch(
            engine,
            ids,
            store=store or MemoryIntentStore(),
            settle_seconds=settings.create_settle_seconds,
            end=end,
            log=self.log,
            retry=settings.retry,
            patient=patient,
        )

    # -- test case definitions (definition_ops.py) ----------------------------------------------

    def create_test_case_definition(
        self,
        response_engine: TestableEngine | dict[str, Any],
        definition: dict[str, Any],
        *,
        intent_store: IntentStore[TestCaseDefinition] | None = None,
    ) -> TestCaseDefinition:
        """Create a definition; a lost reply is reconciled by name, never sent again blind."""
        return self.run(self._create_definition(response_engine, definition, intent_store))

    async def acreate_test_case_definition(
        self,
        response_engine: TestableEngine | dict[str, Any],
        definition: dict[str, Any],
        *,
        intent_store: IntentStore[TestCaseDefinition] | None = None,
    ) -> TestCaseDefinition:
        """Async twin of :meth:`create_test_case_definition`."""
        await self.asettings()
        return await self.arun(self._create_definition(response_engine, definition, intent_store))

    def update_test_case_definition(
        self, test_case_definition_id: str, changes: dict[str, Any]
    ) -> TestCaseDefinition:
        """Send only ``changes``; idempotent, so a lost reply is simply sent again."""
        return self.run(update_definition(test_case_definition_id, parse_changes(changes)))

    async def aupdate_test_case_definition(
        self, test_case_definition_id: str, changes: dict[str, Any]
    ) -> TestCaseDefinition:
        """Async twin of :meth:`update_test_case_definition`."""
        return await self.arun(update_definition(test_case_definition_id, parse_changes(changes)))

    def delete_test_case_definition(self, test_case_definition_id: str) -> None:
        """Delete a definition; one that is gone already counts as deleted."""
        return self.run(delete_definition(test_case_definition_id))

    async def adelete_test_case_definition(self, test_case_definition_id: str) -> None:
        """Async twin of :meth:`delete_test_case_definition`."""
        return await self.arun(delete_definition(test_case_definition_id))

    def _create_definition(
        self, engine: Any, definition: Any, store: IntentStore[TestCaseDefinition] | None
    ) -> Operation[TestCaseDefinition]:
        """Checked before the first step, so bad input fails before any request."""
        settings = self._settings or self.settings
        return create_definition(
            parse_engine_input(engine),
            parse_definition(definition),
            store=store or MemoryIntentStore(),
            settle_seconds=settings.create_settle_seconds,
            log=self.log,
            retry=settings.retry,
        )


def _list_batch_tests(engine: Any) -> Operation[list[BatchTest]]:
    return (yield from paginate("/v2/list-batch-tests", BatchTest, engine_query(parse_engine_input(engine))))


def _get_agent(agent_id: str, version: int | None) -> Operation[Agent]:
    params = {"version": validate_version(version, "agent_version")} if version is not None else None
    return (yield from read(f"/get-agent/{validate_id(agent_id, 'agent_id')}", Agent, params))
