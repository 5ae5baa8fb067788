"""The handlers: define_program, execute_program, list_programs, get_history.

Session data: {"programs": {name: record}, "history": [{program, inputs, outputs}, ...]}. The
history is a list of dicts, so `dspy.History(messages=history)` takes it as it is; a program whose
signature has an input `history: dspy.History` gets its own past turns there when the client does
not pass one.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from spo_handler import UNCHANGED, Call, Data, HandlerApp, HandlerError, InvalidArgs, Outcome

from .definitions import PROGRAM_NAME, parse_definition
from .lm import lm_config_from_env

if TYPE_CHECKING:
    from .programs import Runner, WarmCache

log = logging.getLogger("spo_dspy_worker")
app = HandlerApp()


class _State:
    runner: Runner | None = None
    cache: WarmCache | None = None


state = _State()


@app.on_startup
def load_dspy() -> None:
    """Imports DSPy (about a second) and builds the LM client before the handler reports ready."""
    config = lm_config_from_env()
    # LiteLLM would fetch its model price list from the network at import: use the packaged one.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from . import programs

    programs.configure_dspy()

    state.runner = programs.Runner(config)
    state.cache = programs.WarmCache(int(os.environ.get("SPO_DSPY_WARM_PROGRAMS", "256")))
    log.info("DSPy ready, language model: %s", config.model)


def _programs(data: Data) -> dict[str, Any]:
    programs = data.get("programs", {})
    if not isinstance(programs, dict):
        raise HandlerError("BROKEN_SESSION", "the session's programs are not an object")
    return programs


def _history(data: Data) -> list[Any]:
    history = data.get("history", [])
    if not isinstance(history, list):
        raise HandlerError("BROKEN_SESSION", "the session's history is not a list")
    return history


def _summary(name: str, record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("module", "signature", "instructions", "inputs", "outputs")} | {"name": name}


@app.handler("define_program")
def define_program(data: Data, args: Any) -> Outcome:
    """Defines (or replaces) a program: {name, signature | inputs+outputs, instructions?, module?}."""
    from .programs import define

    definition = parse_definition(args)
    record = define(definition)
    programs = _programs(data)
    replaced = definition.name in programs
    data["programs"] = {**programs, definition.name: record}
    data.setdefault("history", [])
    return data, {**_summary(definition.name, record), "replaced": replaced}


@app.handler("execute_program")
def execute_program(data: Data, args: Any, call: Call) -> Outcome:
    """Runs a program on {name, inputs}: one LM call; the turn is appended to the history."""
    import dspy

    from .programs import load

    assert state.runner is not None and state.cache is not None  # set by the startup hook
    if not isinstance(args, dict) or not isinstance(args.get("name"), str) or not isinstance(args.get("inputs", {}), dict):
        raise InvalidArgs('args must be {"name": string, "inputs": {field: value}}')
    name: str = args["name"]
    inputs: dict[str, Any] = dict(args.get("inputs", {}))
    record = _programs(data).get(name)
    if not isinstance(record, dict):
        raise HandlerError("UNKNOWN_PROGRAM", f"no program named {name!r} in this session", {"name": name})
    history = _history(data)
    expected = list(record.get("inputs", []))
    missing = [f for f in expected if f not in inputs and f != "history"]
    extra = [f for f in inputs if f not in expected]
    if missing or extra:
        raise InvalidArgs(f"program {name!r} takes inputs {expected}", {"missing": missing, "unexpected": extra})

    key = (call.session_id, name)
    program = None if call.anonymous else state.cache.take(key, record)
    if program is None:
        program = load(record)
    turn_inputs = dict(inputs)
    if _takes_dspy_history(program):
        # The conversation so far: the client's own, or this program's past turns in the session.
        given = inputs.get("history")
        past = [
            {**turn["inputs"], **turn["outputs"]}
            for turn in history
            if isinstance(turn, dict) and turn.get("program") == name and isinstance(turn.get("inputs"), dict) and isinstance(turn.get("outputs"), dict)
        ]
        try:
            inputs["history"] = dspy.History(messages=given if given is not None else past)
        except ValueError:  # pydantic's ValidationError: the client's history is not a list of objects
            raise InvalidArgs("inputs.history must be a list of objects") from None
        turn_inputs.pop("history", None)
    elif "history" in expected and "history" not in inputs:
        raise InvalidArgs(f"program {name!r} takes inputs {expected}", {"missing": ["history"], "unexpected": []})
    outputs = state.runner.run(program, name, inputs)
    if not call.anonymous:
        state.cache.put(key, record, program)
    data["history"] = [*history, {"program": name, "inputs": turn_inputs, "outputs": outputs}]
    return data, {"program": name, "outputs": outputs}


def _takes_dspy_history(program: Any) -> bool:
    import dspy

    field = program.predictors()[0].signature.input_fields.get("history")
    return field is not None and field.annotation is dspy.History


@app.handler("list_programs")
def list_programs(data: Data, args: Any) -> Outcome:
    """The session's programs (name, module, signature, instructions, fields) and history length."""
    programs = _programs(data)
    listed = [_summary(name, record) for name, record in programs.items() if isinstance(record, dict)]
    return UNCHANGED, {"programs": listed, "historyLength": len(_history(data))}


@app.handler("get_history")
def get_history(data: Data, args: Any) -> Outcome:
    """The session's history, optionally of one program ({program?, last?})."""
    args = args if args is not None else {}
    if not isinstance(args, dict):
        raise InvalidArgs("args must be an object: {program?, last?}")
    program, last = args.get("program"), args.get("last")
    if program is not None and (not isinstance(program, str) or not PROGRAM_NAME.match(program)):
        raise InvalidArgs("program must be a program name")
    if last is not None and (not isinstance(last, int) or isinstance(last, bool) or last < 0):
        raise InvalidArgs("last must be a non-negative integer")
    turns = [t for t in _history(data) if program is None or (isinstance(t, dict) and t.get("program") == program)]
    if last is not None:
        turns = turns[len(turns) - last :] if last else []
    return UNCHANGED, {"history": turns}
