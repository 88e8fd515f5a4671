"""The shared output helpers: quiet() (coremltools' warnings and bars) and one_line (messages)."""
from __future__ import annotations

import io
import logging
import warnings

from tqdm import tqdm

from milguard.errors import one_line
from milguard.progress import quiet


def _bar_output() -> str:
    out = io.StringIO()
    for _ in tqdm(range(3), file=out, desc="pass pipeline"):
        pass
    return out.getvalue()


def test_quiet_hides_bars_and_warnings_and_restores_them():
    ct_log = logging.getLogger("coremltools")
    level = ct_log.level
    with quiet():
        assert _bar_output() == ""
        assert ct_log.level == logging.ERROR
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("noise", RuntimeWarning)
        assert not seen
    assert "pass pipeline" in _bar_output()                 # tqdm is unpatched after the block
    assert ct_log.level == level
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("noise", RuntimeWarning)
    assert len(seen) == 1


def test_quiet_disabled_changes_nothing():
    with quiet(enabled=False):
        assert "pass pipeline" in _bar_output()


def test_one_line():
    assert one_line(ValueError("a\n  b\tc")) == "a b c"
    assert one_line(KeyError()) == "KeyError"
    missing = FileNotFoundError(2, "No such file or directory", "m.npz")
    assert one_line(missing) == "m.npz: No such file or directory"
    long = one_line(ValueError("x" * 500), limit=200)
    assert len(long) == 200 and long.endswith("...")

