"""Unit-test helpers: connection JSON, reply factories, fake task context.

All HTTP goes to ``BASE_URL`` (loopback) and is intercepted by respx; nothing listens there.
"""

from __future__ import annotations

import json
from typing import Any

BASE_URL = "http://127.0.0.1:59999"
API_KEY = "key_unit_SECRET_5f3a9c"
CONN_ID = "retell_unit"
LLM_ENGINE = {"type": "retell-llm", "llm_id": "llm_1", "version": 2}
FLOW_ENGINE = {"type": "conversation-flow", "conversation_flow_id": "cf_1"}


def conn_json(host: str | None = BASE_URL, password: str | None = API_KEY, **fields: Any) -> str:
    conn: dict[str, Any] = {"conn_type": "retell", **fields}
    if host is not None:
        conn["host"] = host
    if password is not None:
        conn["password"] = password
    return json.dumps(conn)


def batch_json(
    batch_id: str = "tcbj_1",
    *,
    status: str = "complete",
    engine: dict[str, Any] | None = None,
    passed: int = 3,
    failed: int = 0,
    errored: int = 0,
    total: int | None = None,
    created_ms: int = 1_700_000_000_000,
    modified_ms: int | None = 1_700_000_060_000,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "test_case_batch_job_id": batch_id,
        "status": status,
        "response_engine": dict(engine or LLM_ENGINE),
        "pass_count": passed,
        "fail_count": failed,
        "error_count": errored,
        "total_count": passed + failed + errored if total is None else total,
        "creation_timestamp": created_ms,
        "user_modified_timestamp": modified_ms,
        **extra,
    }


def run_json(
    job_id: str,
    status: str = "pass",
    *,
    definition_id: str | None = None,
    name: str | None = None,
    explanation: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "test_case_job_id": job_id,
        "test_case_definition_id": definition_id or f"def_{job_id}",
        "status": status,
        "result_explanation": explanation,
        **extra,
    }
    if name is not None:
        run["test_case_definition_snapshot"] = {"name": name}
    return run


def page(items: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
    return {"items": items, "has_more": key is not None, "pagination_key": key}
