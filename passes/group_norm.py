"""GroupNorm: y = gamma * (g - mean(g)) / sqrt(var(g) + eps) + beta over each group g of channels.

coremltools lowers ``nn.GroupNorm`` to reshape (N, C, ...) -> (N, G, C/G, ...), the LayerNorm chain
over every axis after the group axis ([2, 3] for 1-D maps, [2, 3, 4] for 2-D ones), a reshape back
and the per-channel affine (Wav2Vec2's feature extractor, diffusion U-Nets).

fp16 hazard: as LayerNorm, (g - mean)^2 overflows 65504 once |g - mean| > 255.9; a group also sums
C/G times more squares than one channel. Rescale: LayerNorm's rescaled chain, one scale per group
(see ``layer_norm``); exact, with the same fp16 bounds.
"""
from __future__ import annotations

from milguard.families import Family, Member
from milguard.pattern import P, Rule

from ._common import X, axes_of, square_risk
from .layer_norm import chain, rescale_chain, rescaled_chain, tails


def group_axes(match) -> str | None:
    """Check: the chain normalises every axis after the group axis of a rank >= 4 grouped tensor,
    and the reshape back restores the input's shape."""
    grouped = match.named_ops["grouped"].outputs[0]
    rank = grouped.rank
    axes = sorted(a % rank for a in axes_of(match))
    if rank < 4 or axes != list(range(2, rank)):
        return f"reduces over axes {axes_of(match)} of a rank-{rank} tensor; expected every axis after the group axis"
    if tuple(match.named_ops["ungrouped"].outputs[0].shape) != tuple(match.bindings["x"].shape):
        return "the reshape after the norm does not restore the input's shape"
    return None


def _grouped(core):
    return tails(P.reshape(x=core, name="ungrouped"))


FAMILY = Family(
    "group_norm", "GroupNorm",
    "LayerNorm over groups of channels; (g − mean)² overflows fp16 once |g − mean| > 255.9",
    members=(
        Member(Rule("group_norm.rescaled", _grouped(rescaled_chain(P.reshape(x=X, name="grouped"))),
                    check=group_axes, benefit=18), safe=True),
        Member(Rule("group_norm.decomposed", _grouped(chain(P.reshape(x=X, name="grouped"))), check=group_axes,
                    benefit=17, rewrite=rescale_chain, replaces="normalized"),
               core=("square", "var", "add_eps", "inv_std"), rescale_passes=3),
    ),
    risk=lambda match, evidence: square_risk(match, evidence, "(g - mean)²"),
)
