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
NATIVE = ("never", "always")


@dataclass(frozen=True)
class Options:
    """``scope``: keep the whole matched region fp32 ("region") or only its overflow-prone core
    ("core": the squaring -> reduction -> sqrt chain of a norm, exp -> sum -> divide of a softmax).
    ``families``: which pattern families to keep fp32. ``exclude``: glob patterns; a region is left
    fp16 when one matches its root op name, any of its op names or its torch module path.
    ``keep_native``: native ``layer_norm`` / ``softmax`` / ``reduce_log_sum_exp`` ops are audited but
    kept fp16 ("never", the default: each island costs two Neural Engine transitions), or kept fp32
    ("always")."""

    scope: str = "region"
    families: tuple[str, ...] = FAMILIES
    exclude: tuple[str, ...] = ()
    keep_native: str = "never"

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
        return cls(**{k: v for k, v in kwargs.items() if v is not None})

    def as_strings(self) -> dict[str, str]:
        return {"scope": self.scope, "exclude": ",".join(self.exclude), "keep_native": self.keep_native}

    def excludes(self, match: Match) -> bool:
        names = [match.root.name, *(op.name for op in match.ops)]
        paths = [p for p in (module_path(op) for op in match.ops) if p]
        return any(fnmatchcase(n, pat) for pat in self.exclude for n in names + paths)
