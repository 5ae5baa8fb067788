"""The errors a handler raises to answer its caller with a typed failure (docs/handler-contract.md)."""

from __future__ import annotations

import re
from typing import Any

ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class HandlerError(Exception):
    """A user-facing failure of the handler: answered 422, passed to the client as HANDLER_ERROR.

    `code` matches ^[A-Z][A-Z0-9_]{0,63}$ (e.g. "UNKNOWN_PROGRAM"); `details` is any JSON-serializable value (a dict of lists of str, say).
    """

    status = 422

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        if not ERROR_CODE.match(code):
            raise ValueError(f"error code {code!r} does not match {ERROR_CODE.pattern}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class InvalidArgs(HandlerError):
    """The args do not fit the handler: answered 400 INVALID_ARGS, the message passed through."""

    status = 400

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__("INVALID_ARGS", message, details)
