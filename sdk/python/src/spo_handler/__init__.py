"""Write session-pool-operator handlers in Python.

A handler is a function of (data, args) -> (new data or UNCHANGED, result), registered on a
HandlerApp and served over the handler contract (docs/handler-contract.md) on
127.0.0.1:$SPO_HANDLER_PORT.
"""

from ._app import UNCHANGED, Call, Data, HandlerApp, Outcome, Unchanged
from ._errors import HandlerError, InvalidArgs

__all__ = [
    "UNCHANGED",
    "Call",
    "Data",
    "HandlerApp",
    "HandlerError",
    "InvalidArgs",
    "Outcome",
    "Unchanged",
]
