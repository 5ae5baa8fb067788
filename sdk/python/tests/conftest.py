from __future__ import annotations

from collections.abc import Iterator

import pytest

from handler_process import Handler, start


@pytest.fixture(scope="module")
def sample() -> Iterator[Handler]:
    handler = start("sample_app.py")
    yield handler
    handler.stop()
