"""The language model, chosen by the pool's environment.

- `SPO_DSPY_LM=dummy`: DSPy's DummyLM, no network. Each call gets a fresh DummyLM holding one
  answer for exactly the output fields the program asks for, so it never runs out (a DummyLM
  built on a list answers {"answer": "No more responses"} once the list is spent). The answer of
  a field is `SPO_DSPY_DUMMY_ANSWERS[field]` (a JSON object) if given, else a deterministic
  string naming the field and the first input.
- `SPO_DSPY_LM=<provider>/<model>` (e.g. `openai/gpt-4o-mini`): dspy.LM through LiteLLM. The key
  comes from the provider's usual variable (`OPENAI_API_KEY`, ...) or `SPO_DSPY_API_KEY`, set
  from a Secret; `SPO_DSPY_LM_KWARGS` (JSON object) adds options such as temperature or api_base.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class LMConfigError(ValueError):
    pass


@dataclass(frozen=True)
class LMConfig:
    model: str  # "dummy" or a LiteLLM model name
    dummy_answers: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_dummy(self) -> bool:
        return self.model == "dummy"


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise LMConfigError(f"{name} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise LMConfigError(f"{name} must be a JSON object")
    return value


def lm_config_from_env(env: Mapping[str, str] = os.environ) -> LMConfig:
    model = env.get("SPO_DSPY_LM", "").strip()
    if not model:
        raise LMConfigError("SPO_DSPY_LM is not set: 'dummy' for DSPy's DummyLM, or a LiteLLM model such as openai/gpt-4o-mini")
    if model == "dummy":
        return LMConfig(model, dummy_answers=_json_object(env, "SPO_DSPY_DUMMY_ANSWERS"))
    if "/" not in model:
        raise LMConfigError(f"SPO_DSPY_LM={model!r}: expected 'dummy' or '<provider>/<model>'")
    kwargs = _json_object(env, "SPO_DSPY_LM_KWARGS")
    api_key = env.get("SPO_DSPY_API_KEY")
    if api_key:
        kwargs["api_key"] = api_key
    return LMConfig(model, kwargs=kwargs)


def dummy_answer(config: LMConfig, output_fields: list[str], program: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the DummyLM says for one call: configured answers first, else a deterministic one."""
    first = next(iter(inputs.values()), "")
    return {
        name: config.dummy_answers[name] if name in config.dummy_answers else f"{program} {name} for: {first}"
        for name in output_fields
    }
