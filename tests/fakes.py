"""Stand-ins for the two context entries the provider uses, for tests that call ``execute`` directly."""

from __future__ import annotations

from typing import Any


class FakeTI:
    """Records ``xcom_push`` calls. ``max_tries`` stays the same across retries, as Airflow's does;
    a test that clears the task by hand raises it, as Airflow does."""

    def __init__(self, max_tries: int = 0) -> None:
        self.pushed: list[tuple[str, Any]] = []
        self.max_tries = max_tries

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))


class FakeStore:
    """A dict-backed ``task_state_store``."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def fake_context(store: FakeStore | None = None) -> dict[str, Any]:
    return {"ti": FakeTI(), "task_state_store": store if store is not None else FakeStore()}
