"""Machines and workloads for the benchmarks; everything is seeded, so runs compare.

A workload is a pre-built list of :class:`Item` (state, trigger, payload, context).
Each implementation gets the same items, converted once into its own event type
before any timing starts.

Guards come in two shapes with the same logic: ``MAPPING_GUARDS`` take one merged
mapping (how statewise and pygubernator call a one-parameter guard) and
``FLOOR_GUARDS`` take ``(context, payload)`` and look in the context first.
Context keys and payload keys never clash in these workloads, so "context wins"
(statewise) and "payload wins" (pygubernator) give the same answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from bench_floor import Floor, FloorGuard

__all__ = [
    "FLOOR_GUARDS",
    "MAPPING_GUARDS",
    "ORDER_SPEC_PATH",
    "Item",
    "Spec",
    "Workload",
    "generated_spec",
    "generated_workload",
    "order_spec",
    "order_workload",
    "write_yaml",
]

Spec = dict[str, Any]
MappingGuard = Callable[[Mapping[str, Any]], bool]

ORDER_SPEC_PATH = Path(__file__).resolve().parent.parent / "examples" / "order_fsm.yaml"
INVALID_SHARE = 0.20  # wanted share of events the machine rejects
TRIGGERS = tuple(f"ev_{i}" for i in range(8))
GENERATED_GUARDS = ("amount_ok", "has_quota", "tier_ok")


@dataclass(frozen=True, slots=True)
class Item:
    state: str
    trigger: str
    payload: dict[str, Any]
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    spec: Spec
    items: list[Item]

    @property
    def n_states(self) -> int:
        return len(self.spec["states"])

    @property
    def n_transitions(self) -> int:
        return len(self.spec.get("transitions") or ())


# -- guards --------------------------------------------------------------------------


def _is_full_fill(m: Mapping[str, Any]) -> bool:
    return bool(m["fill_qty"] >= m["order_qty"])


def _is_partial_fill(m: Mapping[str, Any]) -> bool:
    return bool(0 < m["fill_qty"] < m["order_qty"])


def _amount_ok(m: Mapping[str, Any]) -> bool:
    return bool(m["amount"] >= 50)


def _has_quota(m: Mapping[str, Any]) -> bool:
    return bool(m["quota"] > 0)


def _tier_ok(m: Mapping[str, Any]) -> bool:
    return bool(m["tier"] >= 2)


MAPPING_GUARDS: dict[str, MappingGuard] = {
    "is_full_fill": _is_full_fill,
    "is_partial_fill": _is_partial_fill,
    "amount_ok": _amount_ok,
    "has_quota": _has_quota,
    "tier_ok": _tier_ok,
}


def _floor_full_fill(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    fill = c["fill_qty"] if "fill_qty" in c else p["fill_qty"]
    qty = c["order_qty"] if "order_qty" in c else p["order_qty"]
    return bool(fill >= qty)


def _floor_partial_fill(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    fill = c["fill_qty"] if "fill_qty" in c else p["fill_qty"]
    qty = c["order_qty"] if "order_qty" in c else p["order_qty"]
    return bool(0 < fill < qty)


def _floor_amount_ok(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    return bool((c["amount"] if "amount" in c else p["amount"]) >= 50)


def _floor_has_quota(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    return bool((c["quota"] if "quota" in c else p["quota"]) > 0)


def _floor_tier_ok(c: Mapping[str, Any], p: Mapping[str, Any]) -> bool:
    return bool((c["tier"] if "tier" in c else p["tier"]) >= 2)


FLOOR_GUARDS: dict[str, FloorGuard] = {
    "is_full_fill": _floor_full_fill,
    "is_partial_fill": _floor_partial_fill,
    "amount_ok": _floor_amount_ok,
    "has_quota": _floor_has_quota,
    "tier_ok": _floor_tier_ok,
}


# -- the order machine ------------------------------------------------------------------


def order_spec() -> Spec:
    with ORDER_SPEC_PATH.open(encoding="utf-8") as f:
        data: Spec = yaml.safe_load(f)
    return data


# Where orders are when an event arrives, and what arrives there (weights). Late and
# out-of-order messages (a fill for a canceled order, a second ack) are the invalid ones.
_ORDER_STATES: dict[str, int] = {
    "PENDING_NEW": 20,
    "OPEN": 32,
    "PARTIALLY_FILLED": 32,
    "FILLED": 5,
    "CANCELED": 2,
    "REJECTED": 1,
    "TIMED_OUT": 1,
    "ERROR": 3,
}
_WORKING = {
    "execution_report": 65,
    "amend_price": 12,
    "cancel_requested": 12,
    "order_acknowledged": 5,
    "order_rejected": 2,
    "system_error": 2,
}
_FINAL = {"execution_report": 50, "cancel_requested": 40, "order_acknowledged": 10}
_ORDER_EVENTS: dict[str, dict[str, int]] = {
    "PENDING_NEW": {
        "order_acknowledged": 70,
        "order_rejected": 8,
        "cancel_requested": 8,
        "execution_report": 10,
        "system_error": 2,
        "operator_cancel": 2,
    },
    "OPEN": _WORKING,
    "PARTIALLY_FILLED": _WORKING,
    "FILLED": _FINAL,
    "CANCELED": _FINAL,
    "REJECTED": _FINAL,
    "TIMED_OUT": _FINAL,
    "ERROR": {"operator_cancel": 70, "system_error": 10, "execution_report": 20},
}


def _pick(rng: random.Random, weights: Mapping[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def order_workload(n_events: int, seed: int) -> Workload:
    rng = random.Random(f"order-{seed}")
    items: list[Item] = []
    for n in range(n_events):
        state = _pick(rng, _ORDER_STATES)
        trigger = _pick(rng, _ORDER_EVENTS[state])
        qty = rng.choice((100, 200, 500, 1000))
        context: dict[str, Any] = {"order_qty": qty, "account": f"ACC-{n % 97}"}
        payload: dict[str, Any]
        if trigger == "execution_report":
            roll = rng.random()  # full fill, partial fill, or an empty (rejected) report
            fill = qty if roll < 0.30 else (rng.randrange(1, qty) if roll < 0.92 else 0)
            payload = {"fill_qty": fill, "price": 100 + rng.randrange(50)}
        elif trigger == "amend_price":
            payload = {"new_price": 100 + rng.randrange(50)}
        elif trigger == "order_acknowledged":
            payload = {"exchange_id": f"X{rng.randrange(10**6)}"}
        else:
            payload = {"reason": "by request"}
        items.append(Item(state, trigger, payload, context))
    return Workload("order_fsm", order_spec(), items)


# -- generated machines ---------------------------------------------------------------------


def generated_spec(n_states: int, seed: int) -> Spec:
    """``n_states`` states, about 3 transitions each, a third of them guarded.

    State 0 is initial; a few others (1 for 10 states, 4 for 10,000) are terminal.
    Each live state has a guarded transition on one trigger, an unguarded one on a
    second, and a third that is either the unguarded fallback of the first trigger
    (so a failed guard falls through, like a partial fill after a full fill) or a
    plain transition on a third trigger. Names fit both statewise and the seed.
    """
    rng = random.Random(f"spec-{n_states}-{seed}")
    names = [f"S{i:05d}" for i in range(n_states)]
    terminal = set(rng.sample(range(1, n_states), max(1, len(str(n_states)) - 1)))
    states: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        state: dict[str, Any] = {"name": name}
        if i == 0:
            state["type"] = "initial"
        elif i in terminal:
            state["type"] = "terminal"
        if rng.random() < 0.5:
            state["on_enter"] = [f"enter_{i % 7}"]
        if i not in terminal and rng.random() < 0.3:
            state["on_exit"] = [f"exit_{i % 5}"]
        states.append(state)
    transitions: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        if i in terminal:
            continue
        first, second, third = rng.sample(TRIGGERS, 3)
        if rng.random() < 0.5:
            third = first
        transitions.append(
            {
                "trigger": first,
                "source": name,
                "dest": rng.choice(names),
                "guards": [rng.choice(GENERATED_GUARDS)],
                "actions": [f"act_{rng.randrange(20)}"],
            }
        )
        for trigger in (second, third):
            transitions.append(
                {
                    "trigger": trigger,
                    "source": name,
                    "dest": rng.choice(names),
                    "actions": [f"act_{rng.randrange(20)}"],
                }
            )
    return {
        "meta": {"machine_name": f"generated_{n_states}", "version": "1.0.0", "strict_mode": True},
        "states": states,
        "transitions": transitions,
    }


def generated_workload(spec: Spec, n_events: int, seed: int) -> Workload:
    """Events at states drawn uniformly; about ``INVALID_SHARE`` of them are rejected.

    Every event at a terminal state is invalid; elsewhere an event is made invalid
    on purpose with the probability that brings the total to the wanted share (a
    trigger the state has no transition for, or data that fails a guard with no
    fallback). Valid events get data that passes the guards on their way.
    """
    n = len(spec["states"])
    rng = random.Random(f"work-{n}-{seed}")
    floor = Floor(spec, FLOOR_GUARDS)
    names = [s["name"] for s in spec["states"]]
    rules: dict[str, dict[str, bool]] = {}  # state -> trigger -> every candidate guarded?
    for t in spec["transitions"]:
        by_trigger = rules.setdefault(t["source"], {})
        by_trigger[t["trigger"]] = by_trigger.get(t["trigger"], True) and bool(t.get("guards"))
    terminal_share = sum(1 for s in spec["states"] if s.get("type") == "terminal") / n
    make_invalid = max(0.0, (INVALID_SHARE - terminal_share) / (1.0 - terminal_share))
    items: list[Item] = []
    for _ in range(n_events):
        state = rng.choice(names)
        payload: dict[str, Any] = {"amount": rng.randrange(100), "ref": rng.randrange(10**6)}
        context: dict[str, Any] = {"quota": rng.randrange(4), "tier": rng.randrange(4)}
        here = rules.get(state)
        if not here:
            trigger = rng.choice(TRIGGERS)
        elif rng.random() < make_invalid:
            guarded_only = [t for t, all_guarded in here.items() if all_guarded]
            if guarded_only and rng.random() < 0.3:
                trigger = rng.choice(guarded_only)
                payload["amount"] = rng.randrange(50)
                context["quota"] = 0
                context["tier"] = rng.randrange(2)
            else:
                trigger = rng.choice([t for t in TRIGGERS if t not in here])
        else:
            trigger = rng.choice(list(here))
            if not floor.process(state, (trigger, payload), context)[0]:
                payload["amount"] = 50 + rng.randrange(50)
                context["quota"] = 1 + rng.randrange(3)
                context["tier"] = 2 + rng.randrange(2)
        items.append(Item(state, trigger, payload, context))
    return Workload(f"generated_{n}", spec, items)


def write_yaml(spec: Spec, path: Path) -> int:
    """Write ``spec`` as YAML; returns the file's size in bytes."""
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
