"""Markers shared by test modules.

``needs_dot``: tests that render real SVG/PNG through Graphviz's ``dot``. Without
``dot`` they are skipped on a developer's machine, but never in CI: ``.ci/run``
installs Graphviz and sets ``CI``, and with ``CI`` set the marker does not skip, so a
missing ``dot`` fails those tests loudly instead of passing them silently.
"""

from __future__ import annotations

import os
import shutil

import pytest

HAS_DOT = shutil.which("dot") is not None

needs_dot = pytest.mark.skipif(
    not HAS_DOT and not os.environ.get("CI"),
    reason="Graphviz's dot is not installed (apt-get install graphviz); CI never skips this",
)
