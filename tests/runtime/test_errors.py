"""The runtime's errors: what they say, what they carry, and that they survive pickling."""

from __future__ import annotations

import pickle

import pytest

from statewise.errors import StatewiseError
from statewise.runtime.errors import (
    ConcurrencyError,
    EntityExistsError,
    EntityNotFoundError,
    RuntimeStoreError,
    SchemaVersionError,
    StoreURLError,
    UnknownMachineError,
)

URL = "sqlite:////srv/app/orders.db"

ERRORS = [
    StoreURLError("mysql://u:***@h/db", "unknown scheme 'mysql'", ("sqlite", "postgresql")),
    SchemaVersionError(URL, 0, 1),
    SchemaVersionError(URL, 2, 5),
    SchemaVersionError(URL, 7, 5),
    EntityNotFoundError("orders", "o-1"),
    EntityExistsError("orders", "o-1"),
    UnknownMachineError("invoices"),
    ConcurrencyError("orders", "o-1", 3),
    ConcurrencyError("orders", "o-1", 3, 4),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_is_a_statewise_error_and_pickles_whole(error: RuntimeStoreError) -> None:
    assert isinstance(error, RuntimeStoreError)
    assert isinstance(error, StatewiseError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)


def test_the_messages() -> None:
    texts = [str(e) for e in ERRORS]
    assert texts == [
        "cannot open store 'mysql://u:***@h/db': unknown scheme 'mysql'",
        f"the store {URL} has no statewise schema; this version of statewise needs schema "
        f"version 1: run `statewise db upgrade --store {URL}` (or open the store with "
        "migrate=True)",
        f"the store {URL} is at schema version 2; this version of statewise needs schema "
        f"version 5: run `statewise db upgrade --store {URL}` (or open the store with "
        "migrate=True)",
        f"the store {URL} is at schema version 7, but this version of statewise knows schema "
        "versions up to 5: upgrade statewise",
        "no entity 'o-1' of machine 'orders'",
        "entity 'o-1' of machine 'orders' already exists",
        "unknown machine 'invoices'",
        "entity 'o-1' of machine 'orders' changed concurrently: expected version 3",
        "entity 'o-1' of machine 'orders' changed concurrently: expected version 3, found "
        "version 4",
    ]


def test_the_standard_bases() -> None:
    assert isinstance(StoreURLError("x", "y"), ValueError)
    assert isinstance(EntityNotFoundError("m", "e"), LookupError)
    assert isinstance(UnknownMachineError("m"), LookupError)
    error = ConcurrencyError("m", "e", 1, None)
    assert (error.machine, error.entity_id, error.expected_version, error.found_version) == (
        "m",
        "e",
        1,
        None,
    )
