"""Project settings: the ``[tool.milguard]`` table of ``pyproject.toml``.

``milguard audit``, ``milguard fix`` and :func:`milguard.testing.assert_fp16_safe` read the table
of the nearest ``pyproject.toml`` that has one, looking from the current directory upwards (as
ruff and pytest do; a ``pyproject.toml`` without the table is passed over). The keys mirror the
command-line options::

    [tool.milguard]
    fail-on = "overflow"                       # never | overflow | any
    ignore = ["causal_mask*", "accumulation"]  # KIND, GLOB or KIND:GLOB, as --ignore
    input-range = ["x=-30:30"]                 # NAME=LO:HI, as --input-range
    calibration = ["tests/data/batch0.npz"]    # relative to the pyproject.toml
    ane-limits = true
    compute-units = "CPU_AND_NE"
    function = "main"

The command line wins: a scalar option given there replaces the file's, ``--ignore`` rules add to
the file's, an ``--input-range`` replaces the file's range for that input, and ``--calibration``
replaces the file's samples. An unknown key, a value of the wrong type, a bad entry or a file that
is not TOML is a one-line error naming the file.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MilguardError

if sys.version_info >= (3, 11):
    import tomllib
else:                                    # pragma: no cover - the tomli backport of Python 3.11's tomllib
    import tomli as tomllib

FILE = "pyproject.toml"
TABLE = "milguard"
FAIL_ON_LEVELS = ("overflow", "any", "never")     # what each level gates on: milguard.testing.FAIL_ON


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# key -> (check, what the check wants)
KEYS: dict[str, tuple[Any, str]] = {
    "fail-on": (lambda v: isinstance(v, str), "a string"),
    "ignore": (_strings, "a list of strings"),
    "input-range": (_strings, "a list of strings NAME=LO:HI"),
    "calibration": (_strings, "a list of .npz paths"),
    "ane-limits": (lambda v: isinstance(v, bool), "true or false"),
    "compute-units": (lambda v: isinstance(v, str), "a string"),
    "function": (lambda v: isinstance(v, str), "a string"),
}


@dataclass(frozen=True)
class Settings:
    """The ``[tool.milguard]`` table of ``path`` (``path`` None: no table was found)."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def fail_on(self) -> str | None:
        return self.values.get("fail-on")

    @property
    def ignore(self) -> tuple[str, ...]:
        return tuple(self.values.get("ignore", ()))

    @property
    def input_range(self) -> tuple[str, ...]:
        return tuple(self.values.get("input-range", ()))

    def input_ranges(self) -> dict[str, tuple[float, float]]:
        from .input_ranges import parse_input_ranges

        return parse_input_ranges(",".join(self.input_range))

    def calibration_paths(self) -> list[str]:
        """The calibration files, resolved against the folder of the ``pyproject.toml``."""
        base = self.path.parent if self.path is not None else Path()
        return [str(base / p) for p in self.values.get("calibration", ())]

    def audit_options(self) -> dict[str, Any]:
        """The keys that are options of :func:`milguard.audit` (``ane_limits``, ...)."""
        return {key.replace("-", "_"): self.values[key] for key in ("ane-limits", "compute-units", "function")
                if key in self.values}


def find_config(start: str | Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.milguard]`` table, from ``start`` (default:
    the current directory) upwards."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE
        if candidate.is_file() and TABLE in _read(candidate).get("tool", {}):
            return candidate
    return None


def load_config(path: str | Path | None = None) -> Settings:
    """The checked settings of ``path``, or of :func:`find_config` when ``path`` is None."""
    path = Path(path) if path is not None else find_config()
    if path is None:
        return Settings()
    if not path.is_file():
        raise MilguardError(f"{path}: no such configuration file")
    table = _read(path).get("tool", {}).get(TABLE, {})
    if not isinstance(table, dict):
        raise MilguardError(f"{path}: [tool.{TABLE}] must be a table")
    for key, value in table.items():
        if key not in KEYS:
            raise MilguardError(f"{path}: unknown key '{key}' in [tool.{TABLE}] (known: {', '.join(KEYS)})")
        check, wanted = KEYS[key]
        if not check(value):
            raise MilguardError(f"{path}: [tool.{TABLE}] {key} must be {wanted}, got {value!r}")
    settings = Settings(path=path, values=dict(table))
    _check_entries(settings)
    return settings


def _check_entries(s: Settings) -> None:
    """Entries that can be checked without the model: levels, rules, ranges, compute units."""
    from .analysis.findings import parse_ignores
    from .compute_units import COMPUTE_UNITS

    try:
        if s.fail_on is not None and s.fail_on not in FAIL_ON_LEVELS:
            raise MilguardError(f"fail-on must be one of {', '.join(FAIL_ON_LEVELS)}, got '{s.fail_on}'")
        units = s.values.get("compute-units")
        if units is not None and units not in COMPUTE_UNITS:
            raise MilguardError(f"compute-units must be one of {', '.join(COMPUTE_UNITS)}, got '{units}'")
        parse_ignores(s.ignore)
        for entry in s.input_range:
            if "=" not in entry or ":" not in entry.partition("=")[2] or "," in entry:
                raise MilguardError(f"bad input-range '{entry}': expected NAME=LO:HI, e.g. x=-30:30")
        s.input_ranges()
    except MilguardError as exc:
        raise MilguardError(f"{s.path}: [tool.{TABLE}] {exc}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise MilguardError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise MilguardError(f"{path}: cannot read ({exc.strerror})") from None
