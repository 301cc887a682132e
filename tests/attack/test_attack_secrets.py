"""Attacks on "no side doors for the key": no environment proxy for http://, and the key scrubbed in
every form from exceptions, logs, trigger events (and XCom).

Each test counts occurrences of the API key where it must never be. Each currently FAILS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_retell.exceptions import RetellError
from airflow_provider_retell.hooks.retell import RetellHook
from airflow_provider_retell.operators.batch_test import RetellBatchTestOperator
from airflow_provider_retell.triggers.batch_test import RetellBatchTestTrigger
from tests.attack.fake_retell import API_KEY, FakeRetell
from tests.chaos import ChaosServer, Reply, start_chaos_server
from tests.fakes import FakeTI, fake_context

ENGINE = {"type": "retell-llm", "llm_id": "llm_atk", "version": 2}
IDS = ["tcd_a", "tcd_b", "tcd_c"]


def _token(req: Any) -> str:
    """What a reflecting server echoes: the bearer token it received."""
    return req.headers.get("authorization", "").removeprefix("Bearer ")


def _reflect_into_engine_type(kind: str, payload: Any, req: Any) -> Any:
    """A 200 reply whose ``response_engine.type`` holds the request's bearer token (a debugging
    gateway, a Retell bug that serialises the wrong field): a reply of the wrong shape."""
    if kind == "get":
        payload["response_engine"] = {"type": _token(req)}
    return payload


def test_a_wrong_shaped_reply_puts_the_key_in_the_exception(retell: FakeRetell, attack_conn: Any) -> None:
    """Breaks "the key scrubbed from exceptions" (text that came from Retell).

    ``parse_response`` builds its message from pydantic's error ``msg``; for a discriminated union
    that message quotes the offending value ("Input tag '<value>' found using 'type' does not
    match..."), and the message is never passed through ``settings.scrub``. Error *statuses* are
    scrubbed; a 2xx of the wrong shape is not. Promised: 0 occurrences. Observed: the key, verbatim.
    """
    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.transform = _reflect_into_engine_type
    hook = RetellHook(retell_conn_id=conn)

    with pytest.raises(RetellError) as info:
        hook.get_batch_test(batch.id)
    hook.close()

    assert API_KEY not in str(info.value), f"the API key is in the exception: {info.value}"


async def test_a_wrong_shaped_reply_puts_the_key_in_the_trigger_event(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the key scrubbed from trigger events".

    Same reply as above, read by the trigger: it ends with an ``error`` event whose ``message`` is
    ``str(exc)``, stored by Airflow in the metadata database (``next_kwargs``) and shown in the task
    log of the resumed task. Promised: 0 occurrences. Observed: the key in the event payload.
    """
    import time

    conn = attack_conn()
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    retell.complete_after = 3600
    retell.transform = _reflect_into_engine_type
    trigger = RetellBatchTestTrigger(
        batch_test_ids=[batch.id], retell_conn_id=conn, poll_interval=0.1, end_time=time.time() + 10
    )

    payloads = [event.payload async for event in trigger.run()]

    dumped = json.dumps(payloads)
    assert API_KEY not in dumped, f"the API key is in the trigger event: {dumped[:400]}"


def test_run_text_reflecting_the_key_reaches_xcom_and_the_gate_error(
    retell: FakeRetell, attack_conn: Any
) -> None:
    """Breaks "the API key never appears in XCom or exception text" (DESIGN, Behaviour users rely on).

    A failed run's ``result_explanation`` / snapshot ``name`` that echo the bearer token (a test case
    whose prompt makes the agent read back request headers, a reflecting gateway) are copied into
    the result dict (XCom) and the ``RetellQualityGateError`` message without ``scrub``. Only error
    text is scrubbed. Promised: 0 occurrences. Observed: the key in both.
    """
    conn = attack_conn()
    retell.known_definitions = IDS
    retell.outcomes = {"tcd_c": "fail"}

    def reflect_into_runs(kind: str, payload: Any, req: Any) -> Any:
        if kind == "runs":
            for item in payload["items"]:
                item["result_explanation"] = f"agent said: Authorization: Bearer {_token(req)}"
        return payload

    retell.transform = reflect_into_runs
    ti = FakeTI()
    op = RetellBatchTestOperator(
        task_id="leak",
        response_engine=ENGINE,
        test_case_definition_ids=IDS,
        wait_for_completion=True,
        poll_interval=0.1,
        timeout=20,
        retell_conn_id=conn,
    )

    with pytest.raises(RetellError) as info:
        op.execute({"ti": ti, "task_state_store": fake_context()["task_state_store"]})

    assert API_KEY not in str(info.value), "the API key is in the gate error"
    assert API_KEY not in json.dumps(ti.pushed), "the API key is in XCom"


# -- the environment proxy for http:// ---------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[ChaosServer]:
    """A proxy named in the environment: it records what it is sent (and answers 502)."""
    with start_chaos_server() as server:
        server.handler = Reply(502, body=b"bad gateway")
        yield server


@pytest.mark.parametrize("scheme", ["HTTP", "Http"])
def test_an_upper_case_http_base_url_sends_the_key_through_the_environment_proxy(
    scheme: str, retell: FakeRetell, attack_conn: Any, proxy: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Breaks "no environment proxy for http://" (the key in clear text to a proxy).

    ``RetellConnectionSettings._proxy`` decides "http:// never gets a proxy" with the case-sensitive
    ``base_url.startswith("http://")``, while ``_base_url`` accepts the scheme case-insensitively
    (``urlsplit`` lowercases it). A host typed ``HTTP://127.0.0.1:8080`` (or ``Http://gw.internal``
    with ``allow_insecure_http``) is therefore treated as https: ``HTTPS_PROXY`` / ``ALL_PROXY``
    from the worker's environment is used, and the plain-HTTP request, ``Authorization: Bearer
    <key>`` included, is sent to that proxy. Promised: the proxy sees nothing. Observed: the key.
    """
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    conn = attack_conn(url=retell.server.url.replace("http://", f"{scheme}://"))
    batch = retell.apply_create({"response_engine": ENGINE, "test_case_definition_ids": IDS})
    hook = RetellHook(retell_conn_id=conn)

    try:
        hook.get_batch_test(batch.id)
    except RetellError:
        pass
    finally:
        hook.close()

    leaked = [r for r in proxy.requests if API_KEY in r.headers.get("authorization", "")]
    assert not proxy.requests, (
        f"the environment proxy received {len(proxy.requests)} plain-HTTP requests, {len(leaked)} "
        f"carrying the API key: {[r.raw_target for r in proxy.requests]}"
    )


# -- the proxy's password in its decoded forms ---------------------------------------------------------


class _RawHead(Reply):
    """A reply whose status line is written as given (a proxy's own reason phrase)."""

    def __init__(self, head: bytes) -> None:
        super().__init__(407)
        self._head = head

    def payload(self) -> tuple[bytes, list[bytes], bool]:
        return self._head, [b""], True


def test_a_proxy_echoing_its_credentials_puts_the_decoded_password_in_the_exception(
    retell: FakeRetell, attack_conn: Any, proxy: ChaosServer
) -> None:
    """Breaks "secrets scrubbed in every form" for the proxy's password (secrets in proxy URLs).

    ``RetellConnectionSettings.secrets`` holds ``urlsplit(proxy).password``, which is the password
    *as written in the URL*, percent-encoded (``p%40ss%2Fw0rd``). httpx decodes it and sends
    ``Proxy-Authorization: Basic base64(user:p@ss/w0rd)``. A proxy that answers the CONNECT with
    ``407`` and a reason phrase echoing what it received produces ``httpx.ProxyError("407 ...")``;
    ``scrub`` knows neither the decoded password nor the Basic token, and neither was given to
    Airflow's masker. Promised: no form of the secret. Observed: the decoded password verbatim.
    """
    import base64

    def echo_credentials(req: Any) -> Reply:
        token = req.headers.get("proxy-authorization", "").split()[-1]
        creds = base64.b64decode(token).decode()
        return _RawHead(f"HTTP/1.1 407 Denied {creds} ({token})\r\ncontent-length: 0\r\n\r\n".encode())

    proxy.handler = echo_credentials
    port = proxy.url.rsplit(":", 1)[1]
    password, encoded = "p@ss/w0rd", "p%40ss%2Fw0rd"
    conn = attack_conn(
        url="https://127.0.0.1:1", proxy=f"http://alice:{encoded}@127.0.0.1:{port}", max_retries=0
    )
    hook = RetellHook(retell_conn_id=conn)

    with pytest.raises(RetellError) as info:
        hook.get_batch_test("tcbj_1")
    hook.close()

    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    text = str(info.value)
    assert password not in text, f"the proxy password is in the exception: {text}"
    assert basic not in text, f"the proxy credentials (Basic) are in the exception: {text}"
