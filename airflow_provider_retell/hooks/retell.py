"""RetellHook: the only place that talks HTTP to Retell."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.log import amask_secret, mask_secret

from airflow_provider_retell.connection import ASYNC_CLIENTS, RetellConnectionSettings, warm_ssl_context
from airflow_provider_retell.exceptions import (
    PERMANENT_STATUSES,
    RetellAPIError,
    RetellInputError,
    RetellPermanentError,
)
from airflow_provider_retell.models import (
    Agent,
    BaseModelT,
    BatchTest,
    Page,
    TestableEngine,
    TestCaseDefinition,
    TestRun,
    engine_query,
    parse_engine_input,
    parse_response,
)
from airflow_provider_retell.validation import validate_id, validate_ids, validate_version

#: How far Retell's clock may lag ours when matching an ambiguous create to its batch.
CREATE_CLOCK_SKEW_SECONDS = 120.0
_CREATE_PATH = "/create-batch-test"


def _raise_for_reply(response: httpx.Response, method: str, path: str) -> Any:
    """Return the JSON body of a success, or raise the ``RetellError`` that the status means."""
    status = response.status_code
    if response.is_success:
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetellAPIError(
                "the reply is not valid JSON", status_code=status, method=method, path=path
            ) from None
    try:
        body = response.json()
        message = str(body.get("message") or body) if isinstance(body, dict) else str(body)
    except ValueError:
        message = response.text[:200] or response.reason_phrase
    retry_after = None
    if header := response.headers.get("Retry-After"):
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    error_cls = RetellPermanentError if status in PERMANENT_STATUSES else RetellAPIError
    raise error_cls(message, status_code=status, method=method, path=path, retry_after=retry_after)


def _transport_error(exc: httpx.TransportError, method: str, path: str) -> RetellAPIError:
    return RetellAPIError(f"{type(exc).__name__}: {exc or 'no reply'}", method=method, path=path)


def _create_was_sent(exc: BaseException) -> bool:
    """Could Retell have created the batch although we saw an error? Then we must not re-send blind."""
    if not isinstance(exc, RetellAPIError) or exc.status_code == 429:
        return False
    if exc.status_code is None:
        cause = exc.__cause__
        return not isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return exc.status_code >= 500 or exc.status_code == 408 or 200 <= exc.status_code < 300


def _create_timed_out(exc: BaseException) -> bool:
    """The create was sent and no reply came in time: Retell may still be creating the batch."""
    return isinstance(exc, RetellAPIError) and isinstance(exc.__cause__, httpx.TimeoutException)


def _matches(batch: BatchTest, engine: TestableEngine, count: int, submitted_at: float) -> bool:
    same_engine = batch.response_engine.model_dump(include={"type", "llm_id", "conversation_flow_id"})
    wanted = engine.model_dump(include={"type", "llm_id", "conversation_flow_id"})
    version_ok = engine.version is None or getattr(batch.response_engine, "version", None) == engine.version
    return (
        same_engine == wanted
        and version_ok
        and batch.total_count == count
        and batch.creation_timestamp >= (submitted_at - CREATE_CLOCK_SKEW_SECONDS) * 1000
    )


class _PendingCreate:
    """One create: what was sent, and how to recognise its batch when the reply is lost."""

    def __init__(self, engine: TestableEngine, ids: list[str], before: set[str]) -> None:
        self.engine = engine
        self.ids = ids
        self.body = {
            "response_engine": engine.model_dump(exclude_none=True),
            "test_case_definition_ids": self.ids,
        }
        self.before = before  # the engine's batches from before the submit are never ours
        self.submitted_at = time.time()
        self.error: RetellAPIError | None = None

    @property
    def only_look(self) -> bool:
        """After a read timeout Retell may still be creating the batch: never send it again."""
        return self.error is not None and _create_timed_out(self.error)

    def reply_lost(self, exc: RetellAPIError) -> None:
        """Re-raise when the create surely did not land (it is retried as usual); else remember it."""
        if not _create_was_sent(exc):
            raise exc
        self.error = exc

    def may_be_ours(self, batch: BatchTest) -> bool:
        return batch.id not in self.before and _matches(batch, self.engine, len(self.ids), self.submitted_at)

    def ran_our_cases(self, runs: Sequence[TestRun]) -> bool:
        """The same test cases; a batch whose runs are not listed yet cannot be told apart: maybe ours."""
        return not runs or {r.test_case_definition_id for r in runs} == set(self.ids)

    def adopt(self, candidates: list[BatchTest], log: Any) -> BatchTest:
        """Pick the batch an ambiguous create made, or re-raise ``error`` so it is retried."""
        error = self.error
        assert error is not None
        count = len(self.ids)
        if len(candidates) == 1:
            log.warning(
                "Create reply lost (%s); adopting batch test %s found by listing the engine's batches",
                error.message,
                candidates[0].id,
            )
            return candidates[0]
        if candidates:
            ids = ", ".join(b.id for b in candidates)
            raise RetellPermanentError(
                f"the create reply was lost and {len(candidates)} batch tests of this engine with "
                f"{count} cases were created since then ({ids}); not creating another: check them in Retell",
                method="POST",
                path=_CREATE_PATH,
            ) from error
        if _create_timed_out(error):
            log.warning(
                "The create timed out (%s) and its batch is not listed yet: looking again, not re-sending",
                error.message,
            )
        else:
            log.warning(
                "The create reply was lost (%s) and no batch was created: sending it again", error.message
            )
        raise error


class RetellHook(BaseHook):
    """Auth, HTTP and the retry policy for Retell's test API, with sync methods and ``a``-prefixed twins.

    :param retell_conn_id: a connection of type ``retell``; password = API key, host = optional base URL.
    """

    conn_name_attr = "retell_conn_id"
    default_conn_name = "retell_default"
    conn_type = "retell"
    hook_name = "Retell AI"
    #: Items per page on ``/v2/list-*``; Retell allows up to 1000.
    page_size = 1000

    def __init__(self, retell_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(retell_conn_id, str) or not retell_conn_id.strip():
            raise RetellInputError(f"retell_conn_id must be a non-empty string, got {retell_conn_id!r}")
        self.retell_conn_id = retell_conn_id
        self._settings: RetellConnectionSettings | None = None
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None

    # -- connection -----------------------------------------------------------------------------

    @property
    def settings(self) -> RetellConnectionSettings:
        if self._settings is None:
            conn = self.get_connection(self.retell_conn_id)
            settings = RetellConnectionSettings.from_connection(conn, conn.extra_dejson)
            mask_secret(settings.api_key)
            self._settings = settings
        return self._settings

    async def asettings(self) -> RetellConnectionSettings:
        if self._settings is None:
            conn = await self.aget_connection(self.retell_conn_id)
            settings = RetellConnectionSettings.from_connection(conn, await conn.aextra_dejson())
            await amask_secret(settings.api_key)
            self._settings = settings
        return self._settings

    def get_conn(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = httpx.Client(**self.settings.client_kwargs())
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        if self._async_client is None:
            settings = await self.asettings()
            await warm_ssl_context()
            self._async_client = ASYNC_CLIENTS.acquire(settings)
        return self._async_client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._async_client is not None and self._settings is not None:
            self._async_client = None
            await ASYNC_CLIENTS.release(self._settings)

    # -- transport ------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.get_conn().request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(exc, method, path) from exc
        return _raise_for_reply(response, method, path)

    async def _asend(self, method: str, path: str, **kwargs: Any) -> Any:
        client = await self.aget_conn()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(exc, method, path) from exc
        return _raise_for_reply(response, method, path)

    def _read(self, path: str, model: type[BaseModelT], **params: Any) -> BaseModelT:
        for attempt in self.settings.retry.retrying(self.log):
            with attempt:
                body = self._send("GET", path, params=params or None)
        return parse_response(model, body, method="GET", path=path)

    async def _aread(self, path: str, model: type[BaseModelT], **params: Any) -> BaseModelT:
        async for attempt in (await self.asettings()).retry.async_retrying(self.log):
            with attempt:
                body = await self._asend("GET", path, params=params or None)
        return parse_response(model, body, method="GET", path=path)

    def _page_query(self, query: dict[str, Any], key: str | None) -> dict[str, Any]:
        return {**query, "limit": self.page_size, **({"pagination_key": key} if key else {})}

    def _read_all(self, path: str, model: type[BaseModelT], **query: Any) -> list[BaseModelT]:
        items: list[BaseModelT] = []
        key: str | None = None
        while True:
            page = self._read(path, Page, **self._page_query(query, key))
            items += [parse_response(model, item, method="GET", path=path) for item in page.items]
            if not page.has_more or not page.pagination_key:
                return items
            key = page.pagination_key

    async def _aread_all(self, path: str, model: type[BaseModelT], **query: Any) -> list[BaseModelT]:
        items: list[BaseModelT] = []
        key: str | None = None
        while True:
            page = await self._aread(path, Page, **self._page_query(query, key))
            items += [parse_response(model, item, method="GET", path=path) for item in page.items]
            if not page.has_more or not page.pagination_key:
                return items
            key = page.pagination_key

    # -- reads ----------------------------------------------------------------------------------

    def get_batch_test(self, batch_test_id: str) -> BatchTest:
        return self._read(f"/get-batch-test/{validate_id(batch_test_id, 'batch_test_id')}", BatchTest)

    async def aget_batch_test(self, batch_test_id: str) -> BatchTest:
        return await self._aread(f"/get-batch-test/{validate_id(batch_test_id, 'batch_test_id')}", BatchTest)

    def list_test_runs(self, batch_test_id: str) -> list[TestRun]:
        """Every run of a batch, all pages (transcripts are dropped at parse time)."""
        return self._read_all(f"/v2/list-test-runs/{validate_id(batch_test_id, 'batch_test_id')}", TestRun)

    async def alist_test_runs(self, batch_test_id: str) -> list[TestRun]:
        path = f"/v2/list-test-runs/{validate_id(batch_test_id, 'batch_test_id')}"
        return await self._aread_all(path, TestRun)

    def list_batch_tests(self, response_engine: TestableEngine | dict[str, Any]) -> list[BatchTest]:
        return self._read_all(
            "/v2/list-batch-tests", BatchTest, **engine_query(parse_engine_input(response_engine))
        )

    async def alist_batch_tests(self, response_engine: TestableEngine | dict[str, Any]) -> list[BatchTest]:
        query = engine_query(parse_engine_input(response_engine))
        return await self._aread_all("/v2/list-batch-tests", BatchTest, **query)

    def list_test_case_definitions(
        self, response_engine: TestableEngine | dict[str, Any]
    ) -> list[TestCaseDefinition]:
        query = engine_query(parse_engine_input(response_engine), with_version=False)
        return self._read_all("/v2/list-test-case-definitions", TestCaseDefinition, **query)

    async def alist_test_case_definitions(
        self, response_engine: TestableEngine | dict[str, Any]
    ) -> list[TestCaseDefinition]:
        query = engine_query(parse_engine_input(response_engine), with_version=False)
        return await self._aread_all("/v2/list-test-case-definitions", TestCaseDefinition, **query)

    def get_agent(self, agent_id: str, version: int | None = None) -> Agent:
        params = {"version": validate_version(version, "agent_version")} if version is not None else {}
        return self._read(f"/get-agent/{validate_id(agent_id, 'agent_id')}", Agent, **params)

    async def aget_agent(self, agent_id: str, version: int | None = None) -> Agent:
        params = {"version": validate_version(version, "agent_version")} if version is not None else {}
        return await self._aread(f"/get-agent/{validate_id(agent_id, 'agent_id')}", Agent, **params)

    def get_agent_response_engine(self, agent_id: str, version: int | None = None) -> Any:
        """The engine a batch test of this agent runs against (may be custom-llm: callers refuse it)."""
        return self.get_agent(agent_id, version).response_engine

    async def aget_agent_response_engine(self, agent_id: str, version: int | None = None) -> Any:
        return (await self.aget_agent(agent_id, version)).response_engine

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read: a 404 for an unknown id still proves the key works."""
        try:
            self._send("GET", "/get-batch-test/airflow-connection-test")
        except RetellPermanentError as exc:
            if exc.status_code != 404:
                return False, str(exc)
        except Exception as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, f"Connected to Retell at {self.settings.base_url}"

    # -- create ---------------------------------------------------------------------------------

    def create_batch_test(
        self, response_engine: TestableEngine | dict[str, Any], test_case_definition_ids: Sequence[str]
    ) -> BatchTest:
        """Start a batch test. Never sends a second create blindly: Retell has no idempotency key.

        The engine's existing batches are noted first. When a create's reply is lost (timeout,
        dropped connection, 5xx), the engine's batches are listed again and the one new batch that
        ran the same test cases is adopted; only when there is none is the create sent again, and
        when there are several the task fails without creating. After a read timeout the create is
        never sent again (Retell may still be creating it): the remaining attempts only list.
        """
        engine, ids = parse_engine_input(response_engine), validate_ids(test_case_definition_ids)
        pending = _PendingCreate(engine, ids, before={b.id for b in self.list_batch_tests(engine)})
        for retry in self.settings.retry.retrying(self.log):
            with retry:
                if not pending.only_look:
                    try:
                        reply = self._send("POST", _CREATE_PATH, json=pending.body)
                        batch = parse_response(BatchTest, reply, method="POST", path=_CREATE_PATH)
                        continue
                    except RetellAPIError as exc:
                        pending.reply_lost(exc)
                new = [b for b in self.list_batch_tests(engine) if pending.may_be_ours(b)]
                ours = [b for b in new if pending.ran_our_cases(self.list_test_runs(b.id))]
                batch = pending.adopt(ours, self.log)
        return batch

    async def acreate_batch_test(
        self, response_engine: TestableEngine | dict[str, Any], test_case_definition_ids: Sequence[str]
    ) -> BatchTest:
        engine, ids = parse_engine_input(response_engine), validate_ids(test_case_definition_ids)
        pending = _PendingCreate(engine, ids, before={b.id for b in await self.alist_batch_tests(engine)})
        async for retry in (await self.asettings()).retry.async_retrying(self.log):
            with retry:
                if not pending.only_look:
                    try:
                        reply = await self._asend("POST", _CREATE_PATH, json=pending.body)
                        batch = parse_response(BatchTest, reply, method="POST", path=_CREATE_PATH)
                        continue
                    except RetellAPIError as exc:
                        pending.reply_lost(exc)
                new = [b for b in await self.alist_batch_tests(engine) if pending.may_be_ours(b)]
                ours = [b for b in new if pending.ran_our_cases(await self.alist_test_runs(b.id))]
                batch = pending.adopt(ours, self.log)
        return batch
