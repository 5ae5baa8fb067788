"""The worker as a real process on a free loopback port, driven as the runtime drives it: the data
each answer returns is the session's data for the next request."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        # stderr to a file, not a pipe: a pipe nobody drains blocks a chatty process.
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spo_dspy_worker"],
            env={**os.environ, "SPO_HANDLER_PORT": str(self.port), **env},
            stderr=self.log,
            text=True,
        )

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, None if body is None else json.dumps(body).encode(), {"content-type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}")
            try:
                if self.request("GET", "/contract/v1/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("worker not ready")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.log.close()
        return code


class Session:
    """One session's data and version, advanced by every answer that carries new data."""

    def __init__(self, worker: Worker, session_id: str = "sess-1") -> None:
        self.worker, self.id, self.version, self.data = worker, session_id, 1, {}  # type: dict[str, Any]

    def call(self, handler: str, args: Any = None) -> tuple[int, Any]:
        envelope = {
            "contract": 1,
            "requestId": f"{self.id}-{self.version}",
            "handler": handler,
            "args": args,
            "session": {"id": self.id, "version": self.version, "anonymous": False, "data": self.data},
            "deadlineMs": 60000,
        }
        status, body = self.worker.request("POST", "/contract/v1/invoke", envelope)
        if status == 200 and "data" in body:
            self.data, self.version = body["data"], self.version + 1
        return status, body


