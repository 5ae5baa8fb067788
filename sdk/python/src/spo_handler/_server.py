"""The HTTP side: an asyncio protocol on 127.0.0.1 with httptools' parser, two routes, graceful SIGTERM.

httptools is llhttp (Node's own HTTP parser) for Python; asyncio gives the connections. Each
request costs one parse, one dispatch and one write of head and body together: no framework
objects per request. The body is counted as it arrives (plain or chunked), so a body over the
limit is refused without being held whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from http import HTTPStatus
from typing import Any

import httptools

from ._app import HandlerApp, error_body, log

READY_PATH = b"/contract/v1/ready"
INVOKE_PATH = b"/contract/v1/invoke"
DEFAULT_PORT = 8081
# Request line plus headers; the runtime sends a few hundred bytes.
MAX_HEAD_BYTES = 64 * 1024
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

Answer = tuple[int, bytes]


class _Refusal(Exception):
    """Raised in a parser callback: the request is answered with this and the connection closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.answer: Answer = (status, error_body(code, message))


class _Request:
    __slots__ = ("method", "path", "request_id", "deadline_ms", "body", "size", "keep_alive", "expects_continue")

    def __init__(self) -> None:
        self.method = b""
        self.path = b""
        self.request_id = ""
        self.deadline_ms = ""
        self.body: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.expects_continue = False


class _Connection(asyncio.Protocol):
    """One client connection: requests answered in order, one at a time (pipelined ones wait)."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.app = server.app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current = _Request()
        self.head_bytes = 0
        self.waiting: deque[_Request] = deque()
        self.busy = False
        self.closing = False
        self.refusal: Answer | None = None
        self.idle_since = server.loop.time()

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse((400, error_body("BAD_REQUEST", "protocol upgrades are not part of the contract")))
        except httptools.HttpParserError as error:
            # A callback's _Refusal arrives wrapped in HttpParserCallbackError.
            cause = error.__context__
            if isinstance(cause, _Refusal):
                self._refuse(cause.answer)
            else:
                self._refuse((400, error_body("BAD_REQUEST", f"malformed HTTP request: {error}")))

    # ---- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = _Request()
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self.current.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        lower = name.lower()
        if lower == b"x-spo-request-id":
            self.current.request_id = value.decode("latin-1")
        elif lower == b"x-spo-deadline-ms":
            self.current.deadline_ms = value.decode("latin-1")
        elif lower == b"content-length" and value.strip().isdigit() and int(value) > self.app.max_body_bytes:
            self._body_too_large()  # refused before a byte of the body is read
        elif lower == b"expect" and value.strip().lower() == b"100-continue":
            self.current.expects_continue = True  # curl asks so before a body over 1 KiB

    def on_headers_complete(self) -> None:
        request = self.current
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        if request.expects_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        request = self.current
        request.size += len(chunk)
        if request.size > self.app.max_body_bytes:
            self._body_too_large()
        request.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        request = self.current
        if self.busy:
            self.waiting.append(request)
        else:
            self._dispatch(request)

    # ---- answering ------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise _Refusal(431, "HEADERS_TOO_LARGE", f"request line and headers over {MAX_HEAD_BYTES} bytes")

    def _body_too_large(self) -> None:
        raise _Refusal(413, "BODY_TOO_LARGE", f"the body is over {self.app.max_body_bytes} bytes")

    def _refuse(self, answer: Answer) -> None:
        """Answers (after the answer in flight, if any) and closes: the connection cannot go on."""
        if self.closing:
            return
        self.closing = True  # the rest of what the client sends is ignored
        self.waiting.clear()
        if self.busy:
            self.refusal = answer
        else:
            self._write(answer, keep_alive=False, closing=True)

    def _dispatch(self, request: _Request) -> None:
        answer = self._route(request)
        if isinstance(answer, tuple):
            self._write(answer, request.keep_alive, head_only=request.method == b"HEAD")
            return
        self.busy = True
        self.server.start(self._answer_later(request, answer))

    async def _answer_later(self, request: _Request, answer: Awaitable[Answer]) -> None:
        # The task writes the answer itself: no done-callback, so no second round of the loop.
        self._finish(request, await answer)

    def _route(self, request: _Request) -> Answer | Awaitable[Answer]:
        path = request.path.split(b"?", 1)[0]
        if path == INVOKE_PATH:
            if request.method != b"POST":
                return 405, error_body("METHOD_NOT_ALLOWED", "use POST")
            headers = {"x-spo-request-id": request.request_id}
            if request.deadline_ms:
                headers["x-spo-deadline-ms"] = request.deadline_ms
            return self.app.invoke(b"".join(request.body), headers)
        if path == READY_PATH:
            if request.method not in (b"GET", b"HEAD"):
                return 405, error_body("METHOD_NOT_ALLOWED", "use GET")
            return self.app.readiness()
        return 404, error_body("NOT_FOUND", f"no route {path.decode('latin-1')}")

    def _finish(self, request: _Request, answer: Answer) -> None:
        self.busy = False
        if self.refusal is not None:
            self._write(answer, keep_alive=True, closing=True)
            self._write(self.refusal, keep_alive=False, closing=True)
            return
        self._write(answer, request.keep_alive)
        while self.waiting and not self.busy and not (self.transport is None or self.transport.is_closing()):
            self._dispatch(self.waiting.popleft())

    def _write(self, answer: Answer, keep_alive: bool, head_only: bool = False, closing: bool = False) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or (self.closing and not closing):
            return
        status, body = answer
        # Not ready (starting or shutting down): one request per connection, so none is kept idle.
        keep_alive = keep_alive and self.app.ready
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n" % (
            status,
            _REASONS.get(status, b"Unknown"),
            len(body),
            b"" if keep_alive else b"connection: close\r\n",
        )
        transport.write(head if head_only else head + body)
        self.idle_since = self.server.loop.time()
        if not keep_alive:
            self.closing = True
            transport.close()

    def close_if_idle(self, now: float, idle_seconds: float) -> None:
        if not self.busy and not self.waiting and now - self.idle_since > idle_seconds and self.transport is not None:
            self.closing = True
            self.transport.close()


class _Server:
    """The listening socket's state: the app, the open connections, the idle sweep."""

    def __init__(self, app: HandlerApp, loop: asyncio.AbstractEventLoop, keepalive_seconds: float) -> None:
        self.app = app
        self.loop = loop
        self.keepalive_seconds = keepalive_seconds
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # Python 3.12+: the handler's first step runs at once, in the dispatch (no loop round).
        self._task_factory: Callable[..., asyncio.Task[None]] | None = getattr(asyncio, "eager_task_factory", None)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs the answer's coroutine as a task (eagerly where Python has it: 3.12+)."""
        task = self._task_factory(self.loop, work) if self._task_factory else self.loop.create_task(work)
        self.tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self.tasks.discard)

    async def sweep_idle(self) -> None:
        """Closes connections idle longer than the keep-alive time (checked every few seconds)."""
        every = max(0.5, min(5.0, self.keepalive_seconds / 4))
        while True:
            await asyncio.sleep(every)
            now = self.loop.time()
            for connection in list(self.connections):
                connection.close_if_idle(now, self.keepalive_seconds)

    def close_idle_connections(self) -> None:
        for connection in list(self.connections):
            connection.close_if_idle(self.loop.time(), -1.0)


def port_from_env() -> int:
    raw = os.environ.get("SPO_HANDLER_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SystemExit(f"SPO_HANDLER_PORT must be a port number (1-65535), not {raw!r}")
    return int(raw)


async def serve_async(app: HandlerApp, port: int, stop: asyncio.Event, grace_seconds: float) -> int:
    """Listens, runs the startup hooks, serves until `stop` is set, then drains. Returns an exit code."""
    loop = asyncio.get_running_loop()
    # Idle keep-alive connections stay open this long; the runtime's client must drop its idle
    # connections sooner, or a request sent as the server closes one is lost.
    keepalive_seconds = float(os.environ.get("SPO_HANDLER_KEEPALIVE_SECONDS", "75"))
    state = _Server(app, loop, keepalive_seconds)
    listener = await loop.create_server(lambda: _Connection(state), "127.0.0.1", port)
    sweeper = asyncio.ensure_future(state.sweep_idle())
    log.info("listening on 127.0.0.1:%d", port)
    code = 0
    startup = asyncio.ensure_future(app.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({startup, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if startup.done() and startup.exception() is not None:
        log.error("startup failed: %r", startup.exception())
        code = 1
    elif startup.done():
        log.info("ready: handlers %s", ", ".join(app.handler_names))
        await stopping
    else:
        startup.cancel()
    # SIGTERM: report not ready, stop listening, let the requests in flight finish, then exit.
    app.begin_shutdown()
    listener.close()
    state.close_idle_connections()
    if not await app.wait_idle(grace_seconds):
        log.warning("requests still in flight after %.0f s; exiting", grace_seconds)
    sweeper.cancel()
    for connection in list(state.connections):
        if connection.transport is not None:
            connection.transport.close()
    await listener.wait_closed()
    app.close()
    log.info("stopped")
    return code


def serve(app: HandlerApp, *, port: int | None = None) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    chosen_port = port if port is not None else port_from_env()
    grace_seconds = float(os.environ.get("SPO_HANDLER_SHUTDOWN_SECONDS", "60"))

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await serve_async(app, chosen_port, stop, grace_seconds)

    code = asyncio.run(main())
    if code:
        raise SystemExit(code)
