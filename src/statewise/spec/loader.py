"""Spec text or data -> checked :class:`MachineDefinition`, or one :class:`SpecError`.

The pipeline: read (YAML or JSON, safely, positions kept for later) -> substitute
``${VAR}`` -> validate against the JSON Schema -> compile -> semantic checks. Every
problem from every stage is collected, located (file:line:col and path) and raised
together, in document order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from statewise.engine.machine import compile_expressions
from statewise.errors import Problem, SpecError
from statewise.model.checks import check_definition
from statewise.model.definition import MachineDefinition
from statewise.spec.compile import compile_spec
from statewise.spec.envsubst import substitute
from statewise.spec.json_reader import read_json
from statewise.spec.schema import validate
from statewise.spec.source import DEFAULT_MAX_BYTES, Document, check_size
from statewise.spec.user_schemas import schema_problem
from statewise.spec.yaml_reader import read_yaml

__all__ = ["DEFAULT_MAX_BYTES", "Format", "load", "read_file", "read_text"]

Format = Literal["yaml", "json"]
_SUFFIXES: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def read_text(
    text: str | bytes,
    format: Format = "yaml",
    *,
    file: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Document:
    """Parse spec text into a :class:`Document` (raises :class:`SpecError`)."""
    if format == "yaml":
        return read_yaml(text, file=file, max_bytes=max_bytes)
    if format == "json":
        return read_json(text, file=file, max_bytes=max_bytes)
    raise ValueError(f"format must be 'yaml' or 'json', got {format!r}")


def read_file(
    path: str | os.PathLike[str],
    format: Format | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Document:
    """Read and parse a spec file; the format comes from the suffix unless given."""
    p = Path(path)
    name = str(path)
    if format is None:
        format = _SUFFIXES.get(p.suffix.lower(), "yaml")
    try:
        check_size(p.stat().st_size, file=name, max_bytes=max_bytes)  # before reading it
        data = p.read_bytes()
    except OSError as exc:
        raise SpecError(
            [Problem("", f"cannot read the spec: {exc.strerror or exc}", file=name)]
        ) from exc
    return read_text(data, format, file=name, max_bytes=max_bytes)


def load(doc: Document, *, env: Mapping[str, str] | None = None) -> MachineDefinition:
    """Substitute, validate, compile and check ``doc``; every problem raised at once."""
    data, env_errors = substitute(doc.data, os.environ if env is None else env)
    problems: list[Problem] = [
        doc.problem(path, message, expected=expected, got=got)
        for path, message, expected, got in env_errors
    ]
    schema_issues = validate(data)
    problems += [
        doc.problem(i.path, i.message, key=i.key, expected=i.expected, got=i.got)
        for i in schema_issues
    ]
    compiled = compile_spec(data)
    flagged = {i.path for i in schema_issues}
    for path, message, expected, got in compiled.problems:
        if path not in flagged:  # the schema said it already (a malformed duration)
            problems.append(doc.problem(path, message, expected=expected, got=got))
    problems += _extension_problems(doc, data)
    _, expression_issues = compile_expressions(compiled.definition)
    for issue in [*check_definition(compiled.definition), *expression_issues]:
        if issue.code == "initial-state" and (compiled.uncertain_types or compiled.dropped_states):
            continue  # a misspelt ``type`` or unreadable state was reported already
        if issue.code == "unknown-state" and compiled.dropped_states:
            continue  # the state may be one the schema problems made unreadable
        path = _fit(data, compiled.doc_path(issue.path))
        problems.append(doc.problem(path, issue.message, expected=issue.expected, got=issue.got))
    if problems:
        raise SpecError(_in_document_order(problems))
    return compiled.definition


def _extension_problems(doc: Document, data: Any) -> list[Problem]:
    """Problems in what the spec embeds: trigger names, and its JSON Schemas."""
    if not isinstance(data, Mapping):
        return []
    out: list[Problem] = []
    triggers = data.get("triggers")
    if isinstance(triggers, Mapping):
        for name, item in triggers.items():
            if not _named(name):
                out.append(_not_a_name(doc, ("triggers", name), "trigger"))
            elif isinstance(item, Mapping) and isinstance(item.get("payload_schema"), Mapping):
                out += _schema_problems(doc, ("triggers", name, "payload_schema"), item)
    out += _schema_problems(doc, ("context_schema",), data)
    migrate = data.get("migrate")
    if isinstance(migrate, Mapping):
        out += [
            _not_a_name(doc, ("migrate", old), "old state") for old in migrate if not _named(old)
        ]
    return out


def _named(name: object) -> bool:
    return isinstance(name, str) and _IDENT.match(name) is not None


def _not_a_name(doc: Document, path: tuple[str | int, ...], what: str) -> Problem:
    name = path[-1]
    return doc.problem(
        path,
        f"{what} name {name!r} is not an identifier",
        key=True,
        expected="an identifier (letters, digits, _; not starting with a digit)",
        got=repr(name),
    )


def _schema_problems(
    doc: Document, path: tuple[str | int, ...], parent: Mapping[str, Any]
) -> list[Problem]:
    schema = parent.get(str(path[-1]))
    if not isinstance(schema, Mapping):
        return []
    problem = schema_problem(schema)
    if problem is None:
        return []
    return [doc.problem(path, problem, expected="a draft 2020-12 JSON Schema")]


def _fit(data: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The longest prefix of ``path`` that exists in ``data``.

    The definition always has lists where the spec may have a single string
    (``source: A``), so ``source[0]`` becomes ``source`` there.
    """
    node = data
    for n, part in enumerate(path):
        in_mapping = isinstance(node, Mapping) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            return path[:n]
        node = node[part]
    return path


def _in_document_order(problems: list[Problem]) -> list[Problem]:
    if all(p.line is not None for p in problems):
        return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    return problems
