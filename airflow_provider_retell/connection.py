"""What a Retell connection resolves to, and the HTTP clients built from it."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_retell import __version__
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_BASE_URL = "https://api.retellai.com"


@cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying context per process: building one costs ~0.2 s, and every client needs it."""
    return httpx.create_ssl_context()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _number(extra: dict[str, Any], key: str, default: float, *, conn_id: str, integer: bool = False) -> Any:
    value = extra.get(key, default)
    if value in (None, ""):
        return default
    try:
        number = float(value)
        if integer:  # 1.5 is not silently truncated to 1
            number = int(number) if number.is_integer() else -1
    except (TypeError, ValueError):
        number = -1
    if not number >= 0 or isinstance(value, bool):  # "not >=" also refuses NaN
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise RetellInputError(f"Connection {conn_id!r}: extra {key!r} must be {kind}, got {value!r}")
    return number


@dataclass(frozen=True)
class RetellConnectionSettings:
    """What a Retell connection resolves to; the key is kept out of ``repr``."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    connect_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_connection(cls, conn: Connection, extra: dict[str, Any]) -> RetellConnectionSettings:
        """Pure: reading ``extra`` and registering the key with the secrets masker is the caller's
        part, because the sync and the async (triggerer) paths must each use their own calls."""
        conn_id = conn.conn_id
        api_key = (conn.password or "").strip()
        if not api_key:
            raise RetellInputError(
                f"Connection {conn_id!r} has no API key: put the Retell API key in its password ('API Key')"
            )
        host = (conn.host or "").strip()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host.rstrip("/")
        else:
            base_url = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RetellInputError(f"Connection {conn_id!r}: host {host!r} is not an http(s) base URL")
        if parts.username or parts.password:
            raise RetellInputError(
                f"Connection {conn_id!r}: the host must not carry credentials (user:password@); "
                "put the API key in the password field"
            )
        insecure_ok = str(extra.get("allow_insecure_http", False)).lower() in ("true", "1", "yes")
        if parts.scheme == "http" and not (_is_loopback(parts.hostname) or insecure_ok):
            raise RetellInputError(
                f"Connection {conn_id!r}: host {base_url!r} uses http:// to a non-loopback host, which "
                "would send the API key in clear text; use https:// or set extra allow_insecure_http: true"
            )
        return cls(
            base_url=base_url,
            api_key=api_key,
            timeout=_number(extra, "timeout", 60.0, conn_id=conn_id),
            connect_timeout=_number(extra, "connect_timeout", 5.0, conn_id=conn_id),
            retry=RetryPolicy(
                max_retries=_number(extra, "max_retries", 3, conn_id=conn_id, integer=True),
                max_wait=_number(extra, "max_retry_wait", 60.0, conn_id=conn_id),
            ),
        )

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": {
                "Authorization": f"Bearer {self.api_key}",
                "User-Agent": f"airflow-provider-retell/{__version__}",
            },
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
            "verify": _ssl_context(),
            "follow_redirects": False,
        }


class SharedAsyncClients:
    """One ``AsyncClient`` per event loop and connection, shared by every trigger in a triggerer.

    A triggerer runs hundreds of triggers on one loop; sharing the pool keeps the number of sockets
    bounded by ``limits`` instead of growing with the number of waiting tasks.
    """

    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)

    def __init__(self) -> None:
        self._clients: dict[tuple[int, RetellConnectionSettings], tuple[httpx.AsyncClient, int]] = {}

    def acquire(self, settings: RetellConnectionSettings) -> httpx.AsyncClient:
        key = (id(asyncio.get_running_loop()), settings)
        client, users = self._clients.get(key) or (None, 0)
        if client is None or client.is_closed:
            client, users = httpx.AsyncClient(limits=self.limits, **settings.client_kwargs()), 0
        self._clients[key] = (client, users + 1)
        return client

    async def release(self, settings: RetellConnectionSettings) -> None:
        key = (id(asyncio.get_running_loop()), settings)
        client, users = self._clients.get(key) or (None, 0)
        if client is None:
            return
        if users > 1:
            self._clients[key] = (client, users - 1)
            return
        del self._clients[key]
        await client.aclose()


ASYNC_CLIENTS = SharedAsyncClients()


async def warm_ssl_context() -> None:
    """Build the SSL context off the event loop: it takes ~0.2 s, which would stall every trigger."""
    await asyncio.to_thread(_ssl_context)
