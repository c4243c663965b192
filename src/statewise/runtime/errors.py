"""What the durable runtime and its stores raise.

Every class here is a :class:`RuntimeStoreError` (so a :class:`StatewiseError`), and
each keeps the values it names as attributes. They all pickle and unpickle with those
attributes intact: worker processes hand errors back to their parent.

* a store URL nobody can open: :class:`StoreURLError` (also a ``ValueError``);
* a schema the code cannot run against: :class:`SchemaVersionError`;
* an entity that is missing or already there: :class:`EntityNotFoundError` (also a
  ``LookupError``), :class:`EntityExistsError`;
* an event for a machine the runtime does not serve: :class:`UnknownMachineError`;
* a write that lost an optimistic version check: :class:`ConcurrencyError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from statewise.errors import StatewiseError

__all__ = [
    "ConcurrencyError",
    "EntityExistsError",
    "EntityNotFoundError",
    "RuntimeStoreError",
    "SchemaVersionError",
    "StoreURLError",
    "UnknownMachineError",
]


class RuntimeStoreError(StatewiseError):
    """Base of every error the durable runtime and its stores raise."""


class StoreURLError(RuntimeStoreError, ValueError):
    """A store URL that cannot be opened: an unknown scheme or a malformed URL.

    ``url`` is the URL as given, except that a password in it is replaced by ``***``
    (messages end up in logs); ``known`` lists the schemes that can be opened.
    """

    def __init__(self, url: str, reason: str, known: Iterable[str] = ()) -> None:
        self.url = url
        self.reason = reason
        self.known: tuple[str, ...] = tuple(known)
        super().__init__(f"cannot open store {url!r}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.url, self.reason, self.known))


class SchemaVersionError(RuntimeStoreError):
    """The store's schema is not the version this code runs against.

    ``found`` is the store's version (0: no statewise schema at all), ``known`` the
    newest version the code knows (``SCHEMA_VERSION``). A store *newer* than the code
    is always refused: an old process must not write rows it does not understand. A
    store *older* than the code is refused only when migrations were turned off
    (``migrate=False``); the message says to run ``statewise db upgrade``.
    """

    def __init__(self, url: str, found: int, known: int) -> None:
        self.url = url
        self.found = found
        self.known = known
        if found > known:
            message = (
                f"the store {url} is at schema version {found}, but this version of "
                f"statewise knows schema versions up to {known}: upgrade statewise"
            )
        else:
            what = "has no statewise schema" if found == 0 else f"is at schema version {found}"
            message = (
                f"the store {url} {what}; this version of statewise needs schema version "
                f"{known}: run `statewise db upgrade --store {url}` (or open the store "
                "with migrate=True)"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.url, self.found, self.known))


class EntityNotFoundError(RuntimeStoreError, LookupError):
    """No entity ``entity_id`` of machine ``machine`` is stored."""

    def __init__(self, machine: str, entity_id: str) -> None:
        self.machine = machine
        self.entity_id = entity_id
        super().__init__(f"no entity {entity_id!r} of machine {machine!r}")

    def __str__(self) -> str:
        # LookupError subclasses such as KeyError repr their message; this one reads as text.
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.machine, self.entity_id))


class EntityExistsError(RuntimeStoreError):
    """Entity ``entity_id`` of machine ``machine`` already exists; it was not replaced."""

    def __init__(self, machine: str, entity_id: str) -> None:
        self.machine = machine
        self.entity_id = entity_id
        super().__init__(f"entity {entity_id!r} of machine {machine!r} already exists")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.machine, self.entity_id))


class UnknownMachineError(RuntimeStoreError, LookupError):
    """An event or entity names machine ``machine``, which the runtime does not serve."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        super().__init__(f"unknown machine {machine!r}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.machine,))


class ConcurrencyError(RuntimeStoreError):
    """An optimistic version check failed: the entity changed since it was read.

    ``expected_version`` is the version the writer read; ``found_version`` the stored
    one when known (``None``: not read, or the entity is gone). Nothing was written.
    """

    def __init__(
        self,
        machine: str,
        entity_id: str,
        expected_version: int,
        found_version: int | None = None,
    ) -> None:
        self.machine = machine
        self.entity_id = entity_id
        self.expected_version = expected_version
        self.found_version = found_version
        found = "" if found_version is None else f", found version {found_version}"
        super().__init__(
            f"entity {entity_id!r} of machine {machine!r} changed concurrently: expected "
            f"version {expected_version}{found}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.machine, self.entity_id, self.expected_version, self.found_version),
        )
