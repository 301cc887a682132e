"""Seed documents: load (YAML, JSON or dict), validate and normalise them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .engines import EngineError, normalize_engine, parse_version

DEFAULT_SEED_PATH = Path(__file__).with_name("default_seed.yaml")

OUTCOMES = ("pass", "fail", "error")
DEFAULT_LLM_MODEL = "gpt-4.1"
DEFAULT_VOICE_ID = "11labs-Adrian"
# Keys of a seed definition that steer the emulator and never appear in API objects.
EMULATOR_ONLY_KEYS = ("outcome", "outcomes", "result_explanation", "agent_id")


class SeedError(ValueError):
    """The seed document is invalid."""


def _read(source: str | Path) -> Any:
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(f"cannot read seed file {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SeedError(f"seed file {path} is not valid JSON: {exc}") from exc
    import yaml  # YAML is a superset of JSON, so this also reads JSON files with other suffixes

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(f"seed file {path} is not valid YAML: {exc}") from exc


def load_seed(source: dict[str, Any] | str | Path | None = None) -> dict[str, Any]:
    """Load and normalise a seed document.

    ``source`` is a dict, a path to a YAML or JSON file, or ``None`` for the bundled default seed.
    Returns ``{"agents": [...], "test_case_definitions": [...]}`` (plus ``"time_scale"`` when the
    document has one) with every default filled in. Raises :class:`SeedError`.
    """
    raw = _read(DEFAULT_SEED_PATH if source is None else source) if not isinstance(source, dict) else source
    if not isinstance(raw, dict):
        raise SeedError("a seed document must be an object with 'agents' and 'test_case_definitions'")
    raw = copy.deepcopy(raw)
    unknown = set(raw) - {"agents", "test_case_definitions", "time_scale"}
    if unknown:
        raise SeedError(f"unknown seed keys: {sorted(unknown)}")
    agents = [_agent(i, a) for i, a in enumerate(_list(raw, "agents"))]
    by_agent = {a["agent_id"]: a for a in agents}
    if len(by_agent) != len(agents):
        raise SeedError("agent ids must be unique")
    definitions = [_definition(i, d, by_agent) for i, d in enumerate(_list(raw, "test_case_definitions"))]
    ids = [d["test_case_definition_id"] for d in definitions]
    if len(set(ids)) != len(ids):
        raise SeedError("test case definition ids must be unique")
    seed: dict[str, Any] = {"agents": agents, "test_case_definitions": definitions}
    if raw.get("time_scale") is not None:
        seed["time_scale"] = parse_time_scale(raw["time_scale"])
    return seed


def parse_time_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SeedError("time_scale must be a number >= 0")
    return float(value)


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise SeedError(f"'{key}' must be a list")
    return value


def _agent(index: int, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"agents[{index}] must be an object")
    agent_id = raw.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise SeedError(f"agents[{index}].agent_id must be a non-empty string")
    try:
        engine = normalize_engine(raw.get("response_engine"), allow_custom=True)
        version = parse_version(raw.get("version"), "version") or 0
    except EngineError as exc:
        raise SeedError(f"agent {agent_id}: {exc}") from exc
    agent = {k: v for k, v in raw.items() if k not in ("response_engine", "version")}
    agent.update(
        agent_id=agent_id,
        agent_name=raw.get("agent_name") or agent_id,
        voice_id=raw.get("voice_id") or DEFAULT_VOICE_ID,
        version=version,
        response_engine=engine,
    )
    return agent


def _definition(index: int, raw: Any, agents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SeedError(f"test_case_definitions[{index}] must be an object")
    def_id = raw.get("test_case_definition_id") or f"tcd_seed_{index + 1:03d}"
    if not isinstance(def_id, str):
        raise SeedError(f"test_case_definitions[{index}].test_case_definition_id must be a string")
    where = f"test case definition {def_id}"
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SeedError(f"{where}: name must be a non-empty string")
    engine_raw = raw.get("response_engine")
    if engine_raw is None and raw.get("agent_id") is not None:
        agent = agents.get(raw["agent_id"])
        if agent is None:
            raise SeedError(f"{where}: unknown agent_id {raw['agent_id']!r}")
        engine_raw = agent["response_engine"]
    try:
        engine = normalize_engine(engine_raw)
    except EngineError as exc:
        raise SeedError(f"{where}: {exc}") from exc
    outcomes = raw.get("outcomes")
    if outcomes is None:
        outcomes = [raw.get("outcome", "pass")]
    elif "outcome" in raw:
        raise SeedError(f"{where}: give either 'outcome' or 'outcomes', not both")
    if not isinstance(outcomes, list) or not outcomes or any(o not in OUTCOMES for o in outcomes):
        raise SeedError(f"{where}: outcomes must be a non-empty list of pass/fail/error")
    explanation = raw.get("result_explanation")
    if isinstance(explanation, str):
        # a plain string explains the non-pass outcomes (or the pass, for an always-passing case)
        non_pass = [o for o in outcomes if o != "pass"]
        explanations = {o: explanation for o in (non_pass or ["pass"])}
    elif isinstance(explanation, dict):
        explanations = {str(k): str(v) for k, v in explanation.items()}
    elif explanation is None:
        explanations = {}
    else:
        raise SeedError(f"{where}: result_explanation must be a string or a map outcome -> string")
    metrics = raw.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise SeedError(f"{where}: metrics must be a list of strings")
    definition = {k: v for k, v in raw.items() if k not in EMULATOR_ONLY_KEYS}
    definition.update(
        test_case_definition_id=def_id,
        name=name,
        type="simulation",
        response_engine=engine,
        user_prompt=str(raw.get("user_prompt") or f"You are a caller testing: {name}."),
        metrics=list(metrics),
        dynamic_variables=dict(raw.get("dynamic_variables") or {}),
        tool_mocks=list(raw.get("tool_mocks") or []),
        llm_model=raw.get("llm_model") or DEFAULT_LLM_MODEL,
        outcomes=outcomes,
        result_explanation=explanations,
    )
    return definition
