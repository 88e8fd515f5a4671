"""What the precision passes do, and from which evidence: options, parsed once, shared by the
pipeline, ``keep_fp32`` / ``milguard fix`` and ``milguard audit``.

Pass options reach coremltools passes as attribute values (strings by convention; the calibration
data and the pipeline reference are passed as objects), so ``Options`` converts both ways.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from typing import Any

from ..choices import ACCUMULATE, NATIVE, REMEDY_MODES, SCOPES
from ..errors import MilguardError
from ..input_ranges import parse_input_ranges
from ..mil import module_path
from ..pattern import Match



@dataclass(frozen=True)
class Options:
    """``remedy``: "auto" (default) — a region at risk gets the cheapest remedy that removes the risk
    (an fp16-safe rescale rewrite or an fp32 island, by the placement cost model for
    ``compute_units``), a region the evidence shows safe stays fp16; "rescale" — every region with a
    rewrite is rewritten, the others are decided as under "auto"; "fp32" — every decomposed region
    becomes an fp32 island, native ops when at risk (milguard's first behaviour).
    ``calibration``: samples (an .npz path, a dict of arrays, or a list of them) whose observed values
    decide the risk; without them, static bounds from ``input_ranges`` ("x=-300:300,mask=0:1"), a
    float input without a range being unbounded. ``compute_units``: ALL (default), CPU_AND_NE,
    CPU_AND_GPU or CPU_ONLY; the last two make fp32 islands cheap. ``accumulate``: "fp32" (default)
    or "fp16", what reductions are assumed to accumulate in.
    ``scope``: an fp32 island holds the whole region ("region") or only its overflow-prone core
    ("core"). ``families``: the pattern families to act on (all registered ones by default).
    ``exclude``: glob patterns; a region is left as it is when one matches its root op name, any of
    its op names or its torch module path. ``keep_native``: native layer_norm / softmax / ... ops are
    decided like the others ("at_risk"), never touched ("never") or always fp32 ("always")."""

    remedy: str = "auto"
    compute_units: str = "ALL"
    calibration: Any = None
    input_ranges: tuple[tuple[str, float, float], ...] = ()
    accumulate: str = "fp32"
    scope: str = "region"
    families: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    keep_native: str = "at_risk"
    pipeline: Any = None                     # the PassPipeline the passes run in (see precision.py)

    def __post_init__(self) -> None:
        from ..families import families
        from ..placement.target import resolve_units

        for name, value, allowed in (("remedy", self.remedy, REMEDY_MODES), ("scope", self.scope, SCOPES),
                                     ("keep_native", self.keep_native, NATIVE),
                                     ("accumulate", self.accumulate, ACCUMULATE)):
            if value not in allowed:
                raise MilguardError(f"{name} must be one of {', '.join(allowed)}, got '{value}'")
        object.__setattr__(self, "compute_units", resolve_units(self.compute_units))
        known = families()
        unknown = set(self.families or ()) - set(known)
        if unknown:
            raise MilguardError(f"unknown pattern families {sorted(unknown)}; known: {', '.join(known)}")

    @classmethod
    def make(cls, **kwargs: Any) -> "Options":
        """Options from keyword arguments; lists may be given as comma-separated strings, and
        empty strings mean "the default" (pass options arrive as strings)."""
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise MilguardError(f"unknown milguard options {sorted(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("families", "exclude"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = tuple(s.strip() for s in kwargs[key].split(",") if s.strip()) or None
            elif kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("input_ranges") is not None:
            kwargs["input_ranges"] = tuple((n, lo, hi) for n, (lo, hi) in _ranges(kwargs["input_ranges"]).items())
        if kwargs.get("calibration") == "":
            kwargs["calibration"] = None
        return cls(**{k: v for k, v in kwargs.items() if v is not None and (k != "exclude" or v)})

    def with_(self, **changes: Any) -> "Options":
        return replace(self, **changes)

    def as_pass_options(self) -> dict[str, Any]:
        """The values a milguard family pass is given in a pipeline (``set_options``)."""
        ranges = ",".join(f"{n}={lo!r}:{hi!r}" for n, lo, hi in self.input_ranges)
        return {"remedy": self.remedy, "compute_units": self.compute_units, "calibration": self.calibration,
                "input_ranges": ranges, "accumulate": self.accumulate, "scope": self.scope,
                "families": ",".join(self.families or ()), "exclude": ",".join(self.exclude),
                "keep_native": self.keep_native, "pipeline": self.pipeline}

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        return {n: (lo, hi) for n, lo, hi in self.input_ranges}

    def acts_on(self, family: str) -> bool:
        return self.families is None or family in self.families

    def excludes(self, match: Match) -> bool:
        names = [match.root.name, *(op.name for op in match.ops)]
        paths = [p for p in (module_path(op) for op in match.ops) if p]
        return any(fnmatchcase(n, pat) for pat in self.exclude for n in names + paths)


def _ranges(value: Any) -> dict[str, tuple[float, float]]:
    """The ranges given as a string, a mapping, or Options' own tuple of (name, lo, hi)."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 3 for v in value):
        value = {n: (lo, hi) for n, lo, hi in value}
    return parse_input_ranges(value)
