"""Images from DOT text, by Graphviz's own ``dot`` program.

``dot`` is an operating-system package, not a Python one, so it is looked up on
``PATH`` when an image is asked for, never at import: text formats (Mermaid, DOT)
need nothing installed. It runs without a shell, reading the DOT text on stdin.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Literal

from statewise.errors import StatewiseError

__all__ = ["MISSING_DOT", "ImageFormat", "RenderError", "render_image"]

ImageFormat = Literal["svg", "png"]

MISSING_DOT = (
    "Graphviz's dot program is not installed "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
)


class RenderError(StatewiseError):
    """A diagram could not be drawn: ``dot`` is missing, failed or took too long."""


def render_image(
    dot_text: str,
    format: ImageFormat,
    *,
    which: Callable[[str], str | None] = shutil.which,
    timeout: float | None = 60.0,
) -> bytes:
    """The image ``dot -T<format>`` draws from ``dot_text``.

    ``which`` finds the program (``shutil.which``; tests pass their own). Raises
    :class:`RenderError` naming the package to install when there is no ``dot``, with
    dot's own message when it fails, and when it runs past ``timeout`` seconds.
    """
    if format not in ("svg", "png"):
        raise ValueError(f"image format must be 'svg' or 'png', got {format!r}")
    program = which("dot")
    if program is None:
        raise RenderError(MISSING_DOT)
    command = [program, f"-T{format}"]
    try:
        done = subprocess.run(
            command, input=dot_text.encode(), capture_output=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{program} -T{format} ran for more than {timeout:g} s") from exc
    except OSError as exc:
        raise RenderError(f"could not run {program}: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no message"
        raise RenderError(f"{program} -T{format} failed (exit status {done.returncode}): {message}")
    return done.stdout
