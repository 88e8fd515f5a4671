"""What the precision passes keep in fp32: options, parsed from strings (pass options are strings)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from fnmatch import fnmatchcase
from typing import Any

from ..errors import MilguardError
from ..mil import module_path
from ..pattern import Match

FAMILIES = ("layer_norm", "rms_norm", "softmax")
SCOPES = ("region", "core")
NATIVE = ("at_risk", "never", "always")


@dataclass(frozen=True)
class Options:
    """``scope``: keep the whole matched region fp32 ("region") or only its overflow-prone core
    ("core": the squaring -> reduction -> sqrt chain of a norm, exp -> sum -> divide of a softmax).
    ``families``: which pattern families to keep fp32. ``exclude``: glob patterns; a region is left
    fp16 when one matches its root op name, any of its op names or its torch module path.
    ``keep_native``: native ``layer_norm`` / ``softmax`` / ``reduce_log_sum_exp`` ops are kept fp32
    only when static range analysis puts them at fp16 risk ("at_risk", the default: each island costs
    two Neural Engine transitions), "never" or "always". ``input_ranges`` ("x=-300:300,mask=0:1")
    are the input value ranges that analysis starts from (its defaults otherwise)."""

    scope: str = "region"
    families: tuple[str, ...] = FAMILIES
    exclude: tuple[str, ...] = ()
    keep_native: str = "at_risk"
    input_ranges: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise MilguardError(f"scope must be one of {', '.join(SCOPES)}, got '{self.scope}'")
        if self.keep_native not in NATIVE:
            raise MilguardError(f"keep_native must be one of {', '.join(NATIVE)}, got '{self.keep_native}'")
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise MilguardError(f"unknown pattern families {sorted(unknown)}; known: {', '.join(FAMILIES)}")

    @classmethod
    def make(cls, **kwargs: Any) -> "Options":
        """Options from keyword arguments; lists may be given as comma-separated strings."""
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise MilguardError(f"unknown milguard options {sorted(unknown)}; known: {', '.join(sorted(known))}")
        for key in ("families", "exclude"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = tuple(s.strip() for s in kwargs[key].split(",") if s.strip())
            elif kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        if kwargs.get("input_ranges") is not None:
            kwargs["input_ranges"] = parse_ranges(kwargs["input_ranges"])
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    def as_strings(self) -> dict[str, str]:
        ranges = ",".join(f"{n}={lo!r}:{hi!r}" for n, lo, hi in self.input_ranges)
        return {"scope": self.scope, "exclude": ",".join(self.exclude), "keep_native": self.keep_native,
                "input_ranges": ranges}

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        return {n: (lo, hi) for n, lo, hi in self.input_ranges}

    def excludes(self, match: Match) -> bool:
        names = [match.root.name, *(op.name for op in match.ops)]
        paths = [p for p in (module_path(op) for op in match.ops) if p]
        return any(fnmatchcase(n, pat) for pat in self.exclude for n in names + paths)


def parse_ranges(value: Any) -> tuple[tuple[str, float, float], ...]:
    """{"x": (lo, hi)} or "x=lo:hi,y=lo:hi" -> (("x", lo, hi), ...)."""
    if isinstance(value, str):
        items = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            name, sep, rng = part.partition("=")
            lo, sep2, hi = rng.partition(":")
            try:
                if not (sep and sep2 and name):
                    raise ValueError
                items.append((name.strip(), float(lo), float(hi)))
            except ValueError:
                raise MilguardError(f"bad input range '{part}': expected NAME=LO:HI") from None
        value = {n: (lo, hi) for n, lo, hi in items}
    out = []
    for name, (lo, hi) in dict(value).items():
        if not float(lo) <= float(hi):
            raise MilguardError(f"bad input range for '{name}': {lo} > {hi}")
        out.append((str(name), float(lo), float(hi)))
    return tuple(out)
