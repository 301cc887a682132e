"""What a Retell connection resolves to: base URL, key, proxy, timeouts and retry settings."""

from __future__ import annotations

import base64
import ipaddress
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.redact import scrub
from airflow_provider_retell.retry import RetryPolicy

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_BASE_URL = "https://api.retellai.com"
#: What an HTTP header can carry: printable ASCII, no whitespace. Anything else would be rejected by
#: httpx with the key in its exception text, or would smuggle a second header in.
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")
_TRUE = ("true", "1", "yes", "on")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Extra:
    """One numeric extra: its default and documented range."""

    default: float
    minimum: float
    maximum: float
    integer: bool = False
    open_min: bool = False  # True: the minimum itself is refused (timeouts must be > 0)

    def read(self, extra: Mapping[str, Any], key: str, conn_id: str) -> Any:
        value = extra.get(key)
        if value is None or value == "":
            return int(self.default) if self.integer else self.default
        try:
            number = float(value)
            ok = not isinstance(value, bool) and self.minimum <= number <= self.maximum
            ok = ok and not (self.open_min and number == self.minimum)
            ok = ok and (not self.integer or number.is_integer())  # 1.5 is not silently truncated
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:  # NaN fails every comparison, so it lands here too
            kind = "an integer" if self.integer else "a number"
            low = f"more than {self.minimum:g}" if self.open_min else f"at least {self.minimum:g}"
            raise RetellInputError(
                f"Connection {conn_id!r}: extra {key!r} must be {kind}, {low} and at most "
                f"{self.maximum:g}, got {value!r:.40}"
            )
        return int(number) if self.integer else number


#: The numeric connection extras, with the defaults and ranges the docs and the form show.
EXTRAS: dict[str, _Extra] = {
    "timeout": _Extra(60.0, 0.0, 3600.0, open_min=True),
    "connect_timeout": _Extra(5.0, 0.0, 600.0, open_min=True),
    "max_retries": _Extra(3, 0, 100, integer=True),
    "max_retry_wait": _Extra(60.0, 0.0, 3600.0),
    "create_settle_seconds": _Extra(300.0, 0.0, 86_400.0),
}
#: The other connection extras, with their defaults. Together with ``EXTRAS`` these are every extra
#: the connection reads; the form (``get_provider_info``'s conn-fields) declares exactly these.
OTHER_EXTRAS: dict[str, Any] = {"proxy": None, "allow_insecure_http": False}


def _environment_proxy(host: str) -> str | None:
    """The proxy the usual ``HTTPS_PROXY`` / ``ALL_PROXY`` variables name, unless ``NO_PROXY`` covers
    ``host`` (``*``, the host itself, or a domain it is in, with or without a leading dot)."""
    proxies = urllib.request.getproxies_environment()
    for entry in proxies.get("no", "").replace(" ", "").split(","):
        domain = entry.split(":")[0].lstrip(".").lower()
        if entry == "*" or (domain and (host == domain or host.endswith("." + domain))):
            return None
    return proxies.get("https") or proxies.get("all") or None


def _check_proxy(proxy: str, conn_id: str) -> str:
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RetellInputError(
            f"Connection {conn_id!r}: the proxy must be an http:// or https:// URL, got "
            f"{scrub(proxy, [parts.password or ''], limit=80)!r}"
        )
    return proxy


@dataclass(frozen=True)
class RetellConnectionSettings:
    """What a Retell connection resolves to; the key and the proxy are kept out of ``repr``."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    connect_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    create_settle_seconds: float = 300.0
    proxy: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, conn: Connection, extra: Mapping[str, Any]) -> RetellConnectionSettings:
        """Pure: reading ``extra`` and registering secrets with the masker is the caller's part,
        because the sync and the async (triggerer) paths must each use their own calls."""
        conn_id = conn.conn_id
        api_key = (conn.password or "").strip()
        if not api_key:
            raise RetellInputError(
                f"Connection {conn_id!r} has no API key: put the Retell API key in its password ('API Key')"
            )
        if not _KEY_CHARS.fullmatch(api_key):
            raise RetellInputError(
                f"Connection {conn_id!r}: the API key holds a character an HTTP header cannot carry "
                "(whitespace, a control or a non-ASCII character): paste the key again"
            )
        base_url = cls._base_url(conn, extra, conn_id)
        numbers = {key: spec.read(extra, key, conn_id) for key, spec in EXTRAS.items()}
        return cls(
            base_url=base_url,
            api_key=api_key,
            timeout=numbers["timeout"],
            connect_timeout=numbers["connect_timeout"],
            retry=RetryPolicy(max_retries=numbers["max_retries"], max_wait=numbers["max_retry_wait"]),
            create_settle_seconds=numbers["create_settle_seconds"],
            proxy=cls._proxy(base_url, extra, conn_id),
        )

    @staticmethod
    def _base_url(conn: Connection, extra: Mapping[str, Any], conn_id: str) -> str:
        host = (conn.host or "").strip()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            scheme, _, rest = host.partition("://")
            base_url = f"{scheme.lower()}://{rest}".rstrip("/")
        else:
            base_url = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RetellInputError(f"Connection {conn_id!r}: host {host!r:.80} is not an http(s) base URL")
        if parts.username or parts.password:
            raise RetellInputError(
                f"Connection {conn_id!r}: the host must not carry credentials (user:password@); "
                "put the API key in the password field"
            )
        if parts.query or parts.fragment:
            raise RetellInputError(f"Connection {conn_id!r}: the base URL must not have a query or fragment")
        insecure_ok = (
            str(extra.get("allow_insecure_http", OTHER_EXTRAS["allow_insecure_http"])).lower() in _TRUE
        )
        if parts.scheme == "http" and not (is_loopback(parts.hostname) or insecure_ok):
            raise RetellInputError(
                f"Connection {conn_id!r}: host {base_url!r} uses http:// to a non-loopback host, which "
                "would send the API key in clear text; use https:// or set extra allow_insecure_http: true"
            )
        return base_url

    @staticmethod
    def _proxy(base_url: str, extra: Mapping[str, Any], conn_id: str) -> str | None:
        """``https://``: the ``proxy`` extra, else the proxy environment. ``http://``: never a proxy, so
        a bearer key meant for loopback cannot travel in clear text to a proxy named in the environment."""
        explicit = str(extra.get("proxy", OTHER_EXTRAS["proxy"]) or "").strip()
        if urlsplit(base_url).scheme != "https":
            if explicit:
                raise RetellInputError(
                    f"Connection {conn_id!r}: extra 'proxy' only applies to an https:// base URL "
                    "(through a proxy, http:// would expose the API key)"
                )
            return None
        if explicit:
            return _check_proxy(explicit, conn_id)
        found = _environment_proxy(urlsplit(base_url).hostname or "")
        return _check_proxy(found, conn_id) if found else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a log, an error or an event: the key, and the proxy's password
        as written (percent-encoded), decoded, and as the Basic credentials a proxy may echo."""
        found = [self.api_key]
        parts = urlsplit(self.proxy) if self.proxy else None
        if parts is not None and parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password)
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            found += [parts.password, password, f"{user}:{password}", basic]
        return tuple(dict.fromkeys(s for s in found if s))

    def scrub(self, text: str, limit: int | None = 500) -> str:
        return scrub(text, self.secrets, limit)
