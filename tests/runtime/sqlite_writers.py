"""Writer processes for the SQLite contention test (importable by ``spawn`` children).

Each writer opens its own store on the shared file (so the first ones race to create
and migrate it), creates the counter entity if nobody has yet, then increments it
``rounds`` times, one small transaction each, through ``lock_entity`` and
``update_entity``. Any error ends the process with a traceback and a non-zero exit code.
"""

from __future__ import annotations

from multiprocessing.synchronize import Barrier

from statewise.runtime.sqlite import SQLiteStore
from statewise.runtime.store import EntityRow

MACHINE = "counter"
ENTITY = "the-one"


def increment(path: str, rounds: int, start: Barrier, synchronous: str) -> None:
    start.wait(timeout=60)  # every writer opens the (missing) file at the same moment
    with SQLiteStore(path, synchronous=synchronous) as store:
        with store.transaction() as tx:
            tx.insert_entity(EntityRow(MACHINE, ENTITY, "COUNTING", {"count": 0}, 0, tx.now()))
        for _ in range(rounds):
            with store.transaction() as tx:
                row = tx.lock_entity(MACHINE, ENTITY)
                if row is None:
                    raise AssertionError("the counter entity vanished")
                after = EntityRow(
                    MACHINE,
                    ENTITY,
                    row.state,
                    {"count": row.context["count"] + 1},
                    row.version + 1,
                    tx.now(),
                )
                if not tx.update_entity(after, expected_version=row.version):
                    raise AssertionError(f"version {row.version} moved under the lock")
