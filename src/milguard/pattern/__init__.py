"""The pattern engine: patterns as data (``dsl``), one matcher (``engine``), matches and rules
(``match``), near-miss explanations (``trace``) and the entry point ``find_patterns`` (``find``)."""
from .dsl import Any, Bind, Const, Lit, P, either, maybe_cast
from .find import explain, find_patterns
from .match import Match, Rule
from .trace import NearMiss, Tracer

__all__ = ["Any", "Bind", "Const", "Lit", "Match", "NearMiss", "P", "Rule", "Tracer", "either",
           "explain", "find_patterns", "maybe_cast"]
