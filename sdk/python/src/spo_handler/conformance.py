"""The conformance handlers of docs/handler-contract.md: echo, put, fail, sleep, crash, grow.

    SPO_HANDLER_PORT=8081 python -m spo_handler.conformance

`add_conformance_handlers(app)` adds them to an app of your own, so the suite can run against it.
They are async: none blocks, so none needs the thread pool's hop (the benchmarks time `echo`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ._app import UNCHANGED, Data, HandlerApp, Outcome
from ._errors import ERROR_CODE, HandlerError, InvalidArgs

MAX_SLEEP_MS = 600_000
MAX_GROW_BYTES = 128 * 1024 * 1024


def _int_arg(args: Any, key: str, maximum: int) -> int:
    value = args.get(key) if isinstance(args, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise InvalidArgs(f"args.{key} must be an integer from 0 to {maximum}")
    return value


def add_conformance_handlers(app: HandlerApp) -> HandlerApp:
    @app.handler("echo", description="result = args; data unchanged")
    async def echo(data: Data, args: Any) -> Outcome:
        return UNCHANGED, args

    @app.handler("put", description="data[key] = value; result = {previous}")
    async def put(data: Data, args: Any) -> Outcome:
        if not isinstance(args, dict) or not isinstance(args.get("key"), str) or "value" not in args:
            raise InvalidArgs('args must be {"key": string, "value": any}')
        key: str = args["key"]
        previous = data.get(key)
        data[key] = args["value"]
        return data, {"previous": previous}

    @app.handler("fail", description="422 with the code and message given")
    async def fail(data: Data, args: Any) -> Outcome:
        code = args.get("code") if isinstance(args, dict) else None
        message = args.get("message", "") if isinstance(args, dict) else None
        if not isinstance(code, str) or not ERROR_CODE.match(code) or not isinstance(message, str):
            raise InvalidArgs(f'args must be {{"code": string matching {ERROR_CODE.pattern}, "message": string}}')
        raise HandlerError(code, message)

    @app.handler("sleep", description="waits args.ms, then result = {slept}")
    async def sleep(data: Data, args: Any) -> Outcome:
        ms = _int_arg(args, "ms", MAX_SLEEP_MS)
        await asyncio.sleep(ms / 1000)
        return UNCHANGED, {"slept": ms}

    @app.handler("crash", description="the process exits at once with status 1")
    async def crash(data: Data, args: Any) -> Outcome:
        os._exit(1)

    @app.handler("grow", description="data.blob = args.bytes times 'x'")
    async def grow(data: Data, args: Any) -> Outcome:
        size = _int_arg(args, "bytes", MAX_GROW_BYTES)
        data["blob"] = "x" * size
        return data, {"bytes": size}

    return app


def main() -> None:
    add_conformance_handlers(HandlerApp()).run()


if __name__ == "__main__":
    main()
