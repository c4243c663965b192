"""Guards for users: the registry and the built-in guard factories.

from statewise.guards import GuardRegistry, greater_or_equal

guards = GuardRegistry()
guards.register("is_full_fill", lambda ctx: ctx["fill_qty"] >= ctx["order_qty"])
guards.register("big_order", greater_or_equal("order_qty", 1000))
"""

from statewise.engine.guard_library import (
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
from statewise.engine.guards import ContextGuard, EventGuard, GuardFunction, GuardRegistry

__all__ = [
    "ContextGuard",
    "EventGuard",
    "GuardFunction",
    "GuardRegistry",
    "all_of",
    "any_of",
    "equals",
    "greater_or_equal",
    "greater_than",
    "has_key",
    "in_list",
    "is_not_none",
    "is_truthy",
    "less_or_equal",
    "less_than",
    "negate",
    "none_of",
    "not_equals",
    "not_in_list",
]
