from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from worker_process import Worker


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    process = Worker({"SPO_DSPY_LM": "dummy", "SPO_DSPY_DUMMY_ANSWERS": json.dumps({"count": 3})})
    process.wait_ready()
    yield process
    assert process.stop() == 0
