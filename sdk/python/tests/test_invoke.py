"""POST /contract/v1/invoke over real HTTP: answers, typed errors, and bad input."""

from __future__ import annotations

import concurrent.futures
import json
import socket

from handler_process import Handler

INVOKE = "/contract/v1/invoke"


def test_ready_lists_the_handlers_with_descriptions(sample: Handler) -> None:
    status, body = sample.request("GET", "/contract/v1/ready")
    assert status == 200
    assert body["ready"] is True and body["contract"] == 1
    names = {h["name"]: h["description"] for h in body["handlers"]}
    assert {"echo", "put", "fail", "sleep", "crash", "grow", "whoami"} <= names.keys()
    assert names["whoami"] == "Answers with what the SDK knows of the call."


def test_new_data_is_returned_and_unchanged_data_is_omitted(sample: Handler) -> None:
    assert sample.invoke("put", {"key": "a", "value": [1, 2]}, {"a": "old", "b": 1}) == (
        200,
        {"result": {"previous": "old"}, "data": {"a": [1, 2], "b": 1}},
    )
    status, body = sample.invoke("echo", {"any": ["json", None]}, {"keep": True})
    assert (status, body) == (200, {"result": {"any": ["json", None]}})


def test_async_handlers_and_the_call_context(sample: Handler) -> None:
    assert sample.invoke("async_put", 5, {}) == (200, {"result": "ok", "data": {"async": 5}})
    status, body = sample.invoke("whoami", None, id="sess-9", version=12, anonymous=True)
    assert status == 200
    assert body["result"] == {
        "session": "sess-9",
        "version": 12,
        "anonymous": True,
        "request": "r-1",
        "handler": "whoami",
        "remaining_positive": True,
    }


def test_typed_errors(sample: Handler) -> None:
    assert sample.invoke("detailed_fail", "sku-1") == (
        422,
        {"error": {"code": "OUT_OF_STOCK", "message": "none left", "details": {"sku": "sku-1"}}},
    )
    assert sample.invoke("fail", {"code": "NOPE", "message": "said no"}) == (422, {"error": {"code": "NOPE", "message": "said no"}})
    status, body = sample.invoke("needs_int", "x")
    assert status == 400 and body["error"]["code"] == "INVALID_ARGS"
    assert body["error"]["details"] == {"got": "str"}
    assert sample.invoke("needs_int", 21) == (200, {"result": 42})


def test_unknown_handler_is_404(sample: Handler) -> None:
    status, body = sample.invoke("no_such_handler")
    assert status == 404 and body["error"]["code"] == "UNKNOWN_HANDLER"


def test_handler_bugs_are_500_without_their_message_and_the_process_stays_up(sample: Handler) -> None:
    for name, code in [("boom", "HANDLER_EXCEPTION"), ("bad_return", "HANDLER_BAD_RETURN"), ("bad_data", "HANDLER_BAD_RETURN"), ("nan_result", "HANDLER_BAD_RETURN")]:
        status, body = sample.invoke(name)
        assert status == 500, name
        assert body["error"]["code"] == code, name
        assert "secret" not in json.dumps(body)
    assert sample.invoke("echo", 1) == (200, {"result": 1})


def test_malformed_envelopes_are_400_and_change_nothing(sample: Handler) -> None:
    session = {"id": "s", "version": 1, "data": {}}
    cases: list[bytes] = [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"handler": "echo", "session": {"id": "s", "version": 1, "data": {}}, "args": NaN}',
        json.dumps({"handler": "echo"}).encode(),
        json.dumps({"handler": "echo", "session": {**session, "data": []}}).encode(),
        json.dumps({"handler": "echo", "session": {**session, "version": "1"}}).encode(),
        json.dumps({"handler": "echo", "session": {**session, "version": True}}).encode(),
        json.dumps({"handler": "echo", "session": {**session, "id": 5}}).encode(),
        json.dumps({"handler": "echo", "session": {**session, "anonymous": "no"}}).encode(),
        json.dumps({"handler": "bad name!", "session": session}).encode(),
        json.dumps({"handler": 7, "session": session}).encode(),
        json.dumps({"handler": "echo", "session": session, "deadlineMs": "soon"}).encode(),
        b'{"handler": "echo", "session": {"id": "s", "version": 1, "data": {}}, "deadlineMs": 1' + b"0" * 400 + b"}",
        b"",
    ]
    for body in cases:
        status, answer = sample.request("POST", INVOKE, body)
        assert status == 400, body
        assert answer["error"]["code"] == "BAD_REQUEST", body
    status, answer = sample.request("POST", INVOKE, json.dumps({"contract": 2, "handler": "echo", "session": session}).encode())
    assert status == 400 and answer["error"]["code"] == "UNSUPPORTED_CONTRACT"
    assert sample.invoke("echo", "still up") == (200, {"result": "still up"})


def test_routes_and_methods(sample: Handler) -> None:
    assert sample.request("GET", INVOKE)[0] == 405
    assert sample.request("POST", "/contract/v1/ready")[0] == 405
    status, body = sample.request("GET", "/elsewhere")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


def test_garbage_on_the_socket_does_not_hurt_the_server(sample: Handler) -> None:
    with socket.create_connection(("127.0.0.1", sample.port), timeout=10) as raw:
        raw.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")
        status_line = raw.recv(1024).split(b"\r\n")[0]
        assert status_line.split(b" ")[1] == b"400"
    with socket.create_connection(("127.0.0.1", sample.port), timeout=10) as raw:
        raw.sendall(b"POST /contract/v1/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        # the client goes away mid-body
    assert sample.invoke("echo", "after garbage") == (200, {"result": "after garbage"})


def test_sync_handlers_run_concurrently_in_the_thread_pool(sample: Handler) -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: sample.invoke("rendezvous"), range(2)))
    assert [status for status, _ in answers] == [200, 200]
    assert sorted(body["result"]["index"] for _, body in answers) == [0, 1]


def test_keep_alive_connection_serves_many_requests(sample: Handler) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", sample.port, timeout=10)
    try:
        for i in range(20):
            envelope = {"handler": "echo", "args": i, "session": {"id": "s", "version": 1, "data": {}}}
            conn.request("POST", INVOKE, json.dumps(envelope).encode(), {"content-type": "application/json"})
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (200, {"result": i})
    finally:
        conn.close()


def test_expect_100_continue_is_answered_before_the_body(sample: Handler) -> None:
    body = json.dumps({"handler": "echo", "args": "z" * 2000, "session": {"id": "s", "version": 1, "data": {}}}).encode()
    head = f"POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sample.port), timeout=10) as raw:
        raw.sendall(head.encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"result": "z" * 2000}
