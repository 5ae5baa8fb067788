"""Handlers that exercise every path of the SDK (run as a script by the tests)."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from spo_handler import UNCHANGED, Call, Data, HandlerApp, HandlerError, InvalidArgs, Outcome
from spo_handler.conformance import add_conformance_handlers

app = add_conformance_handlers(HandlerApp())
barrier = threading.Barrier(2)


@app.handler("whoami")
def whoami(data: Data, args: Any, call: Call) -> Outcome:
    """Answers with what the SDK knows of the call."""
    return UNCHANGED, {
        "session": call.session_id,
        "version": call.version,
        "anonymous": call.anonymous,
        "request": call.request_id,
        "handler": call.handler,
        "remaining_positive": call.remaining() > 0,
    }


@app.handler("async_put")
async def async_put(data: Data, args: Any) -> Outcome:
    data["async"] = args
    return data, "ok"


@app.handler("detailed_fail")
def detailed_fail(data: Data, args: Any) -> Outcome:
    raise HandlerError("OUT_OF_STOCK", "none left", {"sku": args})


@app.handler("needs_int")
def needs_int(data: Data, args: Any) -> Outcome:
    if not isinstance(args, int):
        raise InvalidArgs("args must be an integer", {"got": type(args).__name__})
    return UNCHANGED, args * 2


@app.handler("boom")
def boom(data: Data, args: Any) -> Outcome:
    raise RuntimeError("secret detail that must not reach the client")


@app.handler("bad_return")
def bad_return(data: Data, args: Any) -> Any:
    return {"not": "a pair"}


@app.handler("bad_data")
def bad_data(data: Data, args: Any) -> Any:
    return ["a", "list"], None


@app.handler("nan_result")
def nan_result(data: Data, args: Any) -> Outcome:
    return UNCHANGED, math.nan


@app.handler("rendezvous")
def rendezvous(data: Data, args: Any) -> Outcome:
    """Two sync calls meet at a barrier: passes only if the thread pool runs them at once."""
    index = barrier.wait(timeout=20)
    return UNCHANGED, {"met": True, "index": index}


@app.handler("slow_marked")
def slow_marked(data: Data, args: Any) -> Outcome:
    """Marks a file when it starts, then waits: lets a test signal the process mid-request."""
    with open(args["marker"], "w") as marker:
        marker.write("started")
    time.sleep(args["seconds"])
    return UNCHANGED, {"finished": True}


startup_gate = os.environ.get("SAMPLE_STARTUP_GATE", "")
if startup_gate:

    @app.on_startup
    def wait_for_gate() -> None:
        """Not ready until the test creates the gate file."""
        while not os.path.exists(startup_gate):
            time.sleep(0.02)


if os.environ.get("SAMPLE_STARTUP_FAILS"):

    @app.on_startup
    async def fail_startup() -> None:
        raise RuntimeError("cannot load the model")


if __name__ == "__main__":
    app.run()
