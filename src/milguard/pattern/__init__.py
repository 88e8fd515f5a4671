"""The pattern engine: patterns as data (``dsl``), one matcher (``engine``), rules and matches
(``match``), rewrites applied to matches (``rewrite``), near-miss explanations (``trace``) and the
entry point ``find_matches`` (``find``). The engine is handed its rules: the rule library lives in
``milguard.passes`` and reaches the engine through ``milguard.families``."""
from .dsl import Any, Bind, Const, Lit, P, either, maybe_cast
from .find import find_matches
from .match import Match, Rule
from .rewrite import RewriteError, apply_rewrite, apply_rewrites, replaced_op
from .trace import NearMiss, Tracer

__all__ = ["Any", "Bind", "Const", "Lit", "Match", "NearMiss", "P", "RewriteError", "Rule", "Tracer",
           "apply_rewrite", "apply_rewrites", "either", "find_matches", "maybe_cast", "replaced_op"]
