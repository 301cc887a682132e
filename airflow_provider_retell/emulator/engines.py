"""Response engine objects: parsing, identity and matching (shared by the seed loader and the API)."""

from __future__ import annotations

from typing import Any

ENGINE_ID_FIELD = {"retell-llm": "llm_id", "conversation-flow": "conversation_flow_id"}
TESTABLE_TYPES = tuple(ENGINE_ID_FIELD)


class EngineError(ValueError):
    """A response engine object is malformed (or not allowed where it was given)."""


def parse_version(value: Any, where: str = "response_engine.version") -> int | None:
    """Accept an int (or an integral float, as the SDK sends numbers) >= 0; ``None`` means no version."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EngineError(f"{where} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise EngineError(f"{where} must be an integer")
    if value < 0:
        raise EngineError(f"{where} must be >= 0")
    return int(value)


def normalize_engine(obj: Any, *, allow_custom: bool = False) -> dict[str, Any]:
    """Validate a response engine object and return a clean copy.

    Only the documented keys are kept; ``version`` is present only when given.
    """
    if not isinstance(obj, dict):
        raise EngineError("response_engine must be an object")
    engine_type = obj.get("type")
    if engine_type == "custom-llm":
        if not allow_custom:
            raise EngineError(
                "custom LLM cannot be tested: response_engine.type must be retell-llm or conversation-flow"
            )
        url = obj.get("llm_websocket_url")
        if not isinstance(url, str) or not url:
            raise EngineError("response_engine.llm_websocket_url must be a non-empty string")
        return {"type": "custom-llm", "llm_websocket_url": url}
    if engine_type not in ENGINE_ID_FIELD:
        raise EngineError("response_engine.type must be one of retell-llm, conversation-flow")
    id_field = ENGINE_ID_FIELD[engine_type]
    engine_id = obj.get(id_field)
    if not isinstance(engine_id, str) or not engine_id:
        raise EngineError(f"response_engine.{id_field} must be a non-empty string")
    engine: dict[str, Any] = {"type": engine_type, id_field: engine_id}
    version = parse_version(obj.get("version"))
    if version is not None:
        engine["version"] = version
    return engine


def engine_key(engine: dict[str, Any]) -> tuple[str, str]:
    """(type, id) of a testable engine."""
    engine_type = engine["type"]
    return engine_type, engine[ENGINE_ID_FIELD[engine_type]]


def versions_match(a: int | None, b: int | None) -> bool:
    """A missing version on either side matches any version."""
    return a is None or b is None or a == b
