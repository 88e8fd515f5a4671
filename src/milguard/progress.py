"""Progress lines for long runs (loading a model, calibration, fixing), written to stderr.

    progress = Progress()                    # enabled when stderr is a terminal
    with progress.step("loading model.mlpackage"):
        ...

prints ``milguard: loading model.mlpackage ...`` when the step starts and ``done (1.4 s)`` (or
``failed``) when it ends. Off when stderr is not a TTY (CI logs, pipes) unless ``force=True``;
stdout is never touched, so JSON written to stdout stays clean.

``quiet()`` keeps coremltools' own output (log warnings, Python warnings and the tqdm bars of its
pass pipeline and torch frontend, one per conversion) off stderr while it is entered.
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
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


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """No coremltools log warnings, no Python warnings and no tqdm progress bars inside the block;
    the logger level, the warning filters and tqdm are restored after. ``enabled=False`` (a
    ``--debug`` run) changes nothing."""
    if not enabled:
        yield
        return
    ct_log = logging.getLogger("coremltools")
    level = ct_log.level
    ct_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _no_tqdm_bars():
            warnings.simplefilter("ignore")
            yield
    finally:
        ct_log.setLevel(level)


@contextmanager
def _no_tqdm_bars() -> Iterator[None]:
    """Every tqdm bar created inside is disabled (coremltools imports ``tqdm.tqdm`` itself, so
    the class is patched, and unpatched after)."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield
        return
    init = tqdm.__init__

    def disabled(self, *args, **kwargs):
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    tqdm.__init__ = disabled
    try:
        yield
    finally:
        tqdm.__init__ = init
