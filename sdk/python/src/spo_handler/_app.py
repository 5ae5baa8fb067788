"""HandlerApp: the registry of handlers and the contract's dispatch, apart from HTTP.

`invoke` and `readiness` take bytes and give (status, body): the server (`_server.py`) only maps
HTTP onto them, so every rule of docs/handler-contract.md lives here.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar, Union

from . import _json
from ._errors import HandlerError

CONTRACT_VERSION: Final = 1
HANDLER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
DEFAULT_DEADLINE_MS: Final = 60_000
# The pool's largest maxSessionBytes (64 MiB) plus the contract's 64 KiB of envelope.
ENVELOPE_BYTES: Final = 64 * 1024
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024 + ENVELOPE_BYTES

log = logging.getLogger("spo_handler")


class Unchanged:
    """The type of UNCHANGED: return it in place of the data when the session's data did not change."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()

Data = dict[str, Any]
Outcome = tuple[Union[Data, Unchanged], Any]


@dataclass(frozen=True)
class Call:
    """What a handler may want to know about the request beyond (data, args)."""

    handler: str
    request_id: str
    session_id: str
    version: int
    anonymous: bool
    deadline: float  # time.monotonic() at which the runtime stops waiting

    def remaining(self) -> float:
        """Seconds left before the runtime gives up on this request."""
        return max(0.0, self.deadline - time.monotonic())


SyncHandler = Union[Callable[[Data, Any], Outcome], Callable[[Data, Any, Call], Outcome]]
AsyncHandler = Union[
    Callable[[Data, Any], Awaitable[Outcome]],
    Callable[[Data, Any, Call], Awaitable[Outcome]],
]
HandlerFunction = Union[SyncHandler, AsyncHandler]
StartupHook = Union[Callable[[], None], Callable[[], Awaitable[None]]]
F = TypeVar("F", bound=HandlerFunction)
H = TypeVar("H", bound=StartupHook)


@dataclass(frozen=True)
class _Registered:
    name: str
    description: str
    function: Callable[..., Any]
    is_async: bool
    wants_call: bool


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _positional_arity(function: Callable[..., Any]) -> int:
    parameters = inspect.signature(function).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds)


def error_body(code: str, message: str, details: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return _json.dumps({"error": error})


class HandlerApp:
    """A set of handlers served over the contract.

        app = HandlerApp()

        @app.handler("put", description="data[key] = value")
        def put(data, args):
            previous = data.get(args["key"])
            data[args["key"]] = args["value"]
            return data, {"previous": previous}

        app.run()   # serves 127.0.0.1:$SPO_HANDLER_PORT until SIGTERM
    """

    def __init__(self, *, threads: int | None = None, max_body_bytes: int | None = None) -> None:
        self._handlers: dict[str, _Registered] = {}
        self._startup: list[StartupHook] = []
        self._threads = threads or int(os.environ.get("SPO_HANDLER_THREADS", "32"))
        self.max_body_bytes = max_body_bytes or _max_body_from_env()
        self._executor: ThreadPoolExecutor | None = None
        self._ready = False
        self._not_ready_reason = "starting"
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- registration -------------------------------------------------------------------

    def handler(self, name: str | None = None, *, description: str = "") -> Callable[[F], F]:
        """Registers a function of (data, args) or (data, args, call), sync or async, that returns
        (new data or UNCHANGED, result). Sync functions run in a thread pool."""

        def register(function: F) -> F:
            handler_name: str = name or str(getattr(function, "__name__", ""))
            if not HANDLER_NAME.match(handler_name):
                raise ValueError(f"handler name {handler_name!r} does not match {HANDLER_NAME.pattern}")
            if handler_name in self._handlers:
                raise ValueError(f"handler {handler_name!r} is registered twice")
            arity = _positional_arity(function)
            if arity not in (2, 3):
                raise TypeError(f"handler {handler_name!r} must take (data, args) or (data, args, call)")
            self._handlers[handler_name] = _Registered(
                name=handler_name,
                description=description or (inspect.getdoc(function) or "").split("\n")[0],
                function=function,
                is_async=inspect.iscoroutinefunction(function),
                wants_call=arity == 3,
            )
            return function

        return register

    def on_startup(self, hook: H) -> H:
        """Registers a function (sync or async, no arguments) that runs before the handler reports
        ready: imports, model clients. If it raises, the process exits with status 1."""
        self._startup.append(hook)
        return hook

    @property
    def handler_names(self) -> list[str]:
        return list(self._handlers)

    # ---- lifecycle (driven by the server) -------------------------------------------------

    async def start(self) -> None:
        """Runs the startup hooks, then reports ready."""
        loop = asyncio.get_running_loop()
        for hook in self._startup:
            if inspect.iscoroutinefunction(hook):
                await hook()
            else:
                await loop.run_in_executor(self.executor, hook)
        self._ready = True

    def begin_shutdown(self) -> None:
        self._ready = False
        self._not_ready_reason = "shutting down"

    async def wait_idle(self, timeout: float) -> bool:
        """Waits until no request is in flight; False if `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="spo-handler")
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self._ready

    def run(self, *, port: int | None = None) -> None:
        """Serves the contract on 127.0.0.1:port (default $SPO_HANDLER_PORT, else 8081) until SIGTERM."""
        from ._server import serve

        serve(self, port=port)

    # ---- the contract ---------------------------------------------------------------------

    def readiness(self) -> tuple[int, bytes]:
        if not self._ready:
            return 503, _json.dumps({"ready": False, "reason": self._not_ready_reason})
        handlers = [{"name": h.name, "description": h.description} for h in self._handlers.values()]
        return 200, _json.dumps({"ready": True, "contract": CONTRACT_VERSION, "handlers": handlers})

    async def invoke(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Answers one POST /contract/v1/invoke. Never raises: every failure is a status and a body."""
        if not self._ready:
            return 503, error_body("NOT_READY", f"the handler is not ready ({self._not_ready_reason})")
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._invoke(body, headers or {})
        except Exception as error:  # a bug in the handler or here: a 500, and the process stays up
            log.exception("handler failed")
            return 500, error_body("HANDLER_EXCEPTION", type(error).__name__)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _invoke(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            registered, data, args, call = self._parse(body, headers)
        except _BadRequest as bad:
            return bad.status, error_body(bad.code, bad.message)
        try:
            outcome = await self._call(registered, data, args, call)
        except HandlerError as error:
            return error.status, error_body(error.code, error.message, error.details)
        return _encode_outcome(registered.name, outcome)

    async def _call(self, registered: _Registered, data: Data, args: Any, call: Call) -> Any:
        params = (data, args, call) if registered.wants_call else (data, args)
        if registered.is_async:
            return await registered.function(*params)
        context = contextvars.copy_context()
        bound = functools.partial(context.run, registered.function, *params)
        return await asyncio.get_running_loop().run_in_executor(self.executor, bound)

    def _parse(self, body: bytes, headers: dict[str, str]) -> tuple[_Registered, Data, Any, Call]:
        try:
            envelope = _json.loads(body)
        except _json.NotJSON as error:
            raise _BadRequest(400, "BAD_REQUEST", f"the body is not JSON: {error}") from None
        if not isinstance(envelope, dict):
            raise _BadRequest(400, "BAD_REQUEST", "the body must be a JSON object")
        contract = envelope.get("contract", CONTRACT_VERSION)
        if contract != CONTRACT_VERSION or isinstance(contract, bool):
            raise _BadRequest(400, "UNSUPPORTED_CONTRACT", f"this handler speaks contract {CONTRACT_VERSION}")
        name = envelope.get("handler")
        if not isinstance(name, str) or not HANDLER_NAME.match(name):
            raise _BadRequest(400, "BAD_REQUEST", f"handler must be a string matching {HANDLER_NAME.pattern}")
        session = envelope.get("session")
        if not isinstance(session, dict):
            raise _BadRequest(400, "BAD_REQUEST", "session must be an object")
        data, session_id, version = session.get("data"), session.get("id"), session.get("version")
        if not isinstance(data, dict):
            raise _BadRequest(400, "BAD_REQUEST", "session.data must be an object")
        if not isinstance(session_id, str):
            raise _BadRequest(400, "BAD_REQUEST", "session.id must be a string")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _BadRequest(400, "BAD_REQUEST", "session.version must be an integer")
        anonymous = session.get("anonymous", False)
        if not isinstance(anonymous, bool):
            raise _BadRequest(400, "BAD_REQUEST", "session.anonymous must be a boolean")
        registered = self._handlers.get(name)
        if registered is None:
            raise _BadRequest(404, "UNKNOWN_HANDLER", f"no handler named {name!r}")
        request_id = envelope.get("requestId", headers.get("x-spo-request-id", ""))
        deadline_ms = envelope.get("deadlineMs", headers.get("x-spo-deadline-ms", DEFAULT_DEADLINE_MS))
        try:
            deadline_s = max(0.0, float(deadline_ms)) / 1000
        except (TypeError, ValueError, OverflowError):
            raise _BadRequest(400, "BAD_REQUEST", "deadlineMs must be a number") from None
        call = Call(
            handler=name,
            request_id=str(request_id),
            session_id=session_id,
            version=version,
            anonymous=anonymous,
            deadline=time.monotonic() + deadline_s,
        )
        return registered, data, envelope.get("args"), call


def _encode_outcome(name: str, outcome: Any) -> tuple[int, bytes]:
    if not isinstance(outcome, tuple) or len(outcome) != 2:
        log.error("handler %s returned %s, not a (data, result) pair", name, type(outcome).__name__)
        return 500, error_body("HANDLER_BAD_RETURN", "the handler did not return a (data, result) pair")
    data, result = outcome
    response: dict[str, Any] = {"result": result}
    if not isinstance(data, Unchanged):
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            log.error("handler %s returned data that is not an object with string keys", name)
            return 500, error_body("HANDLER_BAD_RETURN", "the handler's data is not a JSON object")
        response["data"] = data
    try:
        return 200, _json.dumps(response)
    except (TypeError, ValueError, RecursionError) as error:
        log.error("handler %s returned what JSON cannot hold: %s", name, error)
        return 500, error_body("HANDLER_BAD_RETURN", "the handler's answer is not JSON")


def _max_body_from_env() -> int:
    explicit = os.environ.get("SPO_HANDLER_MAX_BODY_BYTES")
    if explicit:
        return int(explicit)
    session_bytes = os.environ.get("SPO_MAX_SESSION_BYTES")
    if session_bytes:
        return int(session_bytes) + ENVELOPE_BYTES
    return DEFAULT_MAX_BODY_BYTES
