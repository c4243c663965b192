"""``${VAR}`` substitution in the string values of spec data.

The forms, in any string *value* (mapping keys are left alone):

* ``${VAR}``: the variable's value; unset is an error, never an empty string
  (set but empty gives ``""``);
* ``${VAR:-default}``: the default when ``VAR`` is unset or empty;
* ``${VAR:?message}``: an error carrying ``message`` when ``VAR`` is unset or empty;
* ``$${``: a literal ``${`` (read leftmost first: ``$$${X}`` is ``$`` then a literal
  ``${X}``).

Names are ``[A-Za-z_][A-Za-z0-9_]*``; a default or message runs to the first ``}``.
A result is always a string (``"3"``, not ``3``): the schema decides what is valid.
A ``$`` not followed by ``{`` is kept as it is.

Nothing is copied unless something changes: strings without ``$`` and containers
with nothing substituted come back as the very same objects. Containers are
``dict`` and ``list`` (and their subclasses; a changed one comes back as a plain
``dict`` or ``list``); anything else is returned as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from statewise.spec.source import Path

__all__ = ["EnvError", "substitute"]

EnvError = tuple[Path, str, str | None, str | None]
"""One substitution error: the value's path, the message, what was expected, what came."""

# "$${" first so that an escaped opening is never taken for a reference; a "${" with
# no closing brace is matched last, as the error it is.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)(.*))?\Z", re.DOTALL)
_FORMS = "${NAME}, ${NAME:-default} or ${NAME:?message}"
_LEAF_TYPES = frozenset((int, float, bool, type(None)))


def substitute(data: Any, env: Mapping[str, str]) -> tuple[Any, list[EnvError]]:
    """A copy of ``data`` with references in string values replaced from ``env``.

    ``data`` is never changed. Errors are returned, not raised, each with the path
    of the string it is in so that the caller can locate it; a string with an error
    is kept unchanged in the result.
    """
    errors: list[EnvError] = []
    if isinstance(data, str):
        return (_string(data, env, [], errors) if "$" in data else data), errors
    if not _mentions_dollar(data):
        return data, errors
    return _walk(data, env, [], errors), errors


def _mentions_dollar(data: Any) -> bool:
    """Whether any string value inside ``data`` contains ``$``.

    The common case is a spec with no references at all: this bare scan, with no
    paths to keep, settles it in about half the time the full walk would take.
    """
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "$" in value:
                return True
            continue
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        for item in value:
            # Exact types first (isinstance costs a third more on a large spec);
            # subclasses of str, dict and list are pushed and sorted out above.
            kind = type(item)
            if kind is str:
                if "$" in item:
                    return True
            elif (
                kind is dict
                or kind is list
                or (kind not in _LEAF_TYPES and isinstance(item, str | dict | list))
            ):
                stack.append(item)
    return False


def _walk(value: Any, env: Mapping[str, str], path: list[Any], errors: list[EnvError]) -> Any:
    """A dict or list with substitutions made, or ``value`` itself when there were none.

    ``path`` is one list pushed and popped along the walk, turned into a tuple only
    for an error. A container is copied (once) only when one of its items changed.
    """
    is_dict = isinstance(value, dict)
    copied: Any = None
    for slot, item in value.items() if is_dict else enumerate(value):
        if isinstance(item, str):
            if "$" not in item:
                continue
            path.append(slot)
            new = _string(item, env, path, errors)
        elif isinstance(item, dict | list):
            path.append(slot)
            new = _walk(item, env, path, errors)
        else:
            continue
        path.pop()
        if new is not item:
            if copied is None:
                copied = dict(value) if is_dict else list(value)
            copied[slot] = new
    return value if copied is None else copied


def _string(text: str, env: Mapping[str, str], path: list[Any], errors: list[EnvError]) -> str:
    found: list[EnvError] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            found.append(
                (tuple(path), f"unterminated '${{' in {text!r}", _FORMS, text[match.start() :])
            )
            return token
        return _reference(body, env, path, found, token)

    result = _TOKEN.sub(replace, text)
    if found:
        errors.extend(found)
        return text
    # A string whose only "$" was not a reference comes back as itself.
    return text if result == text else result


def _reference(
    body: str, env: Mapping[str, str], path: list[Any], found: list[EnvError], token: str
) -> str:
    """The replacement for ``${body}``; on error, records it and keeps ``token``."""
    parsed = _BODY.match(body)
    if parsed is None:
        found.append((tuple(path), f"malformed reference {token!r}", _FORMS, token))
        return token
    name, operator, argument = parsed.groups()
    value = env.get(name)
    if operator is None:
        if value is None:
            found.append(
                (
                    tuple(path),
                    f"environment variable {name} is not set",
                    f"environment variable {name}",
                    None,
                )
            )
            return token
        return value
    if value:
        return value
    if operator == ":-":
        return str(argument)
    message = f"environment variable {name} is not set or empty"
    if argument:
        message = f"{message}: {argument}"
    found.append((tuple(path), message, f"environment variable {name}", value))
    return token
