"""Checks of task and hook arguments, made before any HTTP call; every error names the argument."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from airflow_provider_retell.exceptions import RetellInputError

MAX_TEST_CASE_DEFINITION_IDS = 200


def validate_id(value: Any, argument: str) -> str:
    """A Retell id that is safe to put in a URL path."""
    if not isinstance(value, str) or not value.strip():
        raise RetellInputError(f"{argument} must be a non-empty string, got {value!r}")
    if "/" in value or value != value.strip():
        raise RetellInputError(f"{argument} {value!r} is not a Retell id")
    return value


def validate_version(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RetellInputError(f"{argument} must be a non-negative int, got {value!r}")
    return value


def validate_ids(ids: Any, *, argument: str = "test_case_definition_ids") -> list[str]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise RetellInputError(f"{argument} must be a list of test case definition id strings, got {ids!r}")
    ids = list(ids)
    if not ids:
        raise RetellInputError(f"{argument} is empty: give at least one id, or None to run them all")
    if len(ids) > MAX_TEST_CASE_DEFINITION_IDS:
        raise RetellInputError(
            f"{argument} has {len(ids)} ids; Retell runs at most {MAX_TEST_CASE_DEFINITION_IDS} per batch"
        )
    bad = [i for i in ids if not isinstance(i, str) or not i.strip()]
    if bad:
        raise RetellInputError(f"{argument} must hold non-empty strings, got {bad[:5]!r}")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RetellInputError(f"{argument} has duplicates: {duplicates[:10]!r}")
    return ids


def positive_seconds(value: Any, argument: str) -> float:
    """A positive duration given as seconds or a timedelta."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise RetellInputError(
            f"{argument} must be a positive number of seconds or a timedelta, got {value!r}"
        )
    return float(value)
