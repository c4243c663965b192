"""Fixtures both example test modules use: the demo's machine, a fresh database path,
and a recorder of the actions run against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from statewise import StateMachine
from tests.examples.recording import Recorder, svc


@pytest.fixture(scope="module")
def machine() -> StateMachine:
    return svc.build_machine()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "orders.db"


@pytest.fixture
def rec(db_path: Path) -> Recorder:
    return Recorder(db_path)
