"""What a run tests, resolved before anything is billed: the agent's engine and the run's ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_retell.exceptions import RetellInputError, RetellPermanentError
from airflow_provider_retell.validation import validate_ids

if TYPE_CHECKING:
    from airflow_provider_retell.hooks.retell import RetellHook
    from airflow_provider_retell.models import TestableEngine


def resolve_engine(hook: RetellHook, agent_id: str, agent_version: int | None) -> TestableEngine:
    """The engine a batch test of this agent runs against; an unknown agent fails naming ``agent_id``."""
    from airflow_provider_retell.models import CustomLlmEngine

    try:
        engine = hook.get_agent_response_engine(agent_id, agent_version)
    except RetellPermanentError as exc:
        value = agent_id if agent_version is None else f"{agent_id} v{agent_version}"
        raise RetellPermanentError(
            f"agent_id={value!r}: {exc.message}", status_code=exc.status_code
        ) from None
    if isinstance(engine, CustomLlmEngine):
        raise RetellInputError(f"agent_id={agent_id!r} runs on a custom LLM, which Retell cannot batch test")
    return engine


def plan_ids(hook: RetellHook, engine: TestableEngine, ids: list[str] | None) -> list[str]:
    """The run's ordered ids: every definition of the engine, or the given ones once checked, so an
    unknown or foreign id fails naming the argument before anything is billed."""
    known = [d.test_case_definition_id for d in hook.list_test_case_definitions(engine)]
    where = f"{engine.type} {engine.model_dump(exclude={'type'}, exclude_none=True)}"
    if ids is None:
        if not known:
            raise RetellInputError(
                f"test_case_definition_ids=None runs every definition of {where}, but it has none"
            )
        return validate_ids(known, argument=f"the definitions of {where}")
    if unknown := sorted(set(ids) - set(known)):
        raise RetellInputError(
            f"test_case_definition_ids: {unknown[:10]!r} are not test case definitions of {where}"
        )
    return ids
