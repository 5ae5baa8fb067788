"""Pure parts without a server: argument parsing, LM configuration, the warm cache."""

from __future__ import annotations

import pytest

from spo_dspy_worker.definitions import parse_definition
from spo_dspy_worker.lm import LMConfigError, dummy_answer, lm_config_from_env
from spo_handler import InvalidArgs


def test_signature_strings_and_field_lists_normalize_alike() -> None:
    a = parse_definition({"name": "qa", "signature": "question, context: list[str] -> answer: dict[str, int]"})
    assert [f.name for f in a.inputs] == ["question", "context"]
    assert a.signature == "question, context: list[str] -> answer: dict[str, int]"
    b = parse_definition({"name": "qa", "inputs": ["question", {"name": "context", "type": "list[str]"}], "outputs": "answer: dict[str, int]"})
    assert b.signature == a.signature


@pytest.mark.parametrize(
    "args",
    [
        None,
        {"name": "qa"},
        {"name": "qa", "signature": "a -> b -> c"},
        {"name": "qa", "signature": "a b -> c"},
        {"name": "qa", "signature": "a: list[str -> c"},
        {"name": "qa", "signature": "a: os.system('x') -> c"},
        {"name": "qa", "signature": "a -> a"},
        {"name": "qa", "signature": "a -> reasoning", "module": "ChainOfThought"},
        {"name": "qa", "signature": "a -> b", "instructions": 5},
        {"name": "qa", "inputs": [], "outputs": ["b"]},
        {"name": "qa", "inputs": [{"name": 1}], "outputs": ["b"]},
    ],
)
def test_bad_definitions_are_invalid_args(args: object) -> None:
    with pytest.raises(InvalidArgs):
        parse_definition(args)


def test_lm_config_from_the_environment() -> None:
    with pytest.raises(LMConfigError, match="not set"):
        lm_config_from_env({})
    with pytest.raises(LMConfigError, match="provider"):
        lm_config_from_env({"SPO_DSPY_LM": "gpt-4o"})
    with pytest.raises(LMConfigError, match="JSON object"):
        lm_config_from_env({"SPO_DSPY_LM": "dummy", "SPO_DSPY_DUMMY_ANSWERS": "[1]"})
    real = lm_config_from_env({"SPO_DSPY_LM": "openai/gpt-4o-mini", "SPO_DSPY_LM_KWARGS": '{"temperature": 0}', "SPO_DSPY_API_KEY": "k"})
    assert (real.is_dummy, real.kwargs) == (False, {"temperature": 0, "api_key": "k"})
    dummy = lm_config_from_env({"SPO_DSPY_LM": "dummy", "SPO_DSPY_DUMMY_ANSWERS": '{"answer": "Paris"}'})
    assert dummy_answer(dummy, ["reasoning", "answer"], "qa", {"question": "Capital?"}) == {"reasoning": "qa reasoning for: Capital?", "answer": "Paris"}


def test_the_real_provider_path_builds_a_dspy_lm_without_calling_it() -> None:
    from spo_dspy_worker.programs import Runner

    runner = Runner(lm_config_from_env({"SPO_DSPY_LM": "openai/gpt-4o-mini", "SPO_DSPY_API_KEY": "sk-test"}))
    assert runner._lm is not None and runner._lm.model == "openai/gpt-4o-mini"


def test_the_warm_cache_is_used_only_for_an_equal_record() -> None:
    from spo_dspy_worker.definitions import parse_definition as parse
    from spo_dspy_worker.programs import WarmCache, define, load

    record = define(parse({"name": "qa", "signature": "q -> a"}))
    cache = WarmCache(capacity=1)
    cache.put(("s", "qa"), record, load(record))
    assert cache.take(("s", "qa"), record) is not None
    assert cache.take(("s", "qa"), record) is None  # taken while in use
    cache.put(("s", "qa"), record, load(record))
    changed = {**record, "instructions": "other"}
    assert cache.take(("s", "qa"), changed) is None
    cache.put(("s", "qa"), record, load(record))
    cache.put(("t", "qa"), record, load(record))  # capacity 1: the older entry goes
    assert cache.take(("s", "qa"), record) is None
    assert cache.hits == 1


def test_the_worker_passes_mypy_strict() -> None:
    import subprocess
    import sys
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir=/dev/null", "-p", "spo_dspy_worker"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
