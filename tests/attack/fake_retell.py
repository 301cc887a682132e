"""A small, stateful, scriptable Retell for attack tests, served by ``tests.chaos.ChaosServer``.

It bills (records) every batch a create applies, so a test can count what Retell would charge,
and it can lie in the ways a real server or the network might: lose the create's reply, report the
batch under another engine version, run on a skewed clock, publish a new engine version mid-run,
repeat items across pages, report counts that do not match what was asked.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos import ChaosServer, Reply, Request, retell_error
from tests.fakes import FakeStore

API_KEY = "key_ATTACK_5ecret_9f2c1d7e"


@dataclass(repr=False)
class FakeBatch:
    id: str
    engine: dict[str, Any]
    ids: list[str]
    created_ms: int
    outcomes: dict[str, str]
    complete_at: float  # our epoch seconds
    listed_at: float = 0.0  # our epoch seconds from which the listing shows it
    total_override: int | None = None
    counts_override: dict[str, int] | None = None

    def view(self, now: float) -> dict[str, Any]:
        complete = now >= self.complete_at
        counts = {"pass": 0, "fail": 0, "error": 0}
        if complete:
            for case in self.ids:
                counts[self.outcomes.get(case, "pass")] += 1
        if self.counts_override is not None:
            counts = dict(self.counts_override)
        total = len(self.ids) if self.total_override is None else self.total_override
        return {
            "test_case_batch_job_id": self.id,
            "status": "complete" if complete else "in_progress",
            "response_engine": dict(self.engine),
            "pass_count": counts["pass"],
            "fail_count": counts["fail"],
            "error_count": counts["error"],
            "total_count": total,
            "creation_timestamp": self.created_ms,
            "user_modified_timestamp": self.created_ms + 1000,
        }

    def runs(self, now: float) -> list[dict[str, Any]]:
        complete = now >= self.complete_at
        return [
            {
                "test_case_job_id": f"tcj_{self.id}_{i}",
                "test_case_definition_id": case,
                "status": self.outcomes.get(case, "pass") if complete else "pending",
                "result_explanation": "scripted",
                "test_case_definition_snapshot": {"name": case},
            }
            for i, case in enumerate(self.ids)
        ]


def engine_key(engine: dict[str, Any]) -> tuple[str, str]:
    return engine["type"], engine.get("llm_id") or engine.get("conversation_flow_id") or ""


@dataclass(repr=False)
class FakeRetell:
    """Mount on a ChaosServer with :meth:`mount`; ``batches`` is what Retell billed."""

    server: ChaosServer
    api_key: str = API_KEY
    #: latest version per engine (None: the engine has no versions)
    latest: dict[tuple[str, str], int | None] = field(default_factory=dict)
    #: one entry per POST: "ok", "lost" (applied, then 504), "fail" (500, not applied) or a callable
    creates: list[Any] = field(default_factory=list)
    #: per test case definition id: "pass" | "fail" | "error" (default pass); a list: per batch run
    outcomes: dict[str, Any] = field(default_factory=dict)
    complete_after: float = 0.0
    #: seconds after its creation before a batch shows up in ``list-batch-tests`` (eventual consistency)
    list_lag: float = 0.0
    #: Retell's clock minus ours, in seconds (negative: Retell lags)
    clock_offset: float = 0.0
    #: rewrites replies: (kind, payload, request) -> payload; kinds: post, get, runs, list
    transform: Callable[[str, Any, Request], Any] | None = None
    #: seconds to wait before answering a route kind ("post", "list", "get", "runs", "defs")
    delays: dict[str, float] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[FakeBatch] = field(default_factory=list)
    posts: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def mount(self) -> FakeRetell:
        self.server.handler = self.handle
        return self

    # -- helpers -------------------------------------------------------------------------------
    def retell_now_ms(self) -> int:
        return int((time.time() + self.clock_offset) * 1000)

    def apply_create(self, body: dict[str, Any]) -> FakeBatch:
        engine = dict(body["response_engine"])
        key = engine_key(engine)
        if engine.get("version") is None and self.latest.get(key) is not None:
            engine["version"] = self.latest[key]
        outcomes = {}
        for case in body["test_case_definition_ids"]:
            scripted = self.outcomes.get(case, "pass")
            if isinstance(scripted, list):
                n = self.usage.get(case, 0)
                scripted = scripted[min(n, len(scripted) - 1)]
            self.usage[case] = self.usage.get(case, 0) + 1
            outcomes[case] = scripted
        batch = FakeBatch(
            id=f"tcbj_fake{next(self._ids)}",
            engine=engine,
            ids=list(body["test_case_definition_ids"]),
            created_ms=self.retell_now_ms(),
            outcomes=outcomes,
            complete_at=time.time() + self.complete_after,
            listed_at=time.time() + self.list_lag,
        )
        self.batches.append(batch)
        return batch

    def _out(self, kind: str, payload: Any, req: Request) -> Any:
        return self.transform(kind, payload, req) if self.transform is not None else payload

    # -- the API -------------------------------------------------------------------------------
    async def handle(self, req: Request) -> Reply:
        import asyncio

        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return retell_error(401, "Invalid API key")
        kind = self._kind(req)
        if self.delays.get(kind):
            await asyncio.sleep(self.delays[kind])
        with self._lock:
            return self._dispatch(kind, req)

    @staticmethod
    def _kind(req: Request) -> str:
        if req.method == "POST" and req.path == "/create-batch-test":
            return "post"
        if req.path == "/v2/list-batch-tests":
            return "list"
        if req.path.startswith("/get-batch-test/"):
            return "get"
        if req.path.startswith("/v2/list-test-runs/"):
            return "runs"
        if req.path == "/v2/list-test-case-definitions":
            return "defs"
        if req.path.startswith("/get-agent/"):
            return "agent"
        return "other"

    def _dispatch(self, kind: str, req: Request) -> Reply:
        now = time.time()
        if kind == "post":
            self.posts += 1
            action = self.creates.pop(0) if self.creates else "ok"
            if callable(action):
                return action(self, req)
            if action == "fail":
                return retell_error(500, "internal error")
            batch = self.apply_create(req.json())
            if action == "lost":
                return retell_error(504, "gateway timeout")
            return Reply(201, json=self._out("post", batch.view(now), req))
        if kind == "get":
            batch_id = req.path.rsplit("/", 1)[1]
            batch = next((b for b in self.batches if b.id == batch_id), None)
            if batch is None:
                return retell_error(404, f"test case batch job {batch_id} not found")
            return Reply(200, json=self._out("get", batch.view(now), req))
        if kind == "runs":
            batch_id = req.path.rsplit("/", 1)[1]
            batch = next((b for b in self.batches if b.id == batch_id), None)
            if batch is None:
                return retell_error(404, "not found")
            return Reply(
                200, json=self._out("runs", self._page(batch.runs(now), req.query, "test_case_job_id"), req)
            )
        if kind == "list":
            key = (req.query["type"], req.query.get("llm_id") or req.query.get("conversation_flow_id") or "")
            version = req.query.get("version")
            wanted = int(version) if version not in (None, "") else self.latest.get(key)
            items = [
                b
                for b in self.batches
                if engine_key(b.engine) == key and b.engine.get("version") == wanted and now >= b.listed_at
            ]
            items.sort(key=lambda b: b.created_ms, reverse=True)
            page = self._page([b.view(now) for b in items], req.query, "test_case_batch_job_id")
            return Reply(200, json=self._out("list", page, req))
        if kind == "defs":
            ids = sorted({case for case in self.outcomes} | set(self.known_definitions))
            items = [{"test_case_definition_id": i, "name": i} for i in ids]
            return Reply(200, json=self._page(items, req.query, "test_case_definition_id"))
        if kind == "agent":
            agent_id = req.path.rsplit("/", 1)[1]
            if agent_id not in self.agents:
                return retell_error(404, f"agent {agent_id} not found")
            return Reply(200, json=self.agents[agent_id])
        return retell_error(404, "no such endpoint")

    known_definitions: list[str] = field(default_factory=list)

    @staticmethod
    def _page(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
        limit = int(query.get("limit") or 50)
        start = 0
        if query.get("pagination_key"):
            ids = [i[key] for i in items]
            start = ids.index(query["pagination_key"]) + 1 if query["pagination_key"] in ids else len(ids)
        chunk = items[start : start + limit]
        has_more = start + limit < len(items)
        out: dict[str, Any] = {"items": chunk, "has_more": has_more}
        if has_more and chunk:
            out["pagination_key"] = chunk[-1][key]
        return out


def connection_json(url: str, api_key: str = API_KEY, **extra: Any) -> str:
    return json.dumps({"conn_type": "retell", "host": url, "password": api_key, "extra": extra})


class WorkerKilled(BaseException):
    """The worker process died here (SIGKILL, OOM, node lost): nothing after this line ran."""


def records_a_started_batch(value: Any) -> bool:
    return isinstance(value, dict) and any(
        b is not None for r in value.get("rounds", []) for b in r.get("batch_test_ids", [])
    )


class KillWhenTheBatchIdIsSaved(FakeStore):
    """The task state store of a worker that dies while writing the batch id (one round trip)."""

    killed = False

    def set(self, key: str, value: Any, **kw: Any) -> None:
        if records_a_started_batch(value) and not self.killed:
            self.killed = True
            raise WorkerKilled("SIGKILL while saving the batch id")
        super().set(key, value, **kw)
