"""What every benchmark report records about where it ran: git state and load."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["git", "loadavg", "source_state"]

HERE = Path(__file__).resolve().parent


def git(*args: str) -> str | None:
    """``git args...`` run in this checkout: its output, or ``None`` when it fails."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_state() -> dict[str, object]:
    """The commit measured, and whether src/ had uncommitted changes (which make the
    commit an incomplete description of the code that ran)."""
    return {
        "git_commit": git("rev-parse", "HEAD") or None,
        "src_changed_since_commit": bool(git("status", "--porcelain", "--", "src")),
    }


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, or ``n/a``."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
