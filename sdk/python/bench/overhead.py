"""Request overhead of the contract's HTTP layer: the SDK (httptools + asyncio) against aiohttp and the standard library.

    python sdk/python/bench/overhead.py [--requests 1000] [--rounds 5]

Each server runs as its own process on 127.0.0.1 and serves the same trivial handler (echo:
result = args, data unchanged) for the same envelope. One keep-alive client sends requests one
after another; rounds are interleaved across servers, and the figures are the median over rounds
of each round's p50 and p99 (milliseconds, round trip as the runtime sees it). uvicorn+starlette
is measured too when it is installed (it is not a dependency).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

ENVELOPE = json.dumps(
    {
        "contract": 1,
        "requestId": "bench",
        "handler": "echo",
        "args": {"question": "Capital of France?"},
        "session": {"id": "s-bench", "version": 7, "anonymous": False, "data": {"history": [{"q": "x" * 64}] * 3}},
        "deadlineMs": 60000,
    }
).encode()


def serve_sdk(port: int) -> None:
    """The SDK with a sync handler: it runs in the thread pool, as a blocking LM call would."""
    from spo_handler import UNCHANGED, Data, HandlerApp, Outcome

    app = HandlerApp()

    @app.handler("echo")
    def echo(data: Data, args: Any) -> Outcome:
        return UNCHANGED, args

    app.run(port=port)


def serve_sdk_async(port: int) -> None:
    """The SDK with an async handler: no thread hop."""
    from spo_handler import UNCHANGED, Data, HandlerApp, Outcome

    app = HandlerApp()

    @app.handler("echo")
    async def echo(data: Data, args: Any) -> Outcome:
        return UNCHANGED, args

    app.run(port=port)


def serve_aiohttp_bare(port: int) -> None:
    """aiohttp's low-level server with the stdlib variant's minimal handler: the library's own cost."""
    import asyncio

    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        envelope = json.loads(await request.read())
        return web.Response(body=json.dumps({"result": envelope["args"]}).encode(), content_type="application/json")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_uvicorn_raw(port: int) -> None:
    """uvicorn (httptools parser) with a bare ASGI app, no framework."""
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = json.dumps({"result": json.loads(body)["args"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def serve_stdlib(port: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the runtime uses
        # Without it headers and body leave in two writes and Nagle plus delayed ACK add ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            envelope = json.loads(self.rfile.read(length))
            body = json.dumps({"result": envelope["args"]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def serve_starlette(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def invoke(request: Request) -> Response:
        envelope = json.loads(await request.body())
        return Response(json.dumps({"result": envelope["args"]}), media_type="application/json")

    app = Starlette(routes=[Route("/contract/v1/invoke", invoke, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


SERVERS = {"sdk": serve_sdk, "sdk-async": serve_sdk_async, "aiohttp-bare": serve_aiohttp_bare, "stdlib-threading": serve_stdlib, "uvicorn-starlette": serve_starlette, "uvicorn-raw-asgi": serve_uvicorn_raw}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/contract/v1/invoke", ENVELOPE, {"content-type": "application/json"})
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not answer")


def one_round(port: int, requests: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    timings = []
    for _ in range(requests):
        start = time.perf_counter()
        conn.request("POST", "/contract/v1/invoke", ENVELOPE, headers)
        response = conn.getresponse()
        response.read()
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status == 200
    conn.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", choices=SERVERS)
    parser.add_argument("--port", type=int)
    options = parser.parse_args()
    if options.serve:
        SERVERS[options.serve](options.port)
        return

    names = ["sdk", "sdk-async", "aiohttp-bare", "stdlib-threading"]
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        names += ["uvicorn-starlette", "uvicorn-raw-asgi"]
    except ImportError:
        pass
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        for name in names:
            ports[name] = free_port()
            command = [sys.executable, __file__, "--serve", name, "--port", str(ports[name])]
            processes[name] = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=os.environ.copy())
        for name in names:
            wait_until_up(ports[name])
            one_round(ports[name], 200)  # warm-up
        p50s: dict[str, list[float]] = {n: [] for n in names}
        p99s: dict[str, list[float]] = {n: [] for n in names}
        rates: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(options.rounds):
            for name in names:
                timings = one_round(ports[name], options.requests)
                ordered = sorted(timings)
                p50s[name].append(ordered[len(ordered) // 2])
                p99s[name].append(ordered[int(len(ordered) * 0.99)])
                rates[name].append(1000 * len(timings) / sum(timings))
        baseline = statistics.median(p50s["stdlib-threading"])
        print(f"{options.rounds} rounds x {options.requests} sequential keep-alive requests, median over rounds")
        print(f"{'server':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs stdlib':>14}")
        for name in names:
            p50 = statistics.median(p50s[name])
            print(
                f"{name:<20} {statistics.median(rates[name]):>8.0f} {p50:>8.3f} "
                f"{statistics.median(p99s[name]):>8.3f} {p50 / baseline:>13.2f}x"
            )
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
