"""Start a Retell batch test; optionally wait for it and gate on the result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

from airflow_provider_retell.exceptions import RetellInputError, RetellPermanentError
from airflow_provider_retell.links import RetellAgentLink
from airflow_provider_retell.results import DASHBOARD_AGENT_URL, QualityGate
from airflow_provider_retell.validation import (
    MAX_TEST_CASE_DEFINITION_IDS,
    positive_seconds,
    validate_id,
    validate_ids,
    validate_version,
)
from airflow_provider_retell.waiting import (
    GATE_PARAMS,
    BatchTestState,
    BatchTestWaitMixin,
    reraise_for_argument,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_retell.models import TestableEngine


class RetellBatchTestOperator(BatchTestWaitMixin, BaseOperator):
    """Start a batch test of a Retell agent or response engine and push its id to XCom at once.

    A task retry reattaches to the batch an earlier try started (Retell bills every run, and
    has no idempotency key); clearing the task after a verdict starts a new batch.

    :param response_engine: ``{"type": "retell-llm", "llm_id": ..., "version"?: int}`` or
        ``{"type": "conversation-flow", "conversation_flow_id": ..., "version"?: int}``.
    :param agent_id: test this agent's response engine instead (exactly one of the two).
    :param agent_version: the agent version to resolve; latest when None.
    :param test_case_definition_ids: 1-200 ids; None runs every definition of the engine.
    :param wait_for_completion: wait and return the result dict instead of the batch id.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: how long to wait (seconds or timedelta); the deadline is fixed when the wait
        begins and never extended by retries.
    :param max_failures: most failed cases the gate allows (None: no bound). Only when waiting.
    :param max_errors: most errored cases the gate allows (None: no bound). Only when waiting.
    :param min_pass_rate: least pass/total in 0..1 (None: no bound). Only when waiting.
    :param fail_on_empty: a batch with no cases fails the gate. Only when waiting.
    :param retell_conn_id: the Retell connection.
    """

    template_fields: Sequence[str] = (
        "response_engine",
        "agent_id",
        "agent_version",
        "test_case_definition_ids",
        *GATE_PARAMS,
    )
    template_fields_renderers = {"response_engine": "json", "test_case_definition_ids": "json"}
    operator_extra_links = (RetellAgentLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        response_engine: dict[str, Any] | None = None,
        agent_id: str | None = None,
        agent_version: int | None = None,
        test_case_definition_ids: list[str] | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        timeout: float | timedelta = timedelta(hours=6),
        max_failures: int | None = 0,
        max_errors: int | None = 0,
        min_pass_rate: float | None = None,
        fail_on_empty: bool = True,
        retell_conn_id: str = "retell_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.response_engine = response_engine
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.test_case_definition_ids = test_case_definition_ids
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.wait_timeout = positive_seconds(timeout, "timeout")
        self.max_failures = max_failures
        self.max_errors = max_errors
        self.min_pass_rate = min_pass_rate
        self.fail_on_empty = fail_on_empty
        self.retell_conn_id = retell_conn_id
        if (response_engine is None) == (agent_id is None):
            raise RetellInputError("give exactly one of response_engine and agent_id")
        if not wait_for_completion:
            default = QualityGate()
            changed = [p for p in GATE_PARAMS if getattr(self, p) != getattr(default, p)]
            if changed:
                raise RetellInputError(
                    f"{', '.join(changed)} only apply when the task waits: set wait_for_completion=True, "
                    "or put them on RetellBatchTestSensor"
                )

    def execute(self, context: Context) -> Any:
        engine, ids = self._validated_input()
        state = BatchTestState(context)
        batch_test_id = state.get().get("batch_test_id")
        if batch_test_id:
            self.log.info(
                "Reattaching to batch test %s, started by an earlier try of this task", batch_test_id
            )
        else:
            batch_test_id = self._start(state, engine, ids)
        context["ti"].xcom_push(key="batch_test_id", value=batch_test_id)
        if not self.wait_for_completion:
            state.forget()
            return batch_test_id
        return self.wait_for_batch(context, batch_test_id, deferrable=self.deferrable)

    def _validated_input(self) -> tuple[TestableEngine | None, list[str] | None]:
        """Check every rendered argument before any HTTP call; each error names its argument."""
        from airflow_provider_retell.models import parse_engine_input

        if (self.response_engine is None) == (self.agent_id is None):
            raise RetellInputError("give exactly one of response_engine and agent_id")
        engine = None
        if self.response_engine is not None:
            engine = parse_engine_input(self.response_engine)
            if self.agent_version is not None:
                raise RetellInputError("agent_version only applies with agent_id")
        else:
            validate_id(self.agent_id, "agent_id")
        if self.agent_version is not None:
            validate_version(self.agent_version, "agent_version")
        ids = None if self.test_case_definition_ids is None else validate_ids(self.test_case_definition_ids)
        self.preflight()
        return engine, ids

    def _resolve_engine(self) -> TestableEngine:
        from airflow_provider_retell.models import CustomLlmEngine

        assert isinstance(self.agent_id, str)
        try:
            engine = self.hook.get_agent_response_engine(self.agent_id, self.agent_version)
        except RetellPermanentError as exc:
            value = self.agent_id if self.agent_version is None else f"{self.agent_id} v{self.agent_version}"
            raise reraise_for_argument(exc, "agent_id", value) from exc
        if isinstance(engine, CustomLlmEngine):
            raise RetellInputError(
                f"agent_id={self.agent_id!r} runs on a custom LLM, which Retell cannot batch test"
            )
        return engine

    def _start(self, state: BatchTestState, engine: TestableEngine | None, ids: list[str] | None) -> str:
        engine = engine or self._resolve_engine()
        known = [d.test_case_definition_id for d in self.hook.list_test_case_definitions(engine)]
        if ids is None:
            if not known:
                raise RetellInputError(
                    f"test_case_definition_ids=None runs every definition of {engine.type} "
                    f"{engine.model_dump(exclude={'type'}, exclude_none=True)}, but it has none"
                )
            if len(known) > MAX_TEST_CASE_DEFINITION_IDS:
                raise RetellInputError(
                    f"test_case_definition_ids=None would run all {len(known)} definitions of {engine.type} "
                    f"{engine.model_dump(exclude={'type'}, exclude_none=True)}, but Retell runs at most "
                    f"{MAX_TEST_CASE_DEFINITION_IDS} per batch: pass the ids (e.g. map over chunks of them)"
                )
            ids = known
        elif unknown := sorted(set(ids) - set(known)):
            raise RetellInputError(
                f"test_case_definition_ids: {unknown[:10]!r} are not test case definitions of "
                f"{engine.type} {engine.model_dump(exclude={'type'}, exclude_none=True)}"
            )
        batch = self.hook.create_batch_test(engine, ids)
        state.set(batch_test_id=batch.id, deadline=None)
        self._waiting_for = batch.id
        link = f"; agent page: {DASHBOARD_AGENT_URL.format(agent_id=self.agent_id)}" if self.agent_id else ""
        self.log.info("Started Retell batch test %s with %d test cases%s", batch.id, len(ids), link)
        return batch.id
