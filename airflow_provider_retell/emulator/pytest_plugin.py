"""Pytest plugin: the ``retell_emulator`` fixtures and :func:`start_emulator` for scripts.

Opt-in: a project's ``conftest.py`` loads it with one line,
``pytest_plugins = ["airflow_provider_retell.emulator.pytest_plugin"]``, so it never loads into
pytest sessions that did not ask. It imports only stdlib, httpx and pytest; the emulator itself runs
in a subprocess (``python -m airflow_provider_retell.emulator``, which needs the ``emulator`` extra).

- ``retell_emulator_server`` (session): one emulator subprocess, time scale 0.01.
- ``retell_emulator`` (function): the same handle after a reset (default seed, time scale 0.01,
  no faults, empty request log).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

DEFAULT_TEST_TIME_SCALE = 0.01
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class RetellEmulatorError(RuntimeError):
    """The emulator could not be started or a control call failed."""


class RetellEmulator:
    """Handle on a running emulator: its URL and API key, plus the control API."""

    def __init__(
        self, url: str, api_key: str, time_scale: float, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.time_scale = time_scale
        self.startup_time_scale = time_scale
        self.process = process
        self._client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def __repr__(self) -> str:  # never shows the API key
        return f"RetellEmulator(url={self.url!r}, time_scale={self.time_scale!r})"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for direct API calls."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new authenticated ``httpx.Client`` for the API (caller closes it)."""
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, headers=self.headers, trust_env=False, **kwargs)

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        response = self._client.request(method, f"/_emulator/{path}", json=payload)
        if response.status_code >= 400:
            raise RetellEmulatorError(f"{method} /_emulator/{path}: {response.status_code} {response.text}")
        return response.json()

    def reset(self, time_scale: float | None = None) -> None:
        """Back to the start-up seed; clears batches, faults and the request log.

        ``time_scale`` None means the time scale the emulator was started with.
        """
        scale = self.startup_time_scale if time_scale is None else time_scale
        self.time_scale = float(self._control("POST", "reset", {"time_scale": scale})["time_scale"])

    def seed(self, data: dict[str, Any] | str | Path, time_scale: float | None = None) -> None:
        """Replace all state with a seed document (dict, or a YAML/JSON file path).

        ``time_scale`` None keeps the document's ``time_scale`` if it has one, else the current one.
        """
        if isinstance(data, dict):
            document = dict(data)
        else:
            path = Path(data)
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() == ".json":
                document = json.loads(text)
            else:
                import yaml

                document = yaml.safe_load(text)
        if time_scale is not None:
            document["time_scale"] = time_scale
        self.time_scale = float(self._control("POST", "seed", document)["time_scale"])

    def add_fault(self, method: str, path: str, action: str, *, times: int = 1, **params: Any) -> str:
        """Inject a fault for requests matching ``method`` ("*" for any) and ``path`` (a glob).

        Actions: status (status_code, retry_after, message), delay (seconds), drop, malformed,
        lost_reply (status_code), patch (json, remove), late_apply (seconds, status_code).
        Returns the fault id.
        """
        spec = {"method": method, "path": path, "action": action, "times": times, **params}
        return str(self._control("POST", "faults", spec)["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """Logged API requests in arrival order, optionally filtered by method and path glob."""
        entries = self._control("GET", "requests")["requests"]
        return [
            e
            for e in entries
            if (method is None or e["method"] == method.upper())
            and (path is None or fnmatch.fnmatchcase(e["path"], path))
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.requests(method, path))

    def connections(self, method: str | None = None, path: str | None = None) -> int:
        """Distinct client ``host:port`` among the logged requests (filtered as in :meth:`requests`):
        the number of TCP connections clients opened to make those API requests."""
        return len({e["client"] for e in self.requests(method, path) if e.get("client")})

    def clear_requests(self) -> None:
        self._control("DELETE", "requests")

    def connection_json(self, **extra: Any) -> str:
        """A JSON Airflow connection (for ``AIRFLOW_CONN_RETELL_DEFAULT`` etc.) pointing here."""
        return json.dumps({"conn_type": "retell", "host": self.url, "password": self.api_key, "extra": extra})

    def close(self) -> None:
        self._client.close()


def _read_first_line(stream: IO[bytes], timeout: float) -> str | None:
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode().strip() if result else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def start_emulator(
    api_key: str | None = None,
    time_scale: float = DEFAULT_TEST_TIME_SCALE,
    seed: dict[str, Any] | str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
) -> Iterator[RetellEmulator]:
    """Start the emulator CLI in a subprocess and yield a :class:`RetellEmulator`; stop it on exit.

    ``api_key`` defaults to a random, distinctive key. ``seed`` (dict or file) becomes the start-up
    seed that ``reset()`` returns to. The subprocess's stderr goes to a temporary file, shown if
    start-up fails.
    """
    api_key = api_key or f"test-retell-key-{secrets.token_hex(12)}"
    cleanup: list[str] = []
    command = [sys.executable, "-m", "airflow_provider_retell.emulator", "--host", host, "--port", str(port)]
    command += ["--api-key", api_key, "--time-scale", repr(float(time_scale)), "--log-level", log_level]
    if isinstance(seed, dict):
        handle, seed_path = tempfile.mkstemp(prefix="retell-emulator-seed-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(seed, f)
        cleanup.append(seed_path)
        command += ["--seed", seed_path]
    elif seed is not None:
        command += ["--seed", str(seed)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.pop("RETELL_EMULATOR_API_KEY", None)
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
    emulator: RetellEmulator | None = None
    try:
        assert process.stdout is not None
        url = _read_first_line(process.stdout, STARTUP_TIMEOUT)
        if not url or not url.startswith("http"):
            _stop(process)
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace")[-4000:]
            raise RetellEmulatorError(f"the emulator did not start (first line {url!r}):\n{detail}")
        emulator = RetellEmulator(url, api_key, float(time_scale), process)
        yield emulator
    finally:
        if emulator is not None:
            emulator.close()
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()
        stderr.close()
        for path in cleanup:
            with contextlib.suppress(OSError):
                os.unlink(path)


@pytest.fixture(scope="session")
def retell_emulator_server() -> Iterator[RetellEmulator]:
    """One emulator subprocess for the whole session (time scale 0.01, default seed)."""
    with start_emulator(time_scale=DEFAULT_TEST_TIME_SCALE) as emulator:
        yield emulator


@pytest.fixture
def retell_emulator(retell_emulator_server: RetellEmulator) -> RetellEmulator:
    """The session emulator, reset: default seed, time scale 0.01, no faults, empty request log."""
    retell_emulator_server.reset(time_scale=DEFAULT_TEST_TIME_SCALE)
    return retell_emulator_server


__all__ = [
    "RetellEmulator",
    "RetellEmulatorError",
    "retell_emulator",
    "retell_emulator_server",
    "start_emulator",
]
