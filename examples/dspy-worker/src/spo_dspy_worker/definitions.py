"""The arguments of define_program, checked and normalized without DSPy (pure, unit-tested).

A signature is given either as DSPy's string form ("question, context: list[str] -> answer") or as
field lists ({"inputs": ["question"], "outputs": [{"name": "answer", "desc": "one word"}]}). Both
become one normalized string that DSPy parses, plus field descriptions; field names and types are
checked here first so that nothing a client sends reaches DSPy's parser unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from spo_handler import InvalidArgs

PROGRAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Type annotations DSPy's signature parser understands: names, dots, brackets, commas, unions.
FIELD_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\], |]{0,127}$")
MODULES = ("Predict", "ChainOfThought")
MAX_INSTRUCTIONS = 64 * 1024
MAX_FIELDS = 32


@dataclass(frozen=True)
class Field:
    name: str
    type: str | None = None
    desc: str | None = None

    def spec(self) -> str:
        return f"{self.name}: {self.type}" if self.type else self.name


@dataclass(frozen=True)
class Definition:
    name: str
    module: str
    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]
    instructions: str | None

    @property
    def signature(self) -> str:
        return f"{', '.join(f.spec() for f in self.inputs)} -> {', '.join(f.spec() for f in self.outputs)}"


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside brackets: "a, b: dict[str, int]" -> ["a", "b: dict[str, int]"]."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def _field_from_text(text: str, where: str) -> Field:
    name, _, annotation = text.partition(":")
    return _field(name.strip(), annotation.strip() or None, None, where)


def _field(name: Any, type_: Any, desc: Any, where: str) -> Field:
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise InvalidArgs(f"{where}: field name {name!r} must match {FIELD_NAME.pattern}")
    if type_ is not None and (not isinstance(type_, str) or not FIELD_TYPE.match(type_) or type_.count("[") != type_.count("]")):
        raise InvalidArgs(f"{where}: field {name!r} has a type DSPy cannot read: {type_!r}")
    if desc is not None and not isinstance(desc, str):
        raise InvalidArgs(f"{where}: field {name!r} desc must be a string")
    return Field(name, type_, desc)


def _fields(value: Any, where: str) -> tuple[Field, ...]:
    if isinstance(value, str):
        items: list[Any] = _split_top_level(value)
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidArgs(f"{where} must be a list of fields or a comma-separated string")
    if not 1 <= len(items) <= MAX_FIELDS:
        raise InvalidArgs(f"{where} must have 1 to {MAX_FIELDS} fields")
    fields = []
    for item in items:
        if isinstance(item, str):
            fields.append(_field_from_text(item, where))
        elif isinstance(item, dict):
            fields.append(_field(item.get("name"), item.get("type"), item.get("desc"), where))
        else:
            raise InvalidArgs(f"{where}: a field is a string or {{name, type?, desc?}}")
    return tuple(fields)


def parse_definition(args: Any) -> Definition:
    if not isinstance(args, dict):
        raise InvalidArgs("args must be an object: {name, signature | inputs+outputs, instructions?, module?}")
    name = args.get("name")
    if not isinstance(name, str) or not PROGRAM_NAME.match(name):
        raise InvalidArgs(f"name must match {PROGRAM_NAME.pattern}")
    module = args.get("module", "Predict")
    if module not in MODULES:
        raise InvalidArgs(f"module must be one of {', '.join(MODULES)}")
    signature = args.get("signature")
    if signature is not None:
        if not isinstance(signature, str) or signature.count("->") != 1:
            raise InvalidArgs('signature must be a string like "question -> answer"')
        left, right = signature.split("->")
        inputs, outputs = _fields(left, "signature inputs"), _fields(right, "signature outputs")
    else:
        inputs, outputs = _fields(args.get("inputs"), "inputs"), _fields(args.get("outputs"), "outputs")
    names = [f.name for f in inputs + outputs]
    if len(set(names)) != len(names):
        raise InvalidArgs("field names must be unique across inputs and outputs")
    if module == "ChainOfThought" and "reasoning" in names:
        raise InvalidArgs("ChainOfThought adds the output field 'reasoning' itself")
    instructions = args.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS):
        raise InvalidArgs(f"instructions must be a string of at most {MAX_INSTRUCTIONS} characters")
    return Definition(name, module, inputs, outputs, instructions or None)
