"""The image and the pins, checked without a Docker engine (as operator/worker/dockerfile.test.ts
checks the runtime's image): what the Dockerfile copies exists and is not ignored, the image runs
the worker as non-root on Python 3.11, and the lock files agree with each other."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

WORKER = Path(__file__).resolve().parents[1]
ROOT = WORKER.parents[1]
SDK = ROOT / "sdk" / "python"


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\r?\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines if line and not line.startswith("#")]


DOCKERFILE = instructions((WORKER / "Dockerfile").read_text())
IGNORE = [line.strip() for line in (WORKER / "Dockerfile.dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]


def matches(pattern: str, path: str) -> bool:
    """A path matches if it or a folder above it does; '**/x' matches x at any depth."""
    parts = path.split("/")
    if pattern.startswith("**/"):
        return any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
    return any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))


def ignored(path: str) -> bool:
    """The .dockerignore rule: the last matching pattern wins, and '!' re-includes."""
    result = False
    for pattern in IGNORE:
        if matches(pattern.lstrip("!"), path):
            result = not pattern.startswith("!")
    return result


def lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_stage_is_python_3_11_slim_and_the_image_runs_as_uid_10001() -> None:
    froms = [args for op, args in DOCKERFILE if op == "FROM"]
    assert len(froms) >= 2
    assert all(re.match(r"^python:3\.11-slim(\s+AS\s+\w+)?$", f, re.I) for f in froms), froms
    users = [args for op, args in DOCKERFILE if op == "USER"]
    assert users and re.match(r"^10001(:10001)?$", users[-1])
    assert [args for op, args in DOCKERFILE if op == "EXPOSE"] == ["8081"]


def test_it_runs_the_worker_module_that_the_tests_run() -> None:
    cmd = [args for op, args in DOCKERFILE if op == "CMD"][-1]
    assert json.loads(cmd) == ["python", "-m", "spo_dspy_worker"]
    assert (WORKER / "src" / "spo_dspy_worker" / "__main__.py").exists()
    assert '"-m", "spo_dspy_worker"' in (WORKER / "tests" / "worker_process.py").read_text()


def test_dependencies_come_from_the_lock_and_nothing_unpinned() -> None:
    runs = [args for op, args in DOCKERFILE if op == "RUN"]
    assert any("pip install --no-deps -r /tmp/requirements.lock" in r and "pip check" in r for r in runs)
    assert any("--no-deps --no-build-isolation /src/sdk /src/worker" in r for r in runs)


def test_copies_only_files_that_exist_and_are_not_ignored() -> None:
    copies = [args for op, args in DOCKERFILE if op == "COPY" and "--from=" not in args]
    assert len(copies) >= 3
    for copy in copies:
        sources = [p for p in copy.split() if not p.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is excluded by Dockerfile.dockerignore"
    # what the image must not carry
    for path in ["operator/cmd/worker.ts", "node_modules", ".git", "examples/dspy-worker/tests/test_worker_units.py", "sdk/python/tests"]:
        assert ignored(path), path
    assert not ignored("sdk/python/src/spo_handler/_app.py")


def test_a_read_only_root_is_enough() -> None:
    env = " ".join(args for op, args in DOCKERFILE if op == "ENV")
    for setting in ["PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "DSPY_CACHEDIR=/tmp", "LITELLM_LOCAL_MODEL_COST_MAP=True"]:
        assert setting in env, setting


def test_the_locks_agree() -> None:
    worker, sdk, tools = lock(WORKER / "requirements.lock"), lock(SDK / "requirements.lock"), lock(SDK / "requirements-test.lock")
    assert worker["dspy"] == "3.4.1"
    for name, version in sdk.items():
        assert worker.get(name) == version, f"{name}: sdk {version}, worker {worker.get(name)}"
    for name, version in tools.items():
        assert worker.get(name, version) == version, f"{name}: tools {version}, worker {worker[name]}"
    # The build backend pinned for --no-build-isolation is the one both pyprojects ask for.
    for project in (WORKER, SDK):
        build = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]
        assert build == [f"setuptools=={tools['setuptools']}"], project
    worker_deps = tomllib.loads((WORKER / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "dspy==3.4.1" in worker_deps and "spo-handler" in worker_deps
    assert "setuptools==" + tools["setuptools"] in (WORKER / "Dockerfile").read_text()
