"""RetellConnectionSettings.from_connection: base URL rules, the key, extras."""

from __future__ import annotations

import os
from typing import Any

import pytest
from _retell_helpers import API_KEY

from airflow_provider_retell.connection import RetellConnectionSettings
from airflow_provider_retell.exceptions import RetellInputError
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.transport import client_kwargs


def settings(set_conn, conn_id: str = "retell_cs", **fields: Any) -> RetellConnectionSettings:
    set_conn(conn_id, **fields)
    return RetellHook(conn_id).settings


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://retell.example.com", None, "https://retell.example.com"),
        ("https://retell.example.com/", None, "https://retell.example.com"),
        ("https://retell.example.com:8443/api/", None, "https://retell.example.com:8443/api"),
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080"),
        ("api.retellai.com", None, "https://api.retellai.com"),
        ("retell.internal", 8443, "https://retell.internal:8443"),
        ("", None, "https://api.retellai.com"),
        ("   ", None, "https://api.retellai.com"),
        (None, None, "https://api.retellai.com"),
    ],
)
def test_base_url(set_conn, host: str | None, port: int | None, expected: str) -> None:
    fields: dict[str, Any] = {"host": host}
    if port is not None:
        fields["port"] = port
    s = settings(set_conn, **fields)
    assert s.base_url == expected
    assert s.api_key == API_KEY
    assert client_kwargs(s)["base_url"] == expected


@pytest.mark.parametrize(
    "host",
    [
        "http://localhost:8080",
        "http://127.0.0.1",
        "http://127.5.6.7:9000",
        "http://[::1]:8080",
        "http://[::1]",
    ],
)
def test_http_to_loopback_is_allowed(set_conn, host: str) -> None:
    assert settings(set_conn, host=host).base_url == host


@pytest.mark.parametrize(
    "host",
    [
        "http://api.retellai.com",
        "http://10.0.0.5:8080",
        "http://localhost.example.com",
        "http://[2001:db8::1]",
    ],
)
def test_http_to_other_hosts_is_refused(set_conn, host: str) -> None:
    with pytest.raises(RetellInputError) as info:
        settings(set_conn, "retell_plain", host=host)
    text = str(info.value)
    assert "retell_plain" in text
    assert host in text
    assert "allow_insecure_http" in text
    assert API_KEY not in text


@pytest.mark.parametrize("flag", [True, "true", "True", "1", "yes"])
def test_allow_insecure_http_extra(set_conn, flag: Any) -> None:
    s = settings(set_conn, host="http://retell.internal:8080", extra={"allow_insecure_http": flag})
    assert s.base_url == "http://retell.internal:8080"


@pytest.mark.parametrize("flag", [False, "false", "no", "0", ""])
def test_allow_insecure_http_false_values(set_conn, flag: Any) -> None:
    with pytest.raises(RetellInputError, match="http://"):
        settings(set_conn, host="http://retell.internal:8080", extra={"allow_insecure_http": flag})


@pytest.mark.parametrize("host", ["ftp://retell.example.com", "https://"])
def test_non_http_base_url_is_refused(set_conn, host: str) -> None:
    with pytest.raises(RetellInputError, match="retell_cs"):
        settings(set_conn, host=host)


@pytest.mark.parametrize("host", ["https://user:secret@api.retellai.com", "https://token@api.retellai.com"])
def test_credentials_in_the_host_are_refused(set_conn, host: str) -> None:
    with pytest.raises(RetellInputError, match="must not carry credentials") as info:
        settings(set_conn, host=host)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("password", [None, "", "   "])
def test_missing_api_key(set_conn, password: str | None) -> None:
    with pytest.raises(RetellInputError) as info:
        settings(set_conn, "retell_nokey", password=password)
    assert "retell_nokey" in str(info.value)
    assert "API Key" in str(info.value)


def test_api_key_is_stripped_and_hidden(set_conn) -> None:
    s = settings(set_conn, password=f"  {API_KEY}\n")
    assert s.api_key == API_KEY
    assert API_KEY not in repr(s)
    assert client_kwargs(s)["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert client_kwargs(s)["follow_redirects"] is False


def test_extras_defaults(set_conn) -> None:
    s = settings(set_conn)
    assert (s.timeout, s.connect_timeout) == (60.0, 5.0)
    assert (s.retry.max_retries, s.retry.max_wait) == (3, 60.0)
    timeout = client_kwargs(s)["timeout"]
    assert (timeout.read, timeout.connect) == (60.0, 5.0)


def test_extras_are_read(set_conn) -> None:
    s = settings(
        set_conn, extra={"timeout": 12.5, "connect_timeout": "2", "max_retries": 5, "max_retry_wait": 0.5}
    )
    assert (s.timeout, s.connect_timeout) == (12.5, 2.0)
    assert (s.retry.max_retries, s.retry.max_wait) == (5, 0.5)
    assert isinstance(s.retry.max_retries, int)
    assert client_kwargs(s)["timeout"].read == 12.5


def test_empty_extras_use_defaults(set_conn) -> None:
    s = settings(set_conn, extra={"timeout": "", "max_retries": None})
    assert s.timeout == 60.0
    assert s.retry.max_retries == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout", -1),
        ("timeout", "soon"),
        ("timeout", [1]),
        ("timeout", True),
        ("timeout", "nan"),
        ("max_retry_wait", float("nan")),
        ("connect_timeout", -0.5),
        ("connect_timeout", {"s": 1}),
        ("max_retries", -1),
        ("max_retries", "three"),
        ("max_retries", False),
        ("max_retries", 1.5),
        ("max_retry_wait", -3),
        ("max_retry_wait", "x"),
        ("timeout", 0),
        ("timeout", "inf"),
        ("timeout", 1e14),
        ("connect_timeout", 0),
        ("connect_timeout", "-inf"),
        ("max_retries", 1e9),
        ("max_retry_wait", float("inf")),
        ("create_settle_seconds", -1),
        ("create_settle_seconds", "inf"),
        ("create_settle_seconds", 10**9),
    ],
)
def test_bad_extras_name_the_extra(set_conn, key: str, value: Any) -> None:
    with pytest.raises(RetellInputError) as info:
        settings(set_conn, "retell_extras", extra={key: value})
    assert key in str(info.value)
    assert "retell_extras" in str(info.value)


def test_sync_settings_register_the_key_with_the_secrets_masker(set_conn) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_provider_retell.hooks.retell import RetellHook

    key = "sk-sync-" + os.urandom(6).hex()
    assert key in str(redact(f"Bearer {key}"))  # not masked before the connection is read
    RetellHook(set_conn("retell_mask_sync", password=key)).settings  # noqa: B018
    assert key not in str(redact(f"Bearer {key}"))


async def test_async_settings_register_the_key_with_the_secrets_masker(set_conn) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_provider_retell.hooks.retell import RetellHook

    key = "sk-async-" + os.urandom(6).hex()
    assert key in str(redact(f"Bearer {key}"))
    await RetellHook(set_conn("retell_mask_async", password=key)).asettings()
    assert key not in str(redact(f"Bearer {key}"))


def test_create_settle_seconds_default_and_extra(set_conn) -> None:
    assert settings(set_conn).create_settle_seconds == 300.0
    assert (
        settings(set_conn, "retell_settle", extra={"create_settle_seconds": 0}).create_settle_seconds == 0.0
    )


@pytest.mark.parametrize(
    "password",
    [f"{API_KEY}\nX-Evil: 1", f"key\x00{API_KEY}", f"{API_KEY}é", f"key {API_KEY}", f"{API_KEY}\t1"],
)
def test_a_key_a_header_cannot_carry_is_refused_without_showing_it(set_conn, password: str) -> None:
    with pytest.raises(RetellInputError, match="paste the key again") as info:
        settings(set_conn, "retell_badkey", password=password)
    text = str(info.value) + repr(info.value)
    assert "retell_badkey" in text
    assert API_KEY not in text


# -- proxies ---------------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)

    def _set(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return _set


def test_environment_proxy_is_never_used_for_http(set_conn, proxy_env) -> None:
    proxy_env(
        HTTP_PROXY="http://proxy.example:3128", ALL_PROXY="http://proxy.example:3128", http_proxy="http://p:1"
    )
    assert settings(set_conn, host="http://127.0.0.1:8080").proxy is None
    kwargs = client_kwargs(settings(set_conn, "retell_http2", host="http://127.0.0.1:8080"))
    assert kwargs["trust_env"] is False


def test_insecure_http_never_takes_the_environment_proxy(set_conn, proxy_env) -> None:
    proxy_env(HTTP_PROXY="http://proxy.example:3128", ALL_PROXY="http://proxy.example:3128")
    s = settings(set_conn, host="http://retell.internal", extra={"allow_insecure_http": True})
    assert s.proxy is None


def test_https_honours_the_environment_proxy(set_conn, proxy_env) -> None:
    proxy_env(HTTPS_PROXY="http://user:pw-secret@proxy.example:3128")
    s = settings(set_conn, host=None)
    assert s.proxy == "http://user:pw-secret@proxy.example:3128"
    assert "pw-secret" not in repr(s)
    assert "pw-secret" in s.secrets
    assert s.scrub("proxy said pw-secret") == "proxy said ***"


@pytest.mark.parametrize(
    "no_proxy", ["*", "api.retellai.com", ".retellai.com", "retellai.com", "x.org, retellai.com:443"]
)
def test_no_proxy_is_honoured(set_conn, proxy_env, no_proxy: str) -> None:
    proxy_env(HTTPS_PROXY="http://proxy.example:3128", NO_PROXY=no_proxy)
    assert settings(set_conn, host=None).proxy is None


def test_no_proxy_for_another_domain_keeps_the_proxy(set_conn, proxy_env) -> None:
    proxy_env(HTTPS_PROXY="http://proxy.example:3128", NO_PROXY="example.org,notretellai.com")
    assert settings(set_conn, host=None).proxy == "http://proxy.example:3128"


def test_proxy_extra_wins_over_the_environment(set_conn, proxy_env) -> None:
    proxy_env(HTTPS_PROXY="http://env-proxy:3128")
    assert settings(set_conn, host=None, extra={"proxy": "https://mine:8443"}).proxy == "https://mine:8443"


def test_proxy_extra_with_an_http_base_url_is_refused(set_conn, proxy_env) -> None:
    with pytest.raises(RetellInputError, match="only applies to an https"):
        settings(set_conn, host="http://127.0.0.1:9", extra={"proxy": "http://proxy:3128"})


@pytest.mark.parametrize("proxy", ["socks5://proxy:1080", "proxy.example:3128", "ftp://u:pw-bad@x"])
def test_bad_proxy_is_refused_without_its_password(set_conn, proxy_env, proxy: str) -> None:
    with pytest.raises(RetellInputError, match="proxy") as info:
        settings(set_conn, host=None, extra={"proxy": proxy})
    assert "pw-bad" not in str(info.value)


def test_proxy_password_is_registered_with_the_masker(set_conn, proxy_env) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    secret = "pw-" + os.urandom(6).hex()
    conn_id = set_conn("retell_proxy_mask", host=None, extra={"proxy": f"http://u:{secret}@proxy:3128"})
    assert RetellHook(conn_id).settings.proxy
    assert secret not in str(redact(f"proxy error for {secret}"))
