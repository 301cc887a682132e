"""The chaos server (tests/chaos.py) over real HTTP with httpx: each misbehaviour really happens."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_retell.emulator.pytest_plugin import RetellEmulator
from tests.chaos import (
    ChaosServer,
    Reply,
    Request,
    Trickle,
    chaos_server,
    drop,
    echo,
    endless_page,
    forward,
    huge_json_string,
    nested_json,
    retell_error,
    start_chaos_server,
)

__all__ = ["chaos_server"]  # the fixture, imported so pytest finds it

BOOKING = {"type": "retell-llm", "llm_id": "llm_booking"}
CREATE_BODY = {"response_engine": BOOKING, "test_case_definition_ids": ["tcd_booking_01", "tcd_booking_02"]}
TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture
def http(chaos_server: ChaosServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chaos_server.url, timeout=10.0, trust_env=False) as client:
        yield client


def test_rules_replies_and_the_request_record(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("GET", "/get-batch-test/*", Reply(201, json={"ok": 1}, headers={"X-Chaos": "yes"}))
    chaos_server.route("POST", "/raw", Reply(202, body=b"not json"), times=1)
    started = time.monotonic()
    got = http.get("/get-batch-test/tcbj_1", params={"a": "1", "b": ""}, headers={"X-Trace": "t"})
    assert (got.status_code, got.json(), got.headers["x-chaos"]) == (201, {"ok": 1}, "yes")
    assert got.headers["content-type"] == "application/json"
    raw = http.post("/raw", json={"k": "v"})
    assert (raw.status_code, raw.content) == (202, b"not json")
    again = http.post("/raw", json={"k": "v"})  # the rule was used up: the default 404
    assert again.status_code == 404
    assert again.json()["status"] == "error"
    assert http.get("/elsewhere").status_code == 404
    first, second = chaos_server.requests[:2]
    assert (first.method, first.path, first.query) == ("GET", "/get-batch-test/tcbj_1", {"a": "1", "b": ""})
    assert first.headers["x-trace"] == "t"
    assert first.body == b""
    assert started <= first.arrived <= second.arrived <= time.monotonic()
    assert (second.method, second.json()) == ("POST", {"k": "v"})
    assert len(chaos_server.requests) == 4


def test_handlers_sync_async_catch_all_and_errors(chaos_server: ChaosServer, http: httpx.Client) -> None:
    async def slow_ok(req: Request) -> Reply:
        return Reply(json={"path": req.path, "n": len(chaos_server.requests)})

    def boom(req: Request) -> Reply:
        raise ValueError("scripted failure")

    chaos_server.route("*", "/async", slow_ok)
    chaos_server.route("GET", "/boom", boom)
    chaos_server.handler = lambda req: retell_error(429, "slow down", **{"Retry-After": "2"})
    assert http.post("/async").json() == {"path": "/async", "n": 1}
    limited = http.get("/anything")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert limited.json() == {"status": "error", "message": "slow down"}
    failed = http.get("/boom")
    assert failed.status_code == 500
    assert "scripted failure" in failed.json()["message"]
    assert [type(e) for e in chaos_server.errors] == [ValueError]


def _timed_chunks(response: httpx.Response) -> list[tuple[float, bytes]]:
    return [(time.monotonic(), chunk) for chunk in response.iter_raw()]


def test_trickled_body_is_paced(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("GET", "/slow", Reply(body=b"abcde", trickle=Trickle(1, 0.1, "body")))
    started = time.monotonic()
    with http.stream("GET", "/slow") as response:
        headers_at = time.monotonic()
        chunks = _timed_chunks(response)
    assert headers_at - started < 1.0  # headers were not trickled (1 byte / 0.1 s: several seconds)
    assert b"".join(c for _, c in chunks) == b"abcde"
    assert [c for _, c in chunks] == [b"a", b"b", b"c", b"d", b"e"]  # one byte at a time
    assert chunks[-1][0] - started >= 0.4
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(chunks)]
    assert min(gaps) >= 0.08


def test_trickled_headers_are_paced(chaos_server: ChaosServer, http: httpx.Client) -> None:
    reply = Reply(body=b"x" * 1000, trickle=Trickle(16, 0.02, "headers"))
    head = reply.payload()[0]
    chaos_server.route("GET", "/slow-head", reply)
    started = time.monotonic()
    with http.stream("GET", "/slow-head") as response:
        headers_at = time.monotonic()
        body = response.read()
        done = time.monotonic()
    pieces = -(-len(head) // 16)
    assert headers_at - started >= (pieces - 1) * 0.02 * 0.9
    assert body == b"x" * 1000
    assert done - headers_at < 0.6  # the body was not trickled (16 bytes / 0.02 s: 1.2 s)


def test_trickle_both_paces_headers_and_body(chaos_server: ChaosServer, http: httpx.Client) -> None:
    reply = Reply(json={"k": "v" * 40}, trickle=Trickle(32, 0.02))
    head = reply.payload()[0]
    chaos_server.route("GET", "/both", reply)
    started = time.monotonic()
    assert http.get("/both").json() == {"k": "v" * 40}
    pieces = -(-len(head) // 32) + -(-len(json.dumps({"k": "v" * 40})) // 32)
    assert time.monotonic() - started >= (pieces - 1) * 0.02 * 0.9


def test_drop_before_any_reply(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("POST", "/create-batch-test", drop(), times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/create-batch-test", json=CREATE_BODY)
    assert chaos_server.requests[0].json() == CREATE_BODY  # the request was read in full
    assert http.post("/create-batch-test", json=CREATE_BODY).status_code == 404  # rule used up
    assert chaos_server.connections == 2  # the dropped connection was not reused


def collect(response: httpx.Response, into: bytearray) -> None:
    for chunk in response.iter_raw():
        into.extend(chunk)


def test_drop_in_the_middle_of_the_headers_or_the_body(chaos_server: ChaosServer, http: httpx.Client) -> None:
    reply = Reply(body=b"0123456789" * 100)
    head = reply.payload()[0]
    chaos_server.route("GET", "/half-head", Reply(body=b"0123456789" * 100, drop_after=len(head) // 2))
    chaos_server.route("GET", "/half-body", Reply(body=b"0123456789" * 100, drop_after=len(head) + 250))
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/half-head")
    received = bytearray()
    with http.stream("GET", "/half-body") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "1000"
        with pytest.raises(httpx.RemoteProtocolError):
            received.extend(b"".join(response.iter_raw(16)))
    assert received == b""  # nothing was handed out from an incomplete body read in one go
    with http.stream("GET", "/half-body") as response, pytest.raises(httpx.RemoteProtocolError):
        collect(response, received)
    assert bytes(received) == b"0123456789" * 25


def test_huge_body_is_streamed_lazily_with_content_length(
    chaos_server: ChaosServer, http: httpx.Client
) -> None:
    size = 100 * 2**20
    reply = huge_json_string(size)
    produced = [0]

    def counting(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            produced[0] += len(chunk)
            yield chunk

    reply.body = counting(reply.body)  # type: ignore[arg-type]
    chaos_server.route("GET", "/v2/list-batch-tests", reply)
    with http.stream("GET", "/v2/list-batch-tests") as response:
        assert response.headers["content-length"] == str(size)
        stream = response.iter_raw()
        first = next(stream)
        while len(first) < 2**20:
            first += next(stream)
        time.sleep(0.2)  # give the server time to run ahead if it would
        assert produced[0] < 16 * 2**20  # back-pressure: nowhere near the 100 MiB produced
        total = len(first) + sum(len(chunk) for chunk in stream)
    assert first.startswith(b'"aaaa')
    assert total == size == produced[0]


def test_huge_body_without_content_length_ends_with_the_connection(
    chaos_server: ChaosServer, http: httpx.Client
) -> None:
    chaos_server.route("GET", "/big", huge_json_string(3 * 2**20 + 7, content_length=False))
    for _ in range(2):  # the same rule serves the whole body again: it is generated afresh
        response = http.get("/big")
        assert "content-length" not in response.headers
        assert response.headers["connection"] == "close"
        assert len(response.content) == 3 * 2**20 + 7
        assert response.content.endswith(b'aaa"')
        assert len(json.loads(response.content)) == 3 * 2**20 + 5
    assert chaos_server.connections == 2  # a close-delimited reply ends its connection


def test_deeply_nested_json(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("GET", "/arrays", nested_json())
    chaos_server.route("GET", "/objects", nested_json(2000, objects=True))
    arrays = http.get("/arrays")
    assert arrays.content == b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RecursionError):
        arrays.json()
    objects = http.get("/objects")
    assert objects.content.startswith(b'{"a":{"a":')
    with pytest.raises(RecursionError):
        objects.json()


SECRET = 'Bearer key_"quoted"/slash é%20'


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("json", json.dumps(f"rejected credentials {SECRET}")[1:-1].encode()),
        ("percent", quote(SECRET, safe="").encode()),
        ("raw", SECRET.encode("utf-8")),
    ],
)
def test_echo_puts_the_secret_into_the_body(
    chaos_server: ChaosServer, http: httpx.Client, encoding: str, expected: bytes
) -> None:
    chaos_server.route("*", "*", echo("header:authorization", encoding))
    response = http.get("/get-agent/agent_x", headers={"Authorization": SECRET.encode("utf-8")})
    assert response.status_code == 401
    assert expected in response.content
    if encoding == "raw":
        with pytest.raises(json.JSONDecodeError):
            response.json()  # the quotes in the secret break the JSON
    else:
        assert response.json()["status"] == "error"


def test_echo_of_query_path_and_body(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("GET", "/q", echo("query:token", "json", status=400))
    chaos_server.route("GET", "/p/*", echo("path", "json", status=404))
    chaos_server.route("POST", "/b", echo("body", "json", status=422))
    assert "s3cret" in http.get("/q", params={"token": "s3cret"}).json()["message"]
    assert http.get("/p/x").json()["message"].endswith("/p/x")
    assert http.post("/b", content=b"payload").json()["message"].endswith("payload")


def test_endless_pagination(chaos_server: ChaosServer, http: httpx.Client) -> None:
    chaos_server.route("GET", "/v2/list-batch-tests", endless_page([{"test_case_batch_job_id": "tcbj_1"}]))
    params: dict[str, Any] = {"type": "retell-llm", "llm_id": "llm_booking"}
    for _ in range(5):
        body = http.get("/v2/list-batch-tests", params=params).json()
        assert body == {
            "items": [{"test_case_batch_job_id": "tcbj_1"}],
            "has_more": True,
            "pagination_key": "page_again",
        }
        params["pagination_key"] = body["pagination_key"]
    assert [r.query.get("pagination_key") for r in chaos_server.requests] == [None] + ["page_again"] * 4


def test_forward_to_the_emulator(chaos_server: ChaosServer, retell_emulator: RetellEmulator) -> None:
    chaos_server.route(
        "GET", "/get-batch-test/*", forward(retell_emulator.url, lambda d: {**d, "status": "paused"}), times=1
    )
    chaos_server.route(
        "GET", "/v2/list-test-runs/*", forward(retell_emulator.url, trickle=Trickle(512, 0.02))
    )
    chaos_server.route("*", "*", forward(retell_emulator.url))
    with httpx.Client(base_url=chaos_server.url, headers=retell_emulator.headers, trust_env=False) as api:
        created = api.post("/create-batch-test", json=CREATE_BODY)
        assert created.status_code == 201
        batch_id = created.json()["test_case_batch_job_id"]
        transformed = api.get(f"/get-batch-test/{batch_id}").json()
        assert (transformed["status"], transformed["total_count"]) == ("paused", 2)
        assert api.get(f"/get-batch-test/{batch_id}").json()["status"] in ("in_progress", "complete")
        listed = api.get("/v2/list-batch-tests", params=BOOKING).json()
        assert [b["test_case_batch_job_id"] for b in listed["items"]] == [batch_id]
        started = time.monotonic()
        runs = api.get(f"/v2/list-test-runs/{batch_id}")
        assert len(runs.json()["items"]) == 2
        assert time.monotonic() - started >= (len(runs.content) // 512) * 0.02 * 0.9
        assert len(runs.content) > 1024  # so the trickle above paced at least two pieces
        missing = api.get("/get-batch-test/tcbj_missing")
        assert missing.status_code == 404
        assert missing.json()["status"] == "error"
    unauthorized = httpx.get(chaos_server.url + "/get-agent/agent_booking", trust_env=False)
    assert unauthorized.status_code == 401  # auth is the emulator's
    logged = retell_emulator.requests()
    assert [(e["method"], e["path"]) for e in logged][:3] == [
        ("POST", "/create-batch-test"),
        ("GET", f"/get-batch-test/{batch_id}"),
        ("GET", f"/get-batch-test/{batch_id}"),
    ]
    assert logged[3]["query"] == {"type": "retell-llm", "llm_id": "llm_booking"}


def test_connections_are_counted(chaos_server: ChaosServer) -> None:
    chaos_server.route("*", "*", Reply(json={}))
    with httpx.Client(base_url=chaos_server.url, trust_env=False) as client:
        for _ in range(5):
            client.get("/keep-alive")
    assert chaos_server.connections == 1
    for _ in range(3):
        with httpx.Client(base_url=chaos_server.url, trust_env=False) as client:
            client.get("/new")
    assert chaos_server.connections == 4
    assert [r.connection for r in chaos_server.requests] == [1] * 5 + [2, 3, 4]
    httpx.get(chaos_server.url + "/closing", headers={"Connection": "close"}, trust_env=False)
    assert chaos_server.connections == 5


def test_garbage_is_recorded_and_the_connection_closed(chaos_server: ChaosServer) -> None:
    with socket.create_connection(("127.0.0.1", int(chaos_server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(b"NOT-HTTP\r\n\r\n")
        assert sock.recv(100) == b""  # closed without a reply
    assert chaos_server.requests == []
    assert [type(e) for e in chaos_server.errors] == [ValueError]


def test_stop_is_prompt_while_trickling() -> None:
    errors: list[BaseException] = []
    received = threading.Event()

    def client(url: str) -> None:
        try:
            with httpx.stream("GET", url + "/slow", timeout=30.0, trust_env=False) as response:
                for _ in response.iter_raw():
                    received.set()
        except BaseException as exc:
            errors.append(exc)

    with start_chaos_server() as server:
        server.route("GET", "/slow", Reply(body=b"x" * 100, trickle=Trickle(1, 2.0, "body")))
        server.route("GET", "/stall", huge_json_string(50 * 2**20))  # a client that never reads
        stalled = httpx.Client(base_url=server.url, timeout=30.0, trust_env=False)
        stalled_response = stalled.send(stalled.build_request("GET", "/stall"), stream=True)
        reader = threading.Thread(target=client, args=(server.url,))
        reader.start()
        assert received.wait(5)
        started = time.monotonic()
    stopped = time.monotonic() - started
    reader.join(5)
    assert not reader.is_alive()
    assert stopped < 1.0  # while the next byte is due in 2 s
    assert server._thread is not None
    assert not server._thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], TRANSPORT_ERRORS)
    with pytest.raises(TRANSPORT_ERRORS):
        stalled_response.read()
    stalled.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, trust_env=False)
