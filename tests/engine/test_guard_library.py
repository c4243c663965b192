"""The built-in guard factories and the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from statewise import Event
from statewise.engine.guards import guard_arity
from statewise.guards import (
    ContextGuard,
    GuardRegistry,
    all_of,
    any_of,
    equals,
    greater_or_equal,
    greater_than,
    has_key,
    in_list,
    is_not_none,
    is_truthy,
    less_or_equal,
    less_than,
    negate,
    none_of,
    not_equals,
    not_in_list,
)

CTX: dict[str, Any] = {"qty": 5, "side": "buy", "none": None, "zero": 0, "flag": True}

TABLE = [
    (equals("side", "buy"), True),
    (equals("side", "sell"), False),
    (equals("missing", None), False),
    (equals("none", None), True),
    (not_equals("side", "sell"), True),
    (not_equals("side", "buy"), False),
    (not_equals("missing", 1), False),
    (greater_than("qty", 4), True),
    (greater_than("qty", 5), False),
    (greater_than("none", 1), False),
    (greater_than("missing", 1), False),
    (less_than("qty", 6), True),
    (less_than("qty", 5), False),
    (greater_or_equal("qty", 5), True),
    (greater_or_equal("qty", 6), False),
    (less_or_equal("qty", 5), True),
    (less_or_equal("qty", 4), False),
    (in_list("side", ["buy", "sell"]), True),
    (in_list("side", ("short",)), False),
    (in_list("missing", [None]), False),
    (not_in_list("side", ["short"]), True),
    (not_in_list("side", ["buy"]), False),
    (not_in_list("missing", ["x"]), False),
    (has_key("none"), True),
    (has_key("missing"), False),
    (is_truthy("flag"), True),
    (is_truthy("zero"), False),
    (is_truthy("missing"), False),
    (is_not_none("zero"), True),
    (is_not_none("none"), False),
    (is_not_none("missing"), False),
    (all_of(equals("side", "buy"), greater_than("qty", 1)), True),
    (all_of(equals("side", "buy"), greater_than("qty", 10)), False),
    (any_of(equals("side", "sell"), greater_than("qty", 1)), True),
    (any_of(equals("side", "sell"), greater_than("qty", 10)), False),
    (none_of(equals("side", "sell"), greater_than("qty", 10)), True),
    (none_of(equals("side", "buy")), False),
    (negate(equals("side", "buy")), False),
    (negate(equals("missing", 1)), True),
]


@pytest.mark.parametrize(("guard", "expected"), TABLE, ids=[repr(g) for g, _ in TABLE])
def test_builtin_guards(guard: ContextGuard, expected: bool) -> None:
    assert guard(CTX) is expected


def test_guards_have_readable_reprs() -> None:
    assert repr(equals("side", "buy")) == "equals('side', 'buy')"
    assert repr(greater_than("qty", 4)) == "greater_than('qty', 4)"
    assert repr(is_truthy("flag")) == "is_truthy('flag')"
    assert repr(all_of(has_key("a"), negate(in_list("b", (1, 2))))) == (
        "all_of(has_key('a'), negate(in_list('b', [1, 2])))"
    )


def test_incomparable_values_raise() -> None:
    with pytest.raises(TypeError):
        greater_than("side", 3)(CTX)


@pytest.mark.parametrize("combinator", [all_of, any_of, none_of])
def test_combinators_need_guards(combinator: Callable[..., ContextGuard]) -> None:
    with pytest.raises(ValueError, match="at least one guard"):
        combinator()
    with pytest.raises(TypeError, match="takes guards"):
        combinator("not a guard")


def two(context: Mapping[str, Any], event: Event) -> bool:
    return True


def one_with_default(ctx: Mapping[str, Any], extra: int = 1) -> bool:
    return True


def variadic(*args: Any) -> bool:
    return True


def three(a: Any, b: Any, c: Any) -> bool:
    return True


def nothing() -> bool:
    return True


@pytest.mark.parametrize(
    ("fn", "arity"),
    [
        (lambda ctx: True, 1),
        (two, 2),
        (one_with_default, 1),
        (variadic, 1),
        (equals("a", 1), 1),
        (len, 1),
    ],
)
def test_guard_arity(fn: Callable[..., bool], arity: int) -> None:
    assert guard_arity(fn) == arity


@pytest.mark.parametrize("fn", [three, nothing, "not callable"])
def test_guard_arity_rejects(fn: Any) -> None:
    with pytest.raises(TypeError):
        guard_arity(fn)


def test_registry_forms() -> None:
    reg = GuardRegistry({"a": lambda ctx: True})

    @reg.register
    def by_name(ctx: Mapping[str, Any]) -> bool:
        return True

    @reg.register("named")
    def other(ctx: Mapping[str, Any]) -> bool:
        return False

    reg.register("direct", equals("x", 1))
    assert reg.names == frozenset({"a", "by_name", "named", "direct"})
    assert reg.has("named") and "named" in reg and not reg.has("other")
    assert reg.get("named") is other and by_name({}) is True
    assert sorted(reg) == sorted(reg.names) and len(reg) == 4
    assert "direct" in repr(reg)


def test_registry_refuses_silent_replacement_and_bad_names() -> None:
    reg = GuardRegistry({"a": lambda ctx: True})
    with pytest.raises(ValueError, match="registered already"):
        reg.register("a", lambda ctx: False)
    reg.register("a", lambda ctx: False, replace=True)
    replaced: Callable[[dict[str, Any]], bool] = reg.get("a")  # type: ignore[assignment]
    assert replaced({}) is False
    with pytest.raises(ValueError, match="identifier"):
        reg.register("not-valid", lambda ctx: True)
    with pytest.raises(KeyError, match="no guard named 'b'; registered: a"):
        reg.get("b")
