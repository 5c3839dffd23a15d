"""Tool arguments checked against the tool's JSON schema by the `jsonschema` library.

The schema the model sees stays as it is (it is part of the cached prompt); the checker validates a
stricter copy: no argument the schema does not name, integers that are ints, and `minLength` counting
visible characters (a description of spaces is as empty as none). Each problem becomes one short line
naming the argument, so the model can correct its call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from .errors import ToolError

MAX_PROBLEMS = 8


def _visible_min_length(validator: Any, min_length: int, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and len(instance.strip()) < min_length:
        yield ValidationError("must not be empty")


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)

_Validator = validators.extend(Draft202012Validator, validators={"minLength": _visible_min_length}, type_checker=_TYPES)


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy in which every object with properties refuses other keys, and `required` is checked
    before the properties (so missing arguments are reported first)."""
    out = dict(schema)
    if "items" in out:
        out["items"] = closed(out["items"])
    if "properties" in out:
        props = {key: closed(sub) for key, sub in out.pop("properties").items()}
        required = out.pop("required", [])
        out.update(required=required, properties=props, additionalProperties=False)
    return out


class ArgumentChecker:
    """One tool's compiled checker; `check` returns the arguments or raises ToolError."""

    def __init__(self, schema: dict[str, Any]):
        _Validator.check_schema(schema)
        self.validator = _Validator(closed(schema))

    def check(self, args: Any) -> dict:
        if not isinstance(args, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(args).__name__}")
        problems = describe(self.validator.iter_errors(args))
        if problems:
            raise ToolError("bad arguments: " + "; ".join(problems[:MAX_PROBLEMS]))
        return args


def describe(errors: Iterator[ValidationError]) -> list[str]:
    """One line per problem; a value of the wrong type gets only that line."""
    found = list(errors)
    mistyped = {tuple(e.absolute_path) for e in found if e.validator == "type"}
    lines: list[str] = []
    seen_required: set[tuple] = set()
    for error in found:
        path = tuple(error.absolute_path)
        wanted: Any = error.validator_value  # the typeshed stubs allow Unset; a raised error has them set
        instance: Any = error.instance
        schema: Any = error.schema
        if error.validator != "type" and path in mistyped:
            continue
        if error.validator == "required":
            if path not in seen_required:
                seen_required.add(path)
                lines += [f"{_child(path, key)} is required" for key in wanted if key not in instance]
        elif error.validator == "additionalProperties":
            allowed = list(schema.get("properties", {}))
            lines += [
                f"{_child(path, key)} is not an argument of this tool (allowed: {', '.join(allowed) or 'none'})"
                for key in instance
                if key not in allowed
            ]
        else:
            lines.append(f"{_name(path)} {_problem(error)}")
    return lines


def _problem(error: ValidationError) -> str:
    value: Any = error.instance
    schema: Any = error.schema
    kind = error.validator
    if kind == "type":
        return f"must be {error.validator_value}, got {type(value).__name__} {json.dumps(value, default=str)[:40]}"
    if kind == "enum":
        wanted: Any = error.validator_value
        return f"must be one of {', '.join(map(str, wanted))}"
    if kind == "maxLength":
        return f"is longer than {error.validator_value} characters"
    if kind == "minimum":
        return f"must be >= {error.validator_value}"
    if kind == "maximum":
        return f"must be <= {error.validator_value}"
    if kind in ("minItems", "maxItems"):
        return f"must have {schema.get('minItems', 0)} to {schema.get('maxItems', 'any')} items"
    return error.message


def _name(path: Sequence[Any]) -> str:
    """`key` for an argument, `key`[0].sub for a value inside one."""
    if not path:
        return "the arguments"
    return f"`{path[0]}`" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])


def _child(path: Sequence[Any], key: str) -> str:
    return f"{_name(path)}.{key}" if path else f"`{key}`"
