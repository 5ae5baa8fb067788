"""Strict JSON in and out: no NaN or Infinity (they are not JSON), UTF-8 only."""

from __future__ import annotations

import json
from typing import Any


class NotJSON(ValueError):
    """The bytes are not strict JSON."""


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON")


def loads(body: bytes) -> Any:
    """Parses strict JSON; raises NotJSON on anything else (bad UTF-8, NaN, trailing bytes)."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except NotJSON:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise NotJSON(str(error)) from None


def dumps(value: Any) -> bytes:
    """Serializes to compact strict JSON; raises ValueError/TypeError for what JSON cannot hold."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
