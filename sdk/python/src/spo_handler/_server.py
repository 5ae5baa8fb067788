"""The HTTP side: aiohttp's low-level server on 127.0.0.1, two routes, graceful SIGTERM.

The low-level `web.Server` (no router, no middleware) keeps the per-request cost small; the
body is read in chunks so a body over the limit is refused without being held whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from ._app import HandlerApp, error_body, log

READY_PATH = "/contract/v1/ready"
INVOKE_PATH = "/contract/v1/invoke"
DEFAULT_PORT = 8081


def _json_response(status: int, body: bytes, *, close: bool = False) -> web.Response:
    response = web.Response(status=status, body=body, content_type="application/json")
    if close:
        response.force_close()
    return response


async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def make_request_handler(app: HandlerApp) -> web.Server:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == INVOKE_PATH:
            if request.method != "POST":
                return _json_response(405, error_body("METHOD_NOT_ALLOWED", "use POST"))
            body = await _read_body(request, app.max_body_bytes)
            if body is None:
                message = f"the body is over {app.max_body_bytes} bytes"
                return _json_response(413, error_body("BODY_TOO_LARGE", message), close=True)
            headers = {
                "x-spo-request-id": request.headers.get("x-spo-request-id", ""),
                "x-spo-deadline-ms": request.headers.get("x-spo-deadline-ms", ""),
            }
            if not headers["x-spo-deadline-ms"]:
                del headers["x-spo-deadline-ms"]
            status, payload = await app.invoke(body, headers)
            return _json_response(status, payload)
        if request.path == READY_PATH:
            if request.method not in ("GET", "HEAD"):
                return _json_response(405, error_body("METHOD_NOT_ALLOWED", "use GET"))
            status, payload = app.readiness()
            return _json_response(status, payload)
        return _json_response(404, error_body("NOT_FOUND", f"no route {request.path}"))

    # Idle keep-alive connections stay open this long; the runtime's client must drop its idle
    # connections sooner, or a request sent as the server closes one is lost.
    keepalive_seconds = float(os.environ.get("SPO_HANDLER_KEEPALIVE_SECONDS", "75"))
    return web.Server(handle, access_log=None, keepalive_timeout=keepalive_seconds)


def port_from_env() -> int:
    raw = os.environ.get("SPO_HANDLER_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SystemExit(f"SPO_HANDLER_PORT must be a port number (1-65535), not {raw!r}")
    return int(raw)


async def serve_async(app: HandlerApp, port: int, stop: asyncio.Event, grace_seconds: float) -> int:
    """Listens, runs the startup hooks, serves until `stop` is set, then drains. Returns an exit code."""
    runner = web.ServerRunner(make_request_handler(app), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=grace_seconds)
    await site.start()
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
    await site.stop()
    if not await app.wait_idle(grace_seconds):
        log.warning("requests still in flight after %.0f s; exiting", grace_seconds)
    await runner.cleanup()
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
