"""``StateMachine``: the engine's :class:`Machine`, plus loading from YAML, JSON or dicts.

This module sits above the pure core: it may read files and the environment. The
engine below it never does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from statewise.engine.guards import GuardRegistry
from statewise.engine.locate import Locator
from statewise.engine.machine import Machine, SchemaCompiler
from statewise.model.definition import MachineDefinition
from statewise.spec.loader import DEFAULT_MAX_BYTES, Format, load, read_file, read_text
from statewise.spec.source import Document
from statewise.spec.user_schemas import compile_json_schema

__all__ = ["StateMachine"]


class StateMachine(Machine):
    """A machine loaded from a spec. Every loader raises :class:`SpecError` listing
    every problem of a bad spec (file:line:col, path, expected, got), and accepts:

    * ``guards=``: a :class:`GuardRegistry` to bind now (see :meth:`bind_guards`);
    * ``env=``: the mapping ``${VAR}`` is substituted from (default ``os.environ``);
    * ``max_bytes=``: the largest spec accepted (default 16 MiB).
    """

    __slots__ = ()

    def __init__(
        self,
        definition: MachineDefinition,
        *,
        guards: GuardRegistry | None = None,
        source: Locator | None = None,
        schemas: SchemaCompiler | None = compile_json_schema,
        _checked: bool = False,
    ) -> None:
        super().__init__(
            definition, guards=guards, source=source, schemas=schemas, _checked=_checked
        )

    @classmethod
    def from_yaml(
        cls,
        path: str | os.PathLike[str],
        *,
        guards: GuardRegistry | None = None,
        env: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> StateMachine:
        return cls.from_file(path, format="yaml", guards=guards, env=env, max_bytes=max_bytes)

    @classmethod
    def from_json(
        cls,
        path: str | os.PathLike[str],
        *,
        guards: GuardRegistry | None = None,
        env: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> StateMachine:
        return cls.from_file(path, format="json", guards=guards, env=env, max_bytes=max_bytes)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,
        guards: GuardRegistry | None = None,
        env: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> StateMachine:
        """YAML or JSON: ``format``, or else the suffix (``.json`` is JSON, others YAML)."""
        return cls._from_document(read_file(path, format, max_bytes=max_bytes), guards, env)

    @classmethod
    def from_string(
        cls,
        text: str | bytes,
        format: Format = "yaml",
        *,
        guards: GuardRegistry | None = None,
        env: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        file: str | None = None,
    ) -> StateMachine:
        doc = read_text(text, format, file=file, max_bytes=max_bytes)
        return cls._from_document(doc, guards, env)

    @classmethod
    def from_dict(
        cls,
        spec: Mapping[str, Any],
        *,
        guards: GuardRegistry | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StateMachine:
        """Load from plain data; ``spec`` is never mutated."""
        return cls._from_document(Document.from_data(spec), guards, env)

    @classmethod
    def from_definition(
        cls, definition: MachineDefinition, *, guards: GuardRegistry | None = None
    ) -> StateMachine:
        """Wrap a definition built in code; it is checked like a loaded one."""
        return cls(definition, guards=guards)

    @classmethod
    def _from_document(
        cls, doc: Document, guards: GuardRegistry | None, env: Mapping[str, str] | None
    ) -> StateMachine:
        definition = load(doc, env=env)
        # Keep the text's positions for problems found later, not the parsed data.
        return cls(definition, guards=guards, source=doc.detached(), _checked=True)
