"""Progress lines for long runs (loading a model, calibration, fixing), written to stderr.

    progress = Progress()                    # enabled when stderr is a terminal
    with progress.step("loading model.mlpackage"):
        ...

prints ``milguard: loading model.mlpackage ...`` when the step starts and ``done (1.4 s)`` (or
``failed``) when it ends. Off when stderr is not a TTY (CI logs, pipes) unless ``force=True``;
stdout is never touched, so JSON written to stdout stays clean.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class Progress:
    def __init__(self, enabled: bool | None = None, *, force: bool = False, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = force or _isatty(self.stream)
        self.enabled = bool(enabled)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Announce ``what``, run the body, then report its wall time (or that it failed)."""
        if not self.enabled:
            yield
            return
        self._write(f"milguard: {what} ... ")
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._write("failed\n")
            raise
        self._write(f"done ({time.perf_counter() - start:.1f} s)\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
