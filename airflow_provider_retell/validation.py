"""Checks of task, trigger and connection arguments, made before any HTTP call; errors name the argument."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_retell.exceptions import RetellInputError

#: Retell runs at most this many test cases in one batch; a longer list is split.
MAX_TEST_CASE_DEFINITION_IDS = 200
#: Most test cases one run may hold (100 batches): a bound on what a typo in a list can bill.
MAX_RUN_TEST_CASES = 20_000
#: Every id Retell hands out (``agent_…``, ``llm_…``, ``tcbj_…``, ``tcd_…``) fits; nothing that
#: could leave its URL path segment (``/ ? # % .``, whitespace, control characters) does.
ID_PATTERN = r"[A-Za-z0-9_-]{1,128}"
_ID = re.compile(ID_PATTERN)

#: ``baseline=`` this compares with the engine's earlier runs (else a batch test id).
PREVIOUS = "previous"

# Documented ranges of durations (seconds).
POLL_INTERVAL_RANGE = (0.1, 86_400.0)
TIMEOUT_RANGE = (0.0, 7 * 86_400.0)


def finite(value: int | float) -> bool:
    """A real, finite number that float arithmetic can hold (10**400 is an int, but not that)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters: an error message must not grow with a bad input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_id(value: Any, argument: str) -> str:
    """A Retell id that is safe to put in a URL path segment."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise RetellInputError(
            f"{argument} must be a Retell id (1-128 letters, digits, '_' or '-'), got {shown(value)}"
        )
    return value


def validate_version(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RetellInputError(f"{argument} must be a non-negative int, got {shown(value)}")
    return value


def validate_ids(
    ids: Any, *, argument: str = "test_case_definition_ids", limit: int = MAX_RUN_TEST_CASES
) -> list[str]:
    """A non-empty list of distinct ids, at most ``limit`` of them."""
    if isinstance(ids, (str, bytes, dict)) or not isinstance(ids, Iterable):
        raise RetellInputError(
            f"{argument} must be a list of test case definition id strings, got {shown(ids)}"
        )
    ids = list(ids)
    if not ids:
        raise RetellInputError(f"{argument} is empty: give at least one id, or None to run them all")
    if len(ids) > limit:
        raise RetellInputError(f"{argument} has {len(ids)} ids; at most {limit} are allowed here")
    for value in ids:
        validate_id(value, f"{argument} item")
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise RetellInputError(f"{argument} has duplicates: {duplicates[:10]!r}")
    return ids


def seconds(
    value: Any, argument: str, *, minimum: float = 0.0, maximum: float, open_min: bool = True
) -> float:
    """A finite duration (seconds or a timedelta) in ``(minimum, maximum]`` (``[minimum, …]`` when not
    ``open_min``): NaN, infinity and absurd values would busy-loop, overflow or never end."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite(value):
        raise RetellInputError(
            f"{argument} must be a finite number of seconds or a timedelta, got {shown(value)}"
        )
    low_ok = value > minimum if open_min else value >= minimum
    if not low_ok or value > maximum:
        low = f"more than {minimum:g}" if open_min else f"at least {minimum:g}"
        raise RetellInputError(f"{argument} must be {low} and at most {maximum:g} seconds, got {value!r}")
    return float(value)


def poll_interval_seconds(value: Any, argument: str = "poll_interval") -> float:
    return seconds(
        value, argument, minimum=POLL_INTERVAL_RANGE[0], maximum=POLL_INTERVAL_RANGE[1], open_min=False
    )


def timeout_seconds(value: Any, argument: str = "timeout") -> float:
    return seconds(value, argument, minimum=TIMEOUT_RANGE[0], maximum=TIMEOUT_RANGE[1])


def chunked(ids: list[str], size: int = MAX_TEST_CASE_DEFINITION_IDS) -> list[list[str]]:
    """Split a run's ids into batches Retell accepts, in order."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def check_engine_dict(value: Any, argument: str = "response_engine") -> str:
    """A testable engine as a user writes it (no pydantic: also checked at DAG parse); returns its type."""
    if not isinstance(value, dict):
        raise RetellInputError(
            f"{argument} must be a dict like {{'type': 'retell-llm', 'llm_id': '...'}}, got {type(value).__name__}"
        )
    kind = value.get("type")
    if kind == "custom-llm":
        raise RetellInputError(f"{argument}: a custom-llm response engine cannot be batch tested in Retell")
    if kind not in ("retell-llm", "conversation-flow"):
        raise RetellInputError(
            f"{argument}['type'] must be 'retell-llm' or 'conversation-flow', got {shown(kind)}"
        )
    id_key = "llm_id" if kind == "retell-llm" else "conversation_flow_id"
    unknown = sorted(set(value) - {"type", id_key, "version"}, key=str)
    if unknown:
        raise RetellInputError(
            f"{argument} has unknown key(s) {shown(unknown)}: a {kind} engine takes type, {id_key} and version"
        )
    validate_id(value.get(id_key), f"{argument}['{id_key}']")
    if value.get("version") is not None:
        validate_version(value["version"], f"{argument}['version']")
    return str(kind)


def templated(value: Any) -> bool:
    """A value Airflow fills in at run time: a Jinja string, an XComArg, or a container holding one."""
    from airflow.sdk import XComArg

    if isinstance(value, XComArg):
        return True
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, (list, tuple, set)):
        return any(templated(v) for v in value)
    if isinstance(value, dict):
        return any(templated(k) or templated(v) for k, v in value.items())
    return False


def count_argument(
    value: Any, argument: str, *, minimum: int, maximum: int | None = None, none_ok: bool = False
) -> int | None:
    """A whole number in range (``None`` when allowed)."""
    if value is None and none_ok:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        top = f" to {maximum}" if maximum is not None else " or more"
        extra = " or None" if none_ok else ""
        raise RetellInputError(f"{argument} must be an int from {minimum}{top}{extra}, got {shown(value)}")
    return value


def check_target(
    response_engine: Any, agent_id: Any, agent_version: Any, ids: Any, *, skip_templated: bool = False
) -> list[str] | None:
    """What a run tests: exactly one of engine and agent, each well formed, and the ids (None: all).

    At DAG parse (``skip_templated``) only literal values are checked; templated and XCom values are
    checked when the task runs, after rendering.
    """

    def known(value: Any) -> bool:
        return value is not None and not (skip_templated and templated(value))

    if (response_engine is None) == (agent_id is None):
        raise RetellInputError("give exactly one of response_engine and agent_id")
    if known(response_engine):
        check_engine_dict(response_engine)
        if agent_version is not None:
            raise RetellInputError("agent_version only applies with agent_id")
    if known(agent_id):
        validate_id(agent_id, "agent_id")
    if known(agent_version):
        validate_version(agent_version, "agent_version")
    return validate_ids(ids, limit=MAX_RUN_TEST_CASES) if known(ids) else None


def check_baseline(baseline: Any, lookback: Any) -> None:
    """``"previous"``, a batch test id, or None; the look-back a count of batches (1-200)."""
    if baseline is not None and baseline != PREVIOUS:
        try:
            validate_id(baseline, "baseline")
        except RetellInputError:
            raise RetellInputError(
                f"baseline must be 'previous', a batch test id or None, got {shown(baseline)}"
            ) from None
    count_argument(lookback, "baseline_lookback", minimum=1, maximum=200)


def check_report_path(value: Any) -> str | None:
    """An absolute local path, or a full URL (``file:///x``, ``s3://bucket/x``). ``file://host/x`` is
    refused: Airflow's ObjectStoragePath would write it to ``./host/x`` relative to the worker."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RetellInputError(f"report_path must be a path or URL string, got {shown(value)}")
    parts = urlsplit(value)
    if parts.scheme and len(parts.scheme) > 1:  # "C:" is a drive, not a scheme
        if parts.scheme == "file" and parts.netloc not in ("",):
            raise RetellInputError(f"report_path {value!r}: write file URLs as file:///absolute/path")
        if not parts.path or parts.path == "/":
            raise RetellInputError(f"report_path {value!r} names no file")
        return value
    if not value.startswith("/"):
        raise RetellInputError(
            f"report_path {value!r} must be absolute (template it, e.g. /reports/{{{{ run_id }}}}.xml)"
        )
    return value
