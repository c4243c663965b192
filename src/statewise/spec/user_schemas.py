"""The JSON Schemas a spec carries (``payload_schema``, ``context_schema``), compiled.

This is the :data:`~statewise.engine.machine.SchemaCompiler` that
:class:`~statewise.StateMachine` hands the engine. A schema is checked against the
draft 2020-12 metaschema when the machine loads; a value is checked with the fast
compiled validator when the schema uses only the keywords it knows, and with
jsonschema otherwise. Either way every problem is listed, in the value's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from statewise.engine.expressions import plain
from statewise.errors import Problem, format_path
from statewise.model.frozen import thaw
from statewise.spec.schema import SchemaValidator

__all__ = ["compile_json_schema", "schema_problem"]


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a valid draft 2020-12 JSON Schema, or ``None``."""
    try:
        Draft202012Validator.check_schema(thaw(schema))
    except SchemaError as error:
        where = format_path(tuple(error.absolute_path))
        return f"not a valid JSON Schema: {error.message}" + (f" (at {where})" if where else "")
    return None


class _Check:
    """A compiled schema, callable as ``check(value) -> problems``."""

    __slots__ = ("_fast", "_slow")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._fast: SchemaValidator | None
        self._slow: Draft202012Validator | None = None
        try:
            self._fast = SchemaValidator(schema)
        except ValueError:  # a keyword the fast compiler does not know: jsonschema decides
            self._fast = None
            self._slow = Draft202012Validator(schema)

    def __call__(self, value: Any) -> Sequence[Problem]:
        doc = plain(value)
        if self._fast is not None:
            return [
                Problem(format_path(i.path), i.message, expected=i.expected, got=i.got)
                for i in self._fast.validate(doc)
            ]
        assert self._slow is not None
        errors = sorted(self._slow.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        return [Problem(format_path(tuple(e.absolute_path)), e.message) for e in errors]


def compile_json_schema(schema: Mapping[str, Any]) -> _Check:
    """Compile ``schema``; ``ValueError`` when it is not a valid JSON Schema."""
    problem = schema_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    return _Check(thaw(schema))
