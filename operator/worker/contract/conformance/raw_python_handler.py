"""A handler of the contract written without the SDK: Python's standard library only.

It exists to prove that the contract (docs/handler-contract.md) is the contract and not the
SDK: the conformance suite passes against it. It offers the conformance handlers (echo, put,
fail, sleep, crash, grow). Run: SPO_HANDLER_PORT=8081 python3 raw_python_handler.py

For the runtime's fault tests (operator/worker/contract/handler.int.test.ts) it has two more
things a handler must not do: the handler `not_json` answers 200 with a body that is not JSON,
and while the file named by SPO_RAW_NOT_READY_FILE exists, GET /contract/v1/ready answers 503.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 64 * 1024 * 1024
HANDLERS = [
    {"name": "echo", "description": "result = args; data unchanged"},
    {"name": "put", "description": "data[key] = value; result = {previous}"},
    {"name": "fail", "description": "422 with the code and message given"},
    {"name": "sleep", "description": "waits ms, then result = {slept: ms}"},
    {"name": "crash", "description": "the process exits at once with status 1"},
    {"name": "grow", "description": "data.blob = a string of that many x"},
    {"name": "not_json", "description": "a broken answer, for the runtime's fault tests"},
]
NAMES = {h["name"] for h in HANDLERS}
IN_FLIGHT = [0]  # invoke requests being served (SIGTERM waits for them)
IN_FLIGHT_LOCK = threading.Lock()


class ContractError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid_args(message):
    return ContractError(400, "INVALID_ARGS", message)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def run_handler(name, args, data):
    """Returns (result, new data or None when unchanged)."""
    if name == "echo":
        return args, None
    if name == "put":
        if not isinstance(args, dict) or not isinstance(args.get("key"), str) or "value" not in args:
            raise invalid_args("put needs {key: string, value: any}")
        new = dict(data)
        previous = new.get(args["key"])
        new[args["key"]] = args["value"]
        return {"previous": previous}, new
    if name == "fail":
        if not isinstance(args, dict) or not isinstance(args.get("code"), str) or not isinstance(args.get("message"), str):
            raise invalid_args("fail needs {code: string, message: string}")
        raise ContractError(422, args["code"], args["message"])
    if name == "sleep":
        if not isinstance(args, dict) or not is_int(args.get("ms")) or args["ms"] < 0:
            raise invalid_args("sleep needs {ms: integer >= 0}")
        time.sleep(args["ms"] / 1000)
        return {"slept": args["ms"]}, None
    if name == "crash":
        sys.stderr.flush()
        os._exit(1)
    if name == "grow":
        if not isinstance(args, dict) or not is_int(args.get("bytes")) or args["bytes"] < 0:
            raise invalid_args("grow needs {bytes: integer >= 0}")
        new = dict(data)
        new["blob"] = "x" * args["bytes"]
        return {"bytes": args["bytes"]}, new
    raise ContractError(404, "UNKNOWN_HANDLER", f"no handler named {name!r}")


def parse_invoke(body):
    try:
        request = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ContractError(400, "INVALID_REQUEST", "the body is not JSON")
    if not isinstance(request, dict):
        raise ContractError(400, "INVALID_REQUEST", "the body is not a JSON object")
    session = request.get("session")
    if request.get("contract") != 1:
        raise ContractError(400, "INVALID_REQUEST", "contract must be 1")
    if not isinstance(request.get("handler"), str):
        raise ContractError(400, "INVALID_REQUEST", "handler must be a string")
    if not isinstance(session, dict) or not isinstance(session.get("data"), dict) or not isinstance(session.get("id"), str):
        raise ContractError(400, "INVALID_REQUEST", "session must be an object with an id and data object")
    return request


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the runtime reuses connections
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

    def log_message(self, format, *args):  # quiet: one line per request is too much
        pass

    def answer(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        self.answer(status, {"error": {"code": code, "message": message}})

    def do_GET(self):
        if self.path != "/contract/v1/ready":
            return self.error(404, "NOT_FOUND", "no such path")
        not_ready_file = os.environ.get("SPO_RAW_NOT_READY_FILE")
        if not_ready_file and os.path.exists(not_ready_file):
            return self.answer(503, {"ready": False, "reason": "told to be not ready"})
        self.answer(200, {"ready": True, "contract": 1, "handlers": HANDLERS})

    def do_POST(self):
        if self.path != "/contract/v1/invoke":
            return self.error(404, "NOT_FOUND", "no such path")
        length_header = self.headers.get("content-length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            return self.error(411, "LENGTH_REQUIRED", "a content-length is required")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return self.error(413, "PAYLOAD_TOO_LARGE", "the body is too large")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        with IN_FLIGHT_LOCK:
            IN_FLIGHT[0] += 1
        try:
            request = parse_invoke(body)
            args = request.get("args")
            if request["handler"] == "not_json":
                body = b"this is not JSON"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                return self.wfile.write(body)
            result, data = run_handler(request["handler"], args, request["session"]["data"])
            self.answer(200, {"result": result} if data is None else {"result": result, "data": data})
        except ContractError as e:
            self.error(e.status, e.code, e.message)
        except Exception as e:  # a bug here must not kill the server: 500, as the contract says
            self.error(500, "INTERNAL", type(e).__name__)
        finally:
            with IN_FLIGHT_LOCK:
                IN_FLIGHT[0] -= 1

    def do_PUT(self):
        self.error(405, "METHOD_NOT_ALLOWED", "GET /contract/v1/ready or POST /contract/v1/invoke")

    do_DELETE = do_PUT
    do_PATCH = do_PUT


def main():
    port = int(os.environ.get("SPO_HANDLER_PORT", "8081"))
    print(f"raw handler: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def on_term(signum, frame):
        # Stop accepting, let the requests in flight finish (bounded), then exit.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        deadline = time.monotonic() + 30
        while IN_FLIGHT[0] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.server_close()


if __name__ == "__main__":
    main()
