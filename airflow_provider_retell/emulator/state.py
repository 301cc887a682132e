"""In-memory state of the emulated Retell test API.

Nothing runs in the background: the status of every test run is derived on each read from the
batch's creation time, the run's position and the time scale, with one ``now`` per request, so a
batch's counts always equal the statuses of its runs at that instant.

Timeline: a batch runs its test cases with a concurrency of ``CONCURRENCY`` (5) in definition
order, in waves: run ``i`` is ``pending`` until ``(i // 5) * RUN_SECONDS * time_scale`` after
creation, then ``in_progress`` for ``RUN_SECONDS * time_scale`` (60 s), then its seeded outcome.
12 runs finish after 180 s x time_scale; with ``time_scale = 0`` a batch is complete at creation.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engines import (
    ENGINE_ID_FIELD,
    TESTABLE_TYPES,
    EngineError,
    engine_key,
    normalize_engine,
    versions_match,
)
from .seed import DEFAULT_LLM_MODEL, SeedError, load_seed, parse_time_scale

CONCURRENCY = 5
RUN_SECONDS = 60.0
MAX_DEFINITIONS_PER_BATCH = 200
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
FINISHED = ("pass", "fail", "error")
_ENGINE_LABEL = {"retell-llm": "llm", "conversation-flow": "conversation flow"}
_DEFAULT_EXPLANATION = {
    "pass": "All metrics were met.",
    "fail": "At least one metric was not met: {metric}.",
    "error": "The simulation could not be completed: the simulated call ended unexpectedly.",
}


class ApiError(Exception):
    """An error reply of the Retell API: ``{"status": "error", "message": ...}`` with ``status_code``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Run:
    job_id: str
    definition_id: str
    snapshot: dict[str, Any]
    outcome: str
    explanation: str


@dataclass
class Batch:
    batch_id: str
    engine: dict[str, Any]
    created_ms: int
    time_scale: float
    seq: int
    runs: list[Run] = field(default_factory=list)

    def slot(self, index: int) -> tuple[int, int]:
        """(start, end) of run ``index`` in ms since epoch."""
        duration = RUN_SECONDS * 1000.0 * self.time_scale
        wave = index // CONCURRENCY
        return self.created_ms + round(wave * duration), self.created_ms + round((wave + 1) * duration)

    def run_state(self, index: int, now: int) -> tuple[str, int]:
        """(status, user_modified_timestamp) of run ``index`` at ``now``."""
        start, end = self.slot(index)
        if now >= end:
            return self.runs[index].outcome, end
        if now >= start:
            return "in_progress", start
        return "pending", self.created_ms


class EmulatorState:
    """All data of one emulator: agents, test case definitions, batches and their runs."""

    def __init__(
        self,
        seed: Mapping[str, Any] | str | Path | None = None,
        time_scale: float | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.clock = clock
        self.startup_seed = load_seed(dict(seed) if isinstance(seed, Mapping) else seed)
        self.startup_time_scale = (
            parse_time_scale(time_scale)
            if time_scale is not None
            else self.startup_seed.get("time_scale", 1.0)
        )
        self._load(self.startup_seed, self.startup_time_scale)

    # ----------------------------------------------------------------- state management
    def reset(self, time_scale: float | None = None) -> None:
        """Back to the start-up seed; ``time_scale`` None means the start-up time scale."""
        ts = self.startup_time_scale if time_scale is None else parse_time_scale(time_scale)
        self._load(self.startup_seed, ts)

    def replace_seed(self, seed: Mapping[str, Any] | str | Path, time_scale: float | None = None) -> None:
        """Replace everything with ``seed``; time scale: argument, else the seed's, else unchanged."""
        normalized = load_seed(dict(seed) if isinstance(seed, Mapping) else seed)
        if time_scale is not None:
            ts = parse_time_scale(time_scale)
        else:
            ts = normalized.get("time_scale", self.time_scale)
        self._load(normalized, ts)

    def _load(self, seed: dict[str, Any], time_scale: float) -> None:
        loaded = self.clock()
        self.time_scale = time_scale
        self.loaded_ms = loaded
        self.agents: dict[str, dict[str, Any]] = {a["agent_id"]: copy.deepcopy(a) for a in seed["agents"]}
        self.definitions: dict[str, dict[str, Any]] = {}
        for definition in seed["test_case_definitions"]:
            record = copy.deepcopy(definition)
            record.setdefault("creation_timestamp", loaded)
            record.setdefault("user_modified_timestamp", loaded)
            self.definitions[record["test_case_definition_id"]] = record
        # (type, id) -> latest known version (None when no version was ever given)
        self.engines: dict[tuple[str, str], int | None] = {}
        engines = [a["response_engine"] for a in self.agents.values()]
        engines += [d["response_engine"] for d in self.definitions.values()]
        for engine in engines:
            if engine["type"] not in TESTABLE_TYPES:
                continue
            key = engine_key(engine)
            known, version = self.engines.get(key), engine.get("version")
            self.engines[key] = (
                version if known is None else (known if version is None else max(known, version))
            )
        self.batches: dict[str, Batch] = {}
        self.runs: dict[str, tuple[Batch, int]] = {}
        self.usage: Counter[str] = Counter()
        self._seq = 0

    # ----------------------------------------------------------------- helpers
    def _resolve_engine(self, raw: Any, *, fill_version: bool) -> dict[str, Any]:
        if raw is None:
            raise ApiError(400, "response_engine is required")
        try:
            engine = normalize_engine(raw)
        except EngineError as exc:
            raise ApiError(400, str(exc)) from exc
        key = engine_key(engine)
        label = _ENGINE_LABEL[key[0]]
        if key not in self.engines:
            raise ApiError(404, f"{label} {key[1]} not found")
        latest, version = self.engines[key], engine.get("version")
        if version is not None and latest is not None and version > latest:
            raise ApiError(404, f"{label} {key[1]} version {version} not found")
        if version is None and latest is not None and fill_version:
            engine["version"] = latest
        return engine

    def _engine_query(self, query: Mapping[str, str]) -> tuple[tuple[str, str], int | None]:
        engine_type = query.get("type")
        if not engine_type:
            raise ApiError(400, "query parameter type is required")
        if engine_type not in TESTABLE_TYPES:
            raise ApiError(400, "query parameter type must be retell-llm or conversation-flow")
        id_field = ENGINE_ID_FIELD[engine_type]
        engine_id = query.get(id_field)
        if not engine_id:
            raise ApiError(400, f"query parameter {id_field} is required when type is {engine_type}")
        key = (engine_type, engine_id)
        if key not in self.engines:
            raise ApiError(404, f"{_ENGINE_LABEL[engine_type]} {engine_id} not found")
        version = None
        if query.get("version") not in (None, ""):
            version = _int_param(query, "version", minimum=0)
        return key, version

    @staticmethod
    def _page(ids: list[str], query: Mapping[str, str]) -> tuple[list[str], bool, str | None]:
        limit = DEFAULT_LIMIT
        if query.get("limit") not in (None, ""):
            limit = _int_param(query, "limit", minimum=1, maximum=MAX_LIMIT)
        start = 0
        key = query.get("pagination_key")
        if key:
            try:
                start = ids.index(key) + 1
            except ValueError:
                raise ApiError(400, "invalid pagination_key") from None
        page = ids[start : start + limit]
        has_more = start + limit < len(ids)
        return page, has_more, (page[-1] if has_more and page else None)

    @staticmethod
    def _envelope(items: list[dict[str, Any]], has_more: bool, key: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {"items": items, "has_more": has_more}
        if key is not None:
            result["pagination_key"] = key
        return result

    # ----------------------------------------------------------------- views
    def definition_view(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in record.items() if k not in ("outcomes", "result_explanation")}

    def batch_view(self, batch: Batch, now: int) -> dict[str, Any]:
        counts: Counter[str] = Counter()
        modified = batch.created_ms
        for index in range(len(batch.runs)):
            status, changed = batch.run_state(index, now)
            counts[status] += 1
            modified = max(modified, changed)
        finished = counts["pass"] + counts["fail"] + counts["error"]
        return {
            "test_case_batch_job_id": batch.batch_id,
            "status": "complete" if finished == len(batch.runs) else "in_progress",
            "response_engine": copy.deepcopy(batch.engine),
            "pass_count": counts["pass"],
            "fail_count": counts["fail"],
            "error_count": counts["error"],
            "total_count": len(batch.runs),
            "creation_timestamp": batch.created_ms,
            "user_modified_timestamp": modified,
        }

    def run_view(self, batch: Batch, index: int, now: int) -> dict[str, Any]:
        run = batch.runs[index]
        status, modified = batch.run_state(index, now)
        view: dict[str, Any] = {
            "test_case_job_id": run.job_id,
            "test_case_definition_id": run.definition_id,
            "status": status,
            "test_case_definition_snapshot": copy.deepcopy(run.snapshot),
            "creation_timestamp": batch.created_ms,
            "user_modified_timestamp": modified,
        }
        if status in FINISHED:
            view["result_explanation"] = run.explanation
            view["transcript_snapshot"] = _transcript(run, status)
        return view

    def agent_view(self, agent: dict[str, Any], version: int) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in agent.items()}
        view.update(
            version=version,
            is_published=version < agent["version"],
            last_modification_timestamp=self.loaded_ms,
        )
        view.setdefault("language", "en-US")
        return view

    # ----------------------------------------------------------------- batch tests
    def create_batch(self, body: Any, now: int) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        ids = body.get("test_case_definition_ids")
        if ids is None:
            raise ApiError(400, "test_case_definition_ids is required")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise ApiError(400, "test_case_definition_ids must be an array of non-empty strings")
        if not 1 <= len(ids) <= MAX_DEFINITIONS_PER_BATCH:
            raise ApiError(
                400,
                f"test_case_definition_ids must have 1 to {MAX_DEFINITIONS_PER_BATCH} elements, "
                f"got {len(ids)}",
            )
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ApiError(400, f"duplicate test case definition ids: {', '.join(duplicates)}")
        engine = self._resolve_engine(body.get("response_engine"), fill_version=True)
        key = engine_key(engine)
        for def_id in ids:
            definition = self.definitions.get(def_id)
            if definition is None:
                raise ApiError(404, f"test case definition {def_id} not found")
            def_engine = definition["response_engine"]
            if engine_key(def_engine) != key or not versions_match(
                def_engine.get("version"), engine.get("version")
            ):
                raise ApiError(
                    400,
                    f"test case definition {def_id} belongs to a different response engine than the request",
                )
        self._seq += 1
        batch = Batch("tcbj_" + secrets.token_hex(8), engine, now, self.time_scale, self._seq)
        for def_id in ids:
            definition = self.definitions[def_id]
            outcomes = definition["outcomes"]
            outcome = outcomes[min(self.usage[def_id], len(outcomes) - 1)]
            self.usage[def_id] += 1
            explanation = definition["result_explanation"].get(outcome) or _DEFAULT_EXPLANATION[
                outcome
            ].format(metric=(definition["metrics"] or [definition["name"]])[0])
            run = Run(
                "tcj_" + secrets.token_hex(8), def_id, self.definition_view(definition), outcome, explanation
            )
            self.runs[run.job_id] = (batch, len(batch.runs))
            batch.runs.append(run)
        self.batches[batch.batch_id] = batch
        return self.batch_view(batch, now)

    def _batch(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"test case batch job {batch_id} not found")
        return batch

    def get_batch(self, batch_id: str, now: int) -> dict[str, Any]:
        return self.batch_view(self._batch(batch_id), now)

    def list_batches(self, query: Mapping[str, str], now: int) -> dict[str, Any]:
        """Batches of one engine version, newest first: ``version`` if given, else the latest.

        retell-sdk: "Version of the response engine (defaults to latest)". A batch always records a
        version when its engine has one (create fills in the latest), so this is an exact match; an
        engine the seed names without any version lists its batches created without a version.
        """
        key, version = self._engine_query(query)
        if version is None:
            version = self.engines[key]
        matching = [
            b
            for b in self.batches.values()
            if engine_key(b.engine) == key and b.engine.get("version") == version
        ]
        matching.sort(key=lambda b: (b.created_ms, b.seq), reverse=True)
        page, has_more, next_key = self._page([b.batch_id for b in matching], query)
        return self._envelope([self.batch_view(self.batches[i], now) for i in page], has_more, next_key)

    def list_runs(self, batch_id: str, query: Mapping[str, str], now: int) -> dict[str, Any]:
        batch = self._batch(batch_id)
        page, has_more, next_key = self._page([r.job_id for r in batch.runs], query)
        return self._envelope([self.run_view(batch, self.runs[i][1], now) for i in page], has_more, next_key)

    def get_run(self, job_id: str, now: int) -> dict[str, Any]:
        found = self.runs.get(job_id)
        if found is None:
            raise ApiError(404, f"test case job {job_id} not found")
        return self.run_view(found[0], found[1], now)

    # ----------------------------------------------------------------- test case definitions
    def _definition(self, def_id: str) -> dict[str, Any]:
        definition = self.definitions.get(def_id)
        if definition is None:
            raise ApiError(404, f"test case definition {def_id} not found")
        return definition

    def get_definition(self, def_id: str) -> dict[str, Any]:
        return self.definition_view(self._definition(def_id))

    def list_definitions(self, query: Mapping[str, str]) -> dict[str, Any]:
        """Definitions of one engine in seed/creation order.

        The SDK has no ``version`` for this call: without it every definition of the engine is listed
        (a definition is not tied to the latest version). With ``version`` (an emulator extension, same
        query as list-batch-tests): those usable in a batch of that version, i.e. of that version or
        without a version.
        """
        key, version = self._engine_query(query)
        ids = [
            d["test_case_definition_id"]
            for d in self.definitions.values()
            if engine_key(d["response_engine"]) == key
            and versions_match(d["response_engine"].get("version"), version)
        ]
        page, has_more, next_key = self._page(ids, query)
        return self._envelope([self.definition_view(self.definitions[i]) for i in page], has_more, next_key)

    def create_definition(self, body: Any, now: int) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        for required in ("name", "response_engine", "user_prompt", "metrics"):
            if body.get(required) is None:
                raise ApiError(400, f"{required} is required")
        fields = self._definition_fields(body)
        record: dict[str, Any] = {
            "test_case_definition_id": "tcd_" + secrets.token_hex(8),
            "type": "simulation",
            "dynamic_variables": {},
            "tool_mocks": [],
            "llm_model": DEFAULT_LLM_MODEL,
            **fields,
            "creation_timestamp": now,
            "user_modified_timestamp": now,
            "outcomes": ["pass"],
            "result_explanation": {},
        }
        self.definitions[record["test_case_definition_id"]] = record
        return self.definition_view(record)

    def update_definition(self, def_id: str, body: Any, now: int) -> dict[str, Any]:
        record = self._definition(def_id)
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        record.update(self._definition_fields(body))
        record["user_modified_timestamp"] = now
        return self.definition_view(record)

    def delete_definition(self, def_id: str) -> None:
        self._definition(def_id)
        del self.definitions[def_id]

    def _definition_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if body.get("name") is not None:
            if not isinstance(body["name"], str) or not body["name"]:
                raise ApiError(400, "name must be a non-empty string")
            fields["name"] = body["name"]
        if body.get("response_engine") is not None:
            fields["response_engine"] = self._resolve_engine(body["response_engine"], fill_version=False)
        if body.get("user_prompt") is not None:
            if not isinstance(body["user_prompt"], str):
                raise ApiError(400, "user_prompt must be a string")
            fields["user_prompt"] = body["user_prompt"]
        if body.get("metrics") is not None:
            metrics = body["metrics"]
            if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
                raise ApiError(400, "metrics must be an array of strings")
            fields["metrics"] = list(metrics)
        if body.get("dynamic_variables") is not None:
            variables = body["dynamic_variables"]
            if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
                raise ApiError(400, "dynamic_variables must be an object of strings")
            fields["dynamic_variables"] = dict(variables)
        if body.get("tool_mocks") is not None:
            if not isinstance(body["tool_mocks"], list):
                raise ApiError(400, "tool_mocks must be an array")
            fields["tool_mocks"] = copy.deepcopy(body["tool_mocks"])
        if body.get("llm_model") is not None:
            if not isinstance(body["llm_model"], str):
                raise ApiError(400, "llm_model must be a string")
            fields["llm_model"] = body["llm_model"]
        return fields

    # ----------------------------------------------------------------- agents
    def get_agent(self, agent_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, f"agent {agent_id} not found")
        version = agent["version"]
        if query.get("version") not in (None, ""):
            version = _int_param(query, "version", minimum=0)
            if version > agent["version"]:
                raise ApiError(404, f"agent {agent_id} version {version} not found")
        return self.agent_view(agent, version)

    def list_agents(self, query: Mapping[str, str], body: Any) -> dict[str, Any]:
        """``POST /v2/list-agents`` (retell-sdk 6.2 ``agent.list``): one item per agent, paginated.

        Query ``limit``, ``pagination_key`` (an agent id), ``sort_order`` (``descending``, the
        default: newest agent first, seed order counting as creation order; or ``ascending``).
        Body: optional ``filter_criteria`` with ``channel``, ``is_transfer_agent`` and ``query``.
        """
        sort_order = query.get("sort_order") or "descending"
        if sort_order not in ("ascending", "descending"):
            raise ApiError(400, "query parameter sort_order must be ascending or descending")
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        criteria = body.get("filter_criteria")
        if criteria is None:
            criteria = {}
        if not isinstance(criteria, dict):
            raise ApiError(400, "filter_criteria must be an object")
        unknown = set(criteria) - {"channel", "is_transfer_agent", "query"}
        if unknown:
            raise ApiError(400, f"unknown filter_criteria: {', '.join(sorted(unknown))}")
        items = [self.agent_list_item(a) for a in self.agents.values()]
        if "channel" in criteria:
            items = [i for i in items if _string_filter(criteria["channel"], i["channel"], "channel")]
        if "is_transfer_agent" in criteria:
            wanted = _boolean_filter(criteria["is_transfer_agent"], "is_transfer_agent")
            items = [i for i in items if i["is_transfer_agent"] is wanted]
        if "query" in criteria:
            text = criteria["query"]
            if not isinstance(text, str):
                raise ApiError(400, "filter_criteria.query must be a string")
            items = [i for i in items if text.lower() in i["agent_name"].lower() or text in i["agent_id"]]
        if sort_order == "descending":
            items.reverse()
        by_id = {i["agent_id"]: i for i in items}
        page, has_more, next_key = self._page(list(by_id), query)
        return self._envelope([by_id[i] for i in page], has_more, next_key)

    def list_agents_v1(self) -> list[dict[str, Any]]:
        """``GET /list-agents`` (older docs): a JSON array with the latest version of every agent."""
        return [self.agent_view(a, a["version"]) for a in self.agents.values()]

    def agent_list_item(self, agent: dict[str, Any]) -> dict[str, Any]:
        return {
            "agent_id": agent["agent_id"],
            "agent_name": agent["agent_name"],
            "channel": agent.get("channel", "voice"),
            "is_suspended": bool(agent.get("is_suspended", False)),
            "tags": copy.deepcopy(agent.get("tags", {})),
            "user_modified_timestamp": self.loaded_ms,
            "is_transfer_agent": bool(agent.get("is_transfer_agent", False)),
        }


def _filter_object(raw: Any, name: str, kind: str, ops: tuple[str, ...]) -> tuple[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") != kind or raw.get("op") not in ops or "value" not in raw:
        raise ApiError(
            400, f"filter_criteria.{name} must be {{op: {'|'.join(ops)}, type: {kind}, value: ...}}"
        )
    return raw["op"], raw["value"]


def _string_filter(raw: Any, actual: str, name: str) -> bool:
    op, value = _filter_object(raw, name, "string", ("eq", "ne", "sw", "ew", "co"))
    if not isinstance(value, str):
        raise ApiError(400, f"filter_criteria.{name}.value must be a string")
    return {
        "eq": actual == value,
        "ne": actual != value,
        "sw": actual.startswith(value),
        "ew": actual.endswith(value),
        "co": value in actual,
    }[op]


def _boolean_filter(raw: Any, name: str) -> bool:
    _, value = _filter_object(raw, name, "boolean", ("eq",))
    if not isinstance(value, bool):
        raise ApiError(400, f"filter_criteria.{name}.value must be a boolean")
    return value


def _int_param(query: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None) -> int:
    raw = query.get(name, "")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"query parameter {name} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(400, f"query parameter {name} must be {bound}")
    return value


def _transcript(run: Run, status: str) -> list[dict[str, str]]:
    closing = {
        "pass": "Great, that's all sorted for you. Is there anything else I can help with?",
        "fail": "Okay, I've gone ahead and done that for you.",
        "error": "Sorry, I'm having trouble with that right now.",
    }[status]
    return [
        {"role": "agent", "content": "Hello, thanks for calling. How can I help you today?"},
        {"role": "user", "content": run.snapshot.get("user_prompt", "")[:200]},
        {"role": "agent", "content": closing},
    ]


__all__ = ["ApiError", "Batch", "EmulatorState", "EngineError", "Run", "SeedError", "now_ms"]
