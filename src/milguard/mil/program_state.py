"""milguard's per-program state, kept beside coremltools' ``Program`` objects, never on them.

coremltools creates a new pass instance for every pass it runs, so what one milguard pass learns
(the regions it decided, the findings or placements it computed) must outlive the pass. It is kept
here, in a side store keyed weakly by the program: an entry disappears with its program, and
milguard never writes attributes onto a foreign object.

    program_state(program)["placement"] = {...}   # a plain dict per program, created on first use
    program_state(program).get("findings")        # None when nothing was recorded
    has_program_state(program)                     # whether anything was ever recorded for it
"""
from __future__ import annotations

import weakref
from typing import Any

_STORE: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def program_state(program: Any) -> dict[str, Any]:
    """The dict of milguard's records for ``program`` (created empty on first use)."""
    record = _STORE.get(program)
    if record is None:
        record = _STORE[program] = {}
    return record


def has_program_state(program: Any) -> bool:
    """Whether any milguard record exists for ``program``."""
    return program in _STORE
