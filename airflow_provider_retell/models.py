"""Typed views of Retell's test API objects.

Every model ignores fields Retell may add later: a new field must never break a production
quality gate, and nothing unknown rides along into events or XCom. Required fields stay required
and strings that travel on are bounded, so a truncated or hostile reply is a clear error instead
of a ``KeyError`` deep inside a task or a megabyte in a trigger event.
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from airflow_provider_retell.exceptions import RetellAPIError, RetellInputError
from airflow_provider_retell.redact import scrub_reply_text
from airflow_provider_retell.validation import ID_PATTERN, check_engine_dict

BaseModelT = TypeVar("BaseModelT", bound=BaseModel)


class _RetellModel(BaseModel):
    # defer_build: schemas are built on first use, not when a DAG file imports the operator.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


RetellId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
#: A status Retell may add later stays "not finished"; a megabyte of status is a broken reply.
Status = Annotated[str, Field(max_length=64)]
#: Free text shown to people (names, explanations); cut further where it is stored.
Text = Annotated[str, Field(max_length=100_000)]


class RetellLlmEngine(_RetellModel):
    type: Literal["retell-llm"] = "retell-llm"
    llm_id: RetellId
    version: int | None = None


class ConversationFlowEngine(_RetellModel):
    type: Literal["conversation-flow"] = "conversation-flow"
    conversation_flow_id: RetellId
    version: int | None = None


class CustomLlmEngine(_RetellModel):
    """Appears in responses only: a custom LLM cannot be batch tested."""

    type: Literal["custom-llm"] = "custom-llm"
    llm_websocket_url: str = Field(default="", max_length=2048)


ResponseEngine = Annotated[
    RetellLlmEngine | ConversationFlowEngine | CustomLlmEngine, Field(discriminator="type")
]
TestableEngine = RetellLlmEngine | ConversationFlowEngine


@cache
def _engine_adapter() -> TypeAdapter[RetellLlmEngine | ConversationFlowEngine | CustomLlmEngine]:
    return TypeAdapter(ResponseEngine)


def engine_id(engine: TestableEngine) -> str:
    return engine.llm_id if isinstance(engine, RetellLlmEngine) else engine.conversation_flow_id


def engine_query(engine: TestableEngine, *, with_version: bool = True) -> dict[str, Any]:
    """The query that the ``/v2/list-*`` endpoints take to select one engine."""
    key = "llm_id" if isinstance(engine, RetellLlmEngine) else "conversation_flow_id"
    query: dict[str, Any] = {"type": engine.type, key: engine_id(engine)}
    if with_version and engine.version is not None:
        query["version"] = engine.version
    return query


def parse_engine_input(value: Any, *, argument: str = "response_engine") -> TestableEngine:
    """Validate a user-supplied engine before any HTTP call; errors name ``argument``."""
    if isinstance(value, (RetellLlmEngine, ConversationFlowEngine)):
        return value
    kind = check_engine_dict(value, argument)
    try:
        engine = _engine_adapter().validate_python(value)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"][1:]) or kind for err in exc.errors())
        raise RetellInputError(f"{argument} of type {kind!r} is invalid: check {fields}") from None
    assert not isinstance(engine, CustomLlmEngine)
    return engine


class BatchTestStatus(str, Enum):
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


class TestRunStatus(str, Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


class BatchTest(_RetellModel):
    test_case_batch_job_id: RetellId
    # A plain str on purpose: an unknown status is "not finished yet", never a parse failure.
    status: Status
    response_engine: ResponseEngine
    # Not ``ge=0``: counts that are negative or do not add up fail the gate, naming them.
    pass_count: int
    fail_count: int
    error_count: int
    total_count: int
    creation_timestamp: int
    user_modified_timestamp: int | None = None

    @property
    def id(self) -> str:
        return self.test_case_batch_job_id

    @property
    def is_complete(self) -> bool:
        return self.status == BatchTestStatus.COMPLETE.value

    @property
    def has_known_status(self) -> bool:
        return self.status in {s.value for s in BatchTestStatus}

    @property
    def done_count(self) -> int:
        return self.pass_count + self.fail_count + self.error_count

    def progress(self) -> str:
        """One log line of progress, e.g. ``12/40 done: 1 failed, 0 errored``."""
        return (
            f"{self.done_count}/{self.total_count} done: {self.fail_count} failed, {self.error_count} errored"
        )

    def count_problems(self) -> list[str]:
        """Why the counts of a complete batch cannot be trusted ([] when they add up)."""
        counts = (self.pass_count, self.fail_count, self.error_count, self.total_count)
        if min(counts) < 0 or self.done_count != self.total_count:
            return [
                f"batch test {self.id} reports counts that do not add up: {self.pass_count} passed + "
                f"{self.fail_count} failed + {self.error_count} errored != {self.total_count} total"
            ]
        return []

    def summary(self) -> dict[str, Any]:
        """The batch's known fields as JSON: what a TriggerEvent carries."""
        return self.model_dump(mode="json", include=set(BatchTest.model_fields))


class TestCaseDefinition(_RetellModel):
    """A definition, with the fields that definitions-as-code keeps in step (None: not in the reply)."""

    test_case_definition_id: RetellId
    name: Text = ""
    user_prompt: str | None = None
    metrics: list[str] | None = None
    dynamic_variables: dict[str, Any] | None = None
    tool_mocks: list[Any] | None = None
    llm_model: str | None = None


class _DefinitionSnapshot(_RetellModel):
    """What a run keeps of its definition: the name (the prompt and the rest are dropped)."""

    name: Text = ""


class TestRun(_RetellModel):
    """One test case's run; the transcript (large, holds conversation content) is dropped at parse time."""

    test_case_job_id: RetellId
    test_case_definition_id: RetellId
    status: Status
    result_explanation: Text | None = None
    test_case_definition_snapshot: _DefinitionSnapshot | None = None
    creation_timestamp: int | None = None
    user_modified_timestamp: int | None = None

    @property
    def name(self) -> str:
        snapshot = self.test_case_definition_snapshot
        return snapshot.name if snapshot and snapshot.name else self.test_case_definition_id

    @property
    def is_failed(self) -> bool:
        return self.status in (TestRunStatus.FAIL.value, TestRunStatus.ERROR.value)

    @property
    def is_finished(self) -> bool:
        return self.is_failed or self.status == TestRunStatus.PASS.value


class Agent(_RetellModel):
    agent_id: RetellId
    response_engine: ResponseEngine
    version: int | None = None


class Page(_RetellModel):
    items: list[dict[str, Any]]
    has_more: bool = False
    pagination_key: str | None = Field(default=None, max_length=4096)


def parse_response(model: type[BaseModelT], payload: Any, *, method: str, path: str) -> BaseModelT:
    """Validate a reply; a missing or mistyped field is a ``RetellAPIError`` that names it (pydantic
    quotes some values, such as an unknown ``type``: scrubbed of the key like any reply text)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise RetellAPIError(
            f"unexpected {model.__name__} in the reply ({scrub_reply_text(problems, limit=1000)})",
            method=method,
            path=path,
            reason="reply",
        ) from None
