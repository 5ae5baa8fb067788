"""Handler processes for the tests: each on a free loopback port, spoken to over real HTTP."""

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
from pathlib import Path
from typing import Any

APPS = Path(__file__).parent / "apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Handler:
    """A handler process under test."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        full_env = {**os.environ, "SPO_HANDLER_PORT": str(self.port), **(env or {})}
        # stderr to a file, not a pipe: a pipe nobody drains blocks a chatty process.
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, env=full_env, stderr=self.log, text=True)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body, {"content-type": "application/json", **(headers or {})})
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def invoke(self, handler: str, args: Any = None, data: dict[str, Any] | None = None, **session: Any) -> tuple[int, Any]:
        envelope = {
            "contract": 1,
            "requestId": "r-1",
            "handler": handler,
            "args": args,
            "session": {"id": "s-1", "version": 3, "anonymous": False, "data": data if data is not None else {}, **session},
            "deadlineMs": 30000,
        }
        return self.request("POST", "/contract/v1/invoke", json.dumps(envelope).encode())

    def ready_status(self) -> int | None:
        try:
            return self.request("GET", "/contract/v1/ready")[0]
        except OSError:
            return None

    def wait_listening(self, timeout: float = 30) -> int:
        """Polls until the port answers at all; returns the readiness status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.ready_status()
            if status is not None:
                return status
            if self.process.poll() is not None:
                raise RuntimeError(f"handler exited with {self.process.returncode}: {self.stderr()}")
            time.sleep(0.05)
        raise TimeoutError("handler did not listen")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_status() == 200:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"handler exited with {self.process.returncode}")
            time.sleep(0.05)
        raise TimeoutError("handler did not become ready")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            self.log.close()


def start(app: str, env: dict[str, str] | None = None, wait: bool = True) -> Handler:
    handler = Handler([sys.executable, str(APPS / app)], env)
    if wait:
        handler.wait_ready()
    return handler


