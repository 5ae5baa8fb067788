"""The package is typed: mypy --strict passes on it (as installed) and on code that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_on_the_package_and_a_user_of_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null", "-p", "spo_handler", "-m", "sample_app"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT / "tests" / "apps")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_mypy_catches_a_handler_that_returns_the_wrong_shape(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from spo_handler import HandlerApp, Data, Outcome\n"
        "app = HandlerApp()\n"
        "@app.handler('x')\n"
        "def x(data: Data, args: object) -> Outcome:\n"
        "    return 'not a pair'\n"
    )
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null", str(wrong)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert "Incompatible return value" in result.stdout
