"""The raw standard-library handler (operator/worker/contract/conformance/raw_python_handler.py), counting
its own invocations outside the store: every invocation of `put` appends one line, "<session id> <args.key> <pid>",
to the file named by SPO_COUNT_FILE (O_APPEND: one short write per line, whole lines under concurrency).
The execute-once and chaos end-to-end tests compare these counts with the requests they got answers for
(e2e/tests/support/invocations.ts reads the file)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "operator", "worker", "contract", "conformance"))

import raw_python_handler as raw  # noqa: E402

COUNT_FILE = os.environ["SPO_COUNT_FILE"]
_parse_invoke = raw.parse_invoke


def counting_parse_invoke(body):
    request = _parse_invoke(body)
    if request["handler"] == "put":
        fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            args = request.get("args")
            key = args.get("key") if isinstance(args, dict) else None
            line = "{} {} {}\n".format(request["session"]["id"], key if isinstance(key, str) else "-", os.getpid())
            os.write(fd, line.encode("ascii"))
        finally:
            os.close(fd)
    return request


raw.parse_invoke = counting_parse_invoke

if __name__ == "__main__":
    raw.main()
