"""Body limits, readiness, startup failure, crash, and a graceful SIGTERM, each on its own process."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from handler_process import start

SESSION = {"id": "s", "version": 1, "data": {}}


def test_a_body_over_the_limit_is_413_and_the_server_stays_up() -> None:
    handler = start("sample_app.py", {"SPO_HANDLER_MAX_BODY_BYTES": "2048"})
    try:
        big = json.dumps({"handler": "echo", "args": "x" * 4096, "session": SESSION}).encode()
        status, body = handler.request("POST", "/contract/v1/invoke", big)
        assert status == 413 and body["error"]["code"] == "BODY_TOO_LARGE"
        small = json.dumps({"handler": "echo", "args": "x" * 1000, "session": SESSION}).encode()
        assert handler.request("POST", "/contract/v1/invoke", small) == (200, {"result": "x" * 1000})
    finally:
        assert handler.stop() == 0


def test_the_limit_follows_the_pools_max_session_bytes() -> None:
    handler = start("sample_app.py", {"SPO_MAX_SESSION_BYTES": "1024"})
    try:
        # 1 KiB of session plus the contract's 64 KiB of envelope are accepted, more is not.
        fits = json.dumps({"handler": "echo", "args": "x" * 60_000, "session": SESSION}).encode()
        assert handler.request("POST", "/contract/v1/invoke", fits)[0] == 200
        over = json.dumps({"handler": "echo", "args": "x" * 70_000, "session": SESSION}).encode()
        assert handler.request("POST", "/contract/v1/invoke", over)[0] == 413
    finally:
        handler.stop()


def test_not_ready_until_the_startup_hook_ran(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    handler = start("sample_app.py", {"SAMPLE_STARTUP_GATE": str(gate)}, wait=False)
    try:
        assert handler.wait_listening() == 503
        status, body = handler.request("GET", "/contract/v1/ready")
        assert (status, body) == (503, {"ready": False, "reason": "starting"})
        status, body = handler.invoke("echo", 1)
        assert status == 503 and body["error"]["code"] == "NOT_READY"
        gate.write_text("open")
        handler.wait_ready()
        assert handler.invoke("echo", 1) == (200, {"result": 1})
    finally:
        handler.stop()


def test_a_failing_startup_hook_exits_with_status_1() -> None:
    handler = start("sample_app.py", {"SAMPLE_STARTUP_FAILS": "1"}, wait=False)
    assert handler.process.wait(30) == 1
    assert "cannot load the model" in handler.stderr()
    handler.stop()


def test_crash_ends_the_process_with_status_1_and_no_answer() -> None:
    handler = start("sample_app.py")
    try:
        handler.invoke("crash")
        raise AssertionError("crash answered")
    except (ConnectionError, OSError):
        pass
    assert handler.process.wait(30) == 1
    handler.stop()


def test_sigterm_finishes_requests_in_flight_then_exits_0(tmp_path: Path) -> None:
    handler = start("sample_app.py")
    marker = tmp_path / "started"
    answers: list[Any] = []
    request = threading.Thread(target=lambda: answers.append(handler.invoke("slow_marked", {"marker": str(marker), "seconds": 1.0})))
    request.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()
    handler.process.send_signal(signal.SIGTERM)
    request.join(30)
    assert answers == [(200, {"result": {"finished": True}})]
    assert handler.process.wait(30) == 0
    # It stopped listening: a new connection is refused.
    assert handler.ready_status() is None
    handler.stop()


def test_chunked_bodies_are_read_and_held_to_the_limit() -> None:
    import http.client

    handler = start("sample_app.py", {"SPO_HANDLER_MAX_BODY_BYTES": "4096"})
    try:
        for size, expected in [(1000, 200), (8000, 413)]:
            body = json.dumps({"handler": "echo", "args": "y" * size, "session": SESSION}).encode()
            conn = http.client.HTTPConnection("127.0.0.1", handler.port, timeout=30)
            # No content-length: the body goes as chunks, as Node's http.request sends it by default.
            conn.request("POST", "/contract/v1/invoke", iter([body[:500], body[500:]]), {"content-type": "application/json"}, encode_chunked=True)
            response = conn.getresponse()
            answer = json.loads(response.read())
            conn.close()
            assert response.status == expected, answer
        assert handler.invoke("echo", "up") == (200, {"result": "up"})
    finally:
        handler.stop()
