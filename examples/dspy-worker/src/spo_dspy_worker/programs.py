"""DSPy programs from session records, and runs of them. Imports dspy: loaded once, at startup.

A program's record in the session is JSON: {module, signature, instructions, inputs, outputs,
state}, where `state` is `dump_state()`. Loading a record builds the module from the signature and
loads the state; the loaded module is kept as warm state (`WarmCache`), never needed for
correctness: an entry is used only if its record equals the session's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import dspy
from dspy.utils.dummies import DummyLM
from dspy.utils.exceptions import AdapterParseError

from spo_handler import HandlerError, InvalidArgs

from .definitions import Definition
from .lm import LMConfig, dummy_answer

# The keys of a Predict's dumped state that load_state may set; never an LM (the pool picks it).
STATE_KEYS = ("traces", "train", "demos", "signature")


def configure_dspy() -> None:
    """No response cache: every execute_program calls the LM once (a cached answer would depend on
    which worker served the session before), and nothing is written to a read-only root."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


def build_module(module: str, signature: str, instructions: str | None, descs: Mapping[str, str] | None = None) -> dspy.Module:
    sig = dspy.Signature(signature, instructions) if instructions else dspy.Signature(signature)
    for name, desc in (descs or {}).items():
        sig = sig.with_updated_fields(name, desc=desc)
    return dspy.ChainOfThought(sig) if module == "ChainOfThought" else dspy.Predict(sig)


def define(definition: Definition) -> dict[str, Any]:
    """The session record of a new program."""
    descs = {f.name: f.desc for f in definition.inputs + definition.outputs if f.desc}
    try:
        program = build_module(definition.module, definition.signature, definition.instructions, descs)
    except (SyntaxError, ValueError, TypeError) as error:
        raise InvalidArgs(f"DSPy cannot read the signature {definition.signature!r}: {error}") from None
    predictor = program.predictors()[0]
    return {
        "module": definition.module,
        "signature": definition.signature,
        "instructions": predictor.signature.instructions,
        "inputs": [f.name for f in definition.inputs],
        "outputs": [f.name for f in definition.outputs],
        "state": program.dump_state(),
    }


def _safe_state(program: dspy.Module, state: Any) -> dict[str, Any]:
    """Only the keys a program's own dump has, with no LM: session data is not trusted code."""
    if not isinstance(state, dict):
        raise HandlerError("BROKEN_PROGRAM", "the program's state in the session is not an object")
    if isinstance(program, dspy.Predict):
        return {**{k: state[k] for k in STATE_KEYS if k in state}, "lm": None}
    return {name: _safe_state(predictor, state.get(name)) for name, predictor in program.named_predictors()}


def load(record: Mapping[str, Any]) -> dspy.Module:
    try:
        program = build_module(record["module"], record["signature"], record.get("instructions"))
        program.load_state(_safe_state(program, record["state"]))
    except HandlerError:
        raise
    except Exception as error:
        raise HandlerError("BROKEN_PROGRAM", f"the program in the session cannot be loaded ({type(error).__name__})") from None
    return program


class WarmCache:
    """Loaded programs by (session id, program name), least recently used out first.

    `take` removes the entry while a request uses it, so no two requests share a module object.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[dict[str, Any], dspy.Module]] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity
        self.hits = 0

    def take(self, key: tuple[str, str], record: dict[str, Any]) -> dspy.Module | None:
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None and entry[0] == record:
            self.hits += 1
            return entry[1]
        return None

    def put(self, key: tuple[str, str], record: dict[str, Any], program: dspy.Module) -> None:
        with self._lock:
            self._entries[key] = (record, program)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)


class Runner:
    """Runs programs against the configured language model."""

    def __init__(self, config: LMConfig) -> None:
        self.config = config
        self._lm = None if config.is_dummy else dspy.LM(config.model, **config.kwargs)

    def _lm_for(self, program: dspy.Module, name: str, inputs: Mapping[str, Any]) -> dspy.BaseLM:
        if self._lm is not None:
            return self._lm
        fields = [f for predictor in program.predictors() for f in predictor.signature.output_fields]
        return DummyLM([dummy_answer(self.config, fields, name, inputs)])

    def run(self, program: dspy.Module, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Calls the LM once; its failures are the handler's typed errors, with no provider text."""
        try:
            with dspy.context(lm=self._lm_for(program, name, inputs)):
                prediction = program(**inputs)
        except AdapterParseError:
            raise HandlerError("LM_BAD_OUTPUT", "the language model's answer did not fit the program's outputs") from None
        except Exception as error:
            # Provider messages may echo request details; the type names the failure well enough.
            raise HandlerError("LM_ERROR", f"the language model call failed ({type(error).__name__})", {"type": type(error).__name__}) from None
        return {key: _json_safe(value) for key, value in prediction.items()}
