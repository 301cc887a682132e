"""Typed views of Retell's test API objects.

Every model tolerates fields Retell may add later (``extra="allow"``): a new field must never
break a production quality gate. Required fields stay required, so a truncated reply is a clear
error instead of a ``KeyError`` deep inside a task.
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from airflow_provider_retell.exceptions import RetellAPIError, RetellInputError
from airflow_provider_retell.validation import validate_version

BaseModelT = TypeVar("BaseModelT", bound=BaseModel)


class _RetellModel(BaseModel):
    # defer_build: schemas are built on first use, not when a DAG file imports the operator.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class RetellLlmEngine(_RetellModel):
    type: Literal["retell-llm"] = "retell-llm"
    llm_id: str = Field(min_length=1)
    version: int | None = None


class ConversationFlowEngine(_RetellModel):
    type: Literal["conversation-flow"] = "conversation-flow"
    conversation_flow_id: str = Field(min_length=1)
    version: int | None = None


class CustomLlmEngine(_RetellModel):
    """Appears in responses only: a custom LLM cannot be batch tested."""

    type: Literal["custom-llm"] = "custom-llm"
    llm_websocket_url: str = ""


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
    if not isinstance(value, dict):
        raise RetellInputError(
            f"{argument} must be a dict like {{'type': 'retell-llm', 'llm_id': '...'}}, "
            f"got {type(value).__name__}"
        )
    kind = value.get("type")
    if kind == "custom-llm" or isinstance(value, CustomLlmEngine):
        raise RetellInputError(f"{argument}: a custom-llm response engine cannot be batch tested in Retell")
    if kind not in ("retell-llm", "conversation-flow"):
        raise RetellInputError(
            f"{argument}['type'] must be 'retell-llm' or 'conversation-flow', got {kind!r}"
        )
    if value.get("version") is not None:
        validate_version(value["version"], f"{argument}['version']")
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
    test_case_batch_job_id: str
    # A plain str on purpose: an unknown status is "not finished yet", never a parse failure.
    status: str
    response_engine: ResponseEngine
    pass_count: int = Field(ge=0)
    fail_count: int = Field(ge=0)
    error_count: int = Field(ge=0)
    total_count: int = Field(ge=0)
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
        """One log line of progress, e.g. ``12/40 done, 1 failed``."""
        failed = self.fail_count + self.error_count
        return f"{self.done_count}/{self.total_count} done, {failed} failed"

    def summary(self) -> dict[str, Any]:
        """The batch without extra fields, as JSON: what a TriggerEvent carries."""
        return self.model_dump(mode="json", include=set(BatchTest.model_fields))


class TestCaseDefinition(_RetellModel):
    test_case_definition_id: str
    name: str = ""


class TestRun(_RetellModel):
    """One test case's run; the transcript (large, holds conversation content) is dropped at parse time."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    test_case_job_id: str
    test_case_definition_id: str
    status: str
    result_explanation: str | None = None
    test_case_definition_snapshot: dict[str, Any] | None = None
    creation_timestamp: int | None = None
    user_modified_timestamp: int | None = None

    @property
    def name(self) -> str:
        snapshot = self.test_case_definition_snapshot or {}
        return str(snapshot.get("name") or self.test_case_definition_id)

    @property
    def is_failed(self) -> bool:
        return self.status in (TestRunStatus.FAIL.value, TestRunStatus.ERROR.value)


class Agent(_RetellModel):
    agent_id: str
    response_engine: ResponseEngine
    version: int | None = None


class Page(_RetellModel):
    items: list[dict[str, Any]]
    has_more: bool = False
    pagination_key: str | None = None


def parse_response(model: type[BaseModelT], payload: Any, *, method: str, path: str) -> BaseModelT:
    """Validate a reply; a missing or mistyped field is a ``RetellAPIError`` that names it."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise RetellAPIError(
            f"unexpected {model.__name__} in the reply ({problems})", method=method, path=path
        ) from None
