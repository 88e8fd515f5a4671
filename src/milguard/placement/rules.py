"""The placement rules table: data, evaluated in order; the first rule whose predicate holds wins.

Each rule gives a *verdict* for one op:

* ``ane``     — eligible for the Neural Engine;
* ``cpu``     — expected on the CPU whatever the region around it (Core ML practice);
* ``off_ane`` — not on the Neural Engine; CPU or GPU is decided per region by ``predict``
  (a run of such ops goes to the GPU under ``ALL`` when it is large, P2);
* ``none``    — not placed at all (const ops: ``MLComputePlan`` reports no device, O19).

Rule ids number the published evidence by kind (D = data type, O = op type, R = rank and
dimensions, S = shapes and size, P = partitioning, A3 = the eligibility table) followed by a
short name. Certainty: H = Apple documentation or code, or agreeing measurements; M = one
careful measurement or a reverse-engineered catalogue; L = an anecdote or NN-era behaviour.

The order goes from the most specific fact to the most general: no device at all, compute
units, op types that never reach the Neural Engine, integer and dynamic-shape work, chip
gates, precision (fp32), hardware limits, and finally the eligible op list. The size floor
(S1) and the partitioning rules (P2, P4) look at whole functions and runs of ops, so they are
``REGION_RULES`` applied by ``predict`` after the table; a small op inside a large Neural
Engine region stays there (S1 says "in isolation"; RF-DETR's tiny ops stay on the ANE).
(The matmul/linear contraction limit, K <= 16384 or 65536 on A16+, needs no rule of its
own: K is the W or H extent of ``x``, so ``R1.dims`` already enforces it.)
A static predictor gives eligibility, not ground truth ("eligibility is not placement").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from milguard.mil import dtype_name

from .facts import OpFacts, is_unplaced
from .target import Target

Predicate = Callable[[OpFacts, Target], bool]

# The widest fp16 conv kernel the Neural Engine takes (ANEForge catalogue: "M1 kernels <= 29x29
# (13x13 fp16)"; ane-guide ch.17). Rule O14.
CONV_KERNEL_MAX_FP16 = 13

CONTROL_FLOW = frozenset({"cond", "while_loop", "make_list", "list_length", "list_read",
                          "list_write", "list_gather", "list_scatter"})
RECURRENT = frozenset({"lstm", "gru", "rnn"})
GATHERS = frozenset({"gather", "gather_nd", "gather_along_axis"})
SORTS = frozenset({"topk", "argsort"})
WALLED = frozenset({
    "scatter", "scatter_nd", "scatter_along_axis", "one_hot", "non_zero", "mod", "logical_and",
    "logical_or", "logical_xor", "reduce_prod", "shape", "reverse_sequence", "sliding_windows",
    "random_normal", "random_uniform", "random_bernoulli", "random_categorical", "range_1d",
    "cumsum", "asin", "acos", "atanh", "sinh", "cosh", "tan", "non_maximum_suppression",
})
TEXTURE = frozenset({"resize", "resize_bilinear", "resize_nearest_neighbor", "upsample_bilinear",
                     "upsample_nearest_neighbor", "crop_resize", "affine", "resample"})
INT_OUTPUT_OK = frozenset({"reduce_argmax", "reduce_argmin", "quantize"})
SHAPE_PARAMS = {                       # parameters that must be compile-time constants (O7)
    "reshape": ("shape",), "slice_by_index": ("begin", "end", "stride"),
    "slice_by_size": ("begin", "size"), "tile": ("reps",), "pad": ("pad",),
    "expand_dims": ("axes",), "squeeze": ("axes",), "transpose": ("perm",),
    "split": ("split_sizes", "num_splits"), "slice_update": ("begin", "end", "stride"),
    "resize": ("target_size_height", "target_size_width"),
}
ANE_ELIGIBLE = frozenset({
    # matrix and convolution work (O14, O15)
    "conv", "conv_transpose", "conv_quantized", "linear", "matmul", "einsum",
    "scaled_dot_product_attention",
    # normalisation and softmax (O10, O11)
    "softmax", "layer_norm", "instance_norm", "batch_norm", "l2_norm", "local_response_norm",
    # reductions (O12)
    "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_l1_norm", "reduce_l2_norm",
    "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square", "reduce_argmax", "reduce_argmin",
    # element-wise and activations (O13)
    "add", "sub", "mul", "real_div", "floor_div", "maximum", "minimum", "pow", "square", "abs",
    "inverse", "rsqrt", "sqrt", "exp", "exp2", "log", "relu", "relu6", "leaky_relu", "gelu",
    "silu", "sigmoid", "sigmoid_hard", "tanh", "erf", "elu", "prelu", "softplus",
    "softplus_parametric", "softsign", "clamped_relu", "linear_activation", "scaled_tanh",
    "thresholded_relu", "threshold", "clip", "sign", "round", "floor", "ceil", "atan", "sin", "cos",
    "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "select",
    "logical_not",
    # layout (with static shapes and offsets, O7)
    "reshape", "reshape_like", "transpose", "expand_dims", "squeeze", "concat", "split", "stack",
    "slice_by_size", "slice_by_index", "pad", "tile", "pixel_shuffle", "pixel_unshuffle",
    "depth_to_space", "space_to_depth", "space_to_batch", "batch_to_space", "flatten2d", "crop",
    "identity", "reverse", "cast",
    # pooling (O14), quantized activations (D5), state (iOS 18 stateful models, Anemll),
    # texture ops (O16, chip-gated)
    "avg_pool", "max_pool", "l2_pool", "quantize", "dequantize", "read_state", "write_state",
    "coreml_update_state", "slice_update", *TEXTURE,
    # gathers: only reached with PlacementOptions.gather_on_ane on A14+ (O3)
    *GATHERS,
})


@dataclass(frozen=True)
class PlacementRule:
    """One row of the placement table: an op the predicate holds for gets the verdict.

    Region rules (``REGION_RULES``) have no per-op predicate (``applies is None``): ``predict``
    applies them to whole functions and runs of ops."""

    id: str
    verdict: str                  # "ane" | "cpu" | "off_ane" | "none"
    certainty: str                # "H" | "M" | "L"
    applies: Predicate | None     # (OpFacts, Target) -> bool; None for a region rule
    description: str
    source: str


# --------------------------------------------------------------------------- predicates
def _types(names: frozenset[str]) -> Predicate:
    return lambda f, t: f.op_type in names


def _integer_work(f: OpFacts, t: Target) -> bool:
    if f.op_type in ("quantize", "dequantize"):
        return False
    int_output = bool(f.output_int_dtypes) and f.op_type not in INT_OUTPUT_OK
    return bool(f.runtime_int_dtypes) or int_output


def _dynamic_offset(f: OpFacts, t: Target) -> bool:
    return any(not f.const(p) for p in SHAPE_PARAMS.get(f.op_type, ()))


def _gather(f: OpFacts, t: Target) -> bool:
    return f.op_type in GATHERS and not (t.options.gather_on_ane and t.chip.ane_class != "A13")


def _reflect_pad(f: OpFacts, t: Target) -> bool:
    if f.op_type != "pad" or t.chip.reflect_pad:
        return False
    mode = f.op.inputs.get("mode")
    return mode is not None and str(mode.val) in ("reflect", "replicate", "symmetric")


def _precision_cast(f: OpFacts, t: Target) -> bool:
    return f.op_type == "cast" and {"fp16", "fp32"} <= f.float_dtypes


def _io_cast(f: OpFacts, t: Target) -> bool:
    """An fp16<->fp32 cast whose fp32 side is a function input or a block output."""
    if not _precision_cast(f, t):
        return False
    x = f.op.inputs["x"]
    if dtype_name(x) == "fp32":
        return x.op is None
    block_outputs = {id(v) for v in f.op.enclosing_block.outputs}
    return any(id(v) in block_outputs for v in f.op.outputs)


def _static_dims(shape: tuple) -> list[int] | None:
    try:
        return [int(d) for d in shape]
    except (TypeError, ValueError):
        return None


def _dims_exceeded(f: OpFacts, t: Target) -> bool:
    """Dims map to N(D)CHW from the right: W = last axis, H, C, D (rank 5) or N, then N."""
    limits = {"W": t.chip.spatial_max, "H": t.chip.spatial_max, "D": t.chip.spatial_max,
              "C": t.chip.channel_max, "N": t.chip.channel_max}
    for shape in f.shapes:
        dims = _static_dims(shape)
        if not dims or len(dims) > 5:
            continue
        names = "NDCHW"[-len(dims):] if len(dims) == 5 else "NCHW"[-len(dims):]
        if any(d > limits[n] for n, d in zip(names, dims)):
            return True
    return False


def _transpose_extent(f: OpFacts, t: Target) -> bool:
    if f.op_type != "transpose":
        return False
    return any(d > t.chip.transpose_max for s in f.shapes for d in (_static_dims(s) or ()))


def _conv_kernel(f: OpFacts, t: Target) -> bool:
    if f.op_type not in ("conv", "conv_transpose"):
        return False
    weight = f.op.inputs.get("weight")
    if weight is None or not f.const("weight"):
        return True                     # a runtime weight: the weight path reads compile-time data
    dims = _static_dims(weight.shape) or []
    return len(dims) > 2 and dims[-1] > CONV_KERNEL_MAX_FP16


def _small_sdpa(f: OpFacts, t: Target) -> bool:
    if f.op_type != "scaled_dot_product_attention":
        return False
    sizes = [math.prod(_static_dims(f.op.inputs[p].shape) or [0])
             for p in ("query", "key", "value")]
    return min(sizes) < t.options.sdpa_min_elements


# --------------------------------------------------------------------------- the table
# PlacementRule(id, verdict, certainty, predicate, description, source), evaluated top to bottom.
RULES: tuple[PlacementRule, ...] = (
    PlacementRule("O19.const", "none", "H", lambda f, t: is_unplaced(f.op),
                  "const and constexpr_* ops are folded at compile time and get no device",
                  "0seba/VoxCPMANE#15 (preferred=unreported); coremltools compute_plan.py; "
                  "pytorch/executorch#19252"),
    PlacementRule("units.cpu_only", "cpu", "H", lambda f, t: t.compute_units == "CPU_ONLY",
                  "compute units CPU_ONLY: everything runs on the CPU",
                  "Apple MLComputeUnits documentation"),
    PlacementRule("O5.control_flow", "cpu", "H", _types(CONTROL_FLOW),
                  "control flow and list ops (cond, while_loop, list_*) run on the CPU",
                  "smpanaro/more-ane-transformers NOTES (Apr 16 2023); ANEForge _op_catalog.py"),
    PlacementRule("O1.recurrent", "off_ane", "H", _types(RECURRENT),
                  "lstm, gru and rnn never run on the Neural Engine",
                  "apple/coremltools#1780 (Apple), #337; ANEForge catalogue"),
    PlacementRule("O3.gather", "off_ane", "H", _gather,
                  "gathers (embedding lookups, index-driven) are placed off the Neural Engine",
                  "apple/ml-ane-transformers README (DistilBERT); apple/coremltools#1103; "
                  "smpanaro gather_ops_ane.py; pytorch/executorch#19252"),
    PlacementRule("O4.topk", "off_ane", "M", _types(SORTS),
                  "topk and argsort run off the Neural Engine in Core ML practice",
                  "roboflow/rf-detr#1495; apple/coreai-torch#66; ANEForge catalogue"),
    PlacementRule("O6.band_part", "off_ane", "M", _types(frozenset({"band_part"})),
                  "band_part (causal-mask builder) is walled on the Neural Engine",
                  "smpanaro NOTES (Apr 4 2023); ANEForge catalogue"),
    PlacementRule("O8.walled", "off_ane", "M", _types(WALLED),
                  "op types the Neural Engine compiler rejects (scatter, one_hot, non_zero, mod, logical "
                  "and/or/xor, reduce_prod, shape, random, range_1d, cumsum, rare trig, ...)",
                  "ANEForge _op_catalog.py; smpanaro NOTES (Apr 15 2023)"),
    PlacementRule("S2.dynamic_shape", "cpu", "H", lambda f, t: f.dynamic,
                  "a symbolic (flexible or data-dependent) dimension keeps the op off the Neural Engine",
                  "coremltools flexible-inputs.md, faqs.md; apple/coremltools#2370"),
    PlacementRule("O7.dynamic_offset", "cpu", "M", _dynamic_offset,
                  "a runtime slice offset, reshape shape, tile reps, pad or permutation moves the op to "
                  "the CPU",
                  "smpanaro NOTES (Oct 25 2023)"),
    PlacementRule("D7.integer", "cpu", "M", _integer_work,
                  "integer tensor work (index arithmetic, casts to int32) is CPU work",
                  "ANEForge _op_catalog.py and Capabilities; 0seba/VoxCPMANE#15"),
    PlacementRule("R3.rank", "cpu", "H", lambda f, t: f.max_rank > 5,
                  "tensors of rank 6 or more are refused by the Neural Engine",
                  "apple/coremltools#2536; microsoft/onnxruntime#14212; aneforge graph.py"),
    PlacementRule("O9.pow_exponent", "off_ane", "M", lambda f, t: f.op_type == "pow" and not f.const("y"),
                  "pow is native only with a constant exponent",
                  "ANEForge catalogue (pow_const); inferred for a non-constant exponent"),
    PlacementRule("O8.trig_chip", "off_ane", "M",
                  lambda f, t: f.op_type in ("sin", "cos") and not t.chip.trig,
                  "sin and cos need an A15-class Neural Engine (M3 family) or newer",
                  "ANEForge _op_catalog.py"),
    PlacementRule("O16.texture_chip", "off_ane", "M",
                  lambda f, t: f.op_type in TEXTURE and not t.chip.texture,
                  "resize, upsample, crop_resize, affine and resample need an A14-class Neural Engine "
                  "(M2 family) or newer",
                  "ANEForge catalogue; hollance/neural-engine#2"),
    PlacementRule("O12.argmin_chip", "off_ane", "M",
                  lambda f, t: f.op_type == "reduce_argmin" and not t.chip.argmin,
                  "reduce_argmin is walled on A14-class and older Neural Engines",
                  "ANEForge catalogue; ane-guide ch.17"),
    PlacementRule("A3.reflect_pad_chip", "off_ane", "M", _reflect_pad,
                  "reflect and symmetric pad are walled on A13-class Neural Engines",
                  "ANEForge catalogue"),
    PlacementRule("O17.io_cast", "ane", "M", _io_cast,
                  "an fp16<->fp32 cast whose fp32 side is a model input or output runs with the fp16 work "
                  "next to it",
                  "vx-lang/Vx#435 (512x512 fp16 matmul: all casts on the Neural Engine), #436 (4x4: all "
                  "on the CPU, size floor)"),
    PlacementRule("O17.cast_boundary", "off_ane", "M", _precision_cast,
                  "an fp16<->fp32 cast inside the program marks a precision boundary and runs with its "
                  "fp32 side",
                  "pytorch/executorch#19252 (casts on the CPU); smpanaro NOTES (CPU f32<->f16 conversion "
                  "between ANE chunks)"),
    PlacementRule("D1.fp32", "off_ane", "H", lambda f, t: f.fp32 and not t.options.assume_fp16,
                  "an fp32-typed op never runs on the Neural Engine",
                  "coremltools docs-guides typed-execution.md; vx-lang/Vx#435, #437"),
    PlacementRule("R1.dims", "off_ane", "H", _dims_exceeded,
                  "a dimension beyond N,C <= 65536 and D,H,W <= 16384 (65536 spatial on A16+) is rejected "
                  "by the Neural Engine compiler",
                  "pytorch/executorch#7907; ane-guide ch.17; Anemll agent.md"),
    PlacementRule("R2.transpose_extent", "off_ane", "H", _transpose_extent,
                  "a transpose with an extent above 16384 (65536 on A16+) is rejected",
                  "ANEForge catalogue; pytorch/executorch#7907 ('anec.transpose' error)"),
    PlacementRule("O14.conv_kernel", "off_ane", "M", _conv_kernel,
                  f"conv with a kernel wider than {CONV_KERNEL_MAX_FP16} (fp16) or a non-constant weight",
                  "ane-guide ch.17; ANEForge catalogue"),
    PlacementRule("O15.sdpa_small", "cpu", "M", _small_sdpa,
                  "fused attention with fewer than ~2M elements per Q/K/V is CPU-preferred",
                  "vx-lang/Vx#437"),
    PlacementRule("A3.eligible", "ane", "M", _types(ANE_ELIGIBLE),
                  "an fp16 op of a Neural Engine op type within all limits",
                  "ANEForge _op_catalog.py; apple/ml-ane-transformers reference/*.py; coremltools "
                  "docs-guides"),
    PlacementRule("A3.unlisted", "off_ane", "L", lambda f, t: True,
                  "an op type with no evidence of Neural Engine support (custom ops included)",
                  "apple/coremltools#1278; hollance unsupported-layers.md"),
)


# Rules applied by ``predict`` after the table, on whole functions and runs of ops, in this order.
REGION_RULES: tuple[PlacementRule, ...] = (
    PlacementRule("P2.gpu_region", "off_ane", "M", None,
                  "under ALL a large run of non-ANE ops goes to the GPU, a small one to the CPU (each op "
                  "keeps the table rule that took it off the Neural Engine)",
                  "hollance/neural-engine unsupported-layers.md (ANE -> GPU once, ANE <-> CPU often)"),
    PlacementRule("S1.size_floor", "cpu", "M", None,
                  "a function whose Neural Engine work is below the floor (2e8 FLOPs) runs on the CPU: "
                  "small models are CPU-placed even when every op is eligible",
                  "vx-lang/Vx#435, #436 (single fp16 matmul: CPU at 384^3, 1.1e8 FLOPs; ANE at 512^3, "
                  "2.7e8); ask-meridian.uk (2 layers x 128 wide: 0% ANE; 6 x 384: 100%); "
                  "aosama/astronomical#540"),
    PlacementRule("P4.small_segment", "cpu", "L", None,
                  "an ANE segment with less work than the floor (4e6 FLOPs) moves to its neighbour's "
                  "device",
                  "smpanaro NOTES (Apr 4 2023); vx-lang/Vx#435; ask-meridian.uk"),
)

RULES_BY_ID: dict[str, PlacementRule] = {r.id: r for r in (*RULES, *REGION_RULES)}


def first_rule(facts: OpFacts, target: Target) -> PlacementRule:
    """The first rule of ``RULES`` whose predicate holds (``A3.unlisted`` always does)."""
    return next(r for r in RULES if r.applies(facts, target))


def rules_table_markdown() -> str:
    """The rules, in evaluation order, as a markdown table (rendered in docs/placement.md)."""
    rows = ["| # | rule | verdict | cert. | description | source |", "|---|---|---|---|---|---|"]
    for i, rule in enumerate((*RULES, *REGION_RULES), start=1):
        cells = (str(i), f"`{rule.id}`", rule.verdict, rule.certainty, rule.description,
                 rule.source)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
