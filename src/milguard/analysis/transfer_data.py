"""Transfer functions of constants, data movement, casts, comparisons, logic and control flow.

Data movement (reshape, gather, slicing, resampling) only moves or convexly combines values,
so its output interval is its input's."""
from __future__ import annotations

import math

import numpy as np

from ..mil.values import materialized
from .interval import INF, Interval, hull_all
from .transfer_registry import param_value, scalar_param, transfer


# ---- constants and data movement ---------------------------------------------------------------

@transfer("const")
def _const(op, ctx):
    return Interval.of(op.outputs[0].val)


_SAME = ("identity", "reshape", "transpose", "expand_dims", "squeeze", "slice_by_index",
         "slice_by_size", "reverse", "reverse_sequence", "flatten2d", "tile", "gather",
         "gather_along_axis", "gather_nd", "sliding_windows", "pixel_shuffle", "pixel_unshuffle",
         "depth_to_space", "space_to_depth", "space_to_batch", "batch_to_space", "crop",
         "upsample_nearest_neighbor", "resize_nearest_neighbor", "upsample_bilinear",
         "resize_bilinear", "resize", "max_pool", "reshape_like", "split")


@transfer(*_SAME)
def _same(op, ctx):
    """Data movement and convex resampling: every output element is an input element or a
    convex combination of input elements (bilinear weights are >= 0 and sum to 1)."""
    return ctx.r(op.inputs["x"])


@transfer("concat", "stack")
def _concat(op, ctx):
    return hull_all(ctx.r(v) for v in op.inputs["values"])


@transfer("pad")
def _pad(op, ctx):
    x = ctx.r(op.x)
    mode = str(param_value(op, ctx, "mode", "constant"))
    return x.hull(Interval.point(scalar_param(op, ctx, "constant_val", 0.0))) if mode == "constant" else x


@transfer("band_part")
def _band_part(op, ctx):
    return ctx.r(op.x).hull(Interval.point(0.0))


@transfer("avg_pool")
def _avg_pool(op, ctx):
    x = ctx.r(op.x)
    padded = str(param_value(op, ctx, "pad_type", "valid")) != "valid" or np.any(param_value(op, ctx, "pad", 0))
    counts_pad = not bool(param_value(op, ctx, "exclude_padding_from_average", False))
    return x.hull(Interval.point(0.0)) if padded and counts_pad else x


@transfer("select")
def _select(op, ctx):
    return ctx.r(op.a).hull(ctx.r(op.b))


@transfer("slice_update")
def _slice_update(op, ctx):
    return ctx.r(op.x).hull(ctx.r(op.update))


@transfer("scatter", "scatter_along_axis", "scatter_nd")
def _scatter(op, ctx):
    mode = str(param_value(op, ctx, "mode", "update"))
    if mode != "update":
        return Interval.top()
    return ctx.r(op.data).hull(ctx.r(op.updates))


@transfer("fill")
def _fill(op, ctx):
    return ctx.r(op.value)


@transfer("fill_like")
def _fill_like(op, ctx):
    return ctx.r(op.value)


@transfer("one_hot")
def _one_hot(op, ctx):
    return ctx.r(op.on_value).hull(ctx.r(op.off_value))


@transfer("range_1d")
def _range_1d(op, ctx):
    return ctx.r(op.start).hull(ctx.r(op.end))


def _index_range(n: float) -> Interval:
    return Interval(0.0, max(n - 1.0, 0.0)) if math.isfinite(n) else Interval(0.0, INF)


@transfer("shape")
def _shape(op, ctx):
    dims = [d for d in op.x.shape if isinstance(d, (int, np.integer))]
    return Interval(0.0, float(max(dims, default=0))) if len(dims) == len(op.x.shape) else Interval(0.0, INF)


@transfer("reduce_argmax", "reduce_argmin", "argsort")
def _arg(op, ctx):
    return _index_range(ctx.count(op.x, [scalar_param(op, ctx, "axis", -1)]))


@transfer("topk")
def _topk(op, ctx):
    return [ctx.r(op.x), _index_range(ctx.count(op.x, [scalar_param(op, ctx, "axis", -1)]))]


@transfer("non_zero")
def _non_zero(op, ctx):
    return Interval(0.0, float(max((d for d in op.x.shape if isinstance(d, int)), default=INF)))


# ---- casts, comparisons, logic -----------------------------------------------------------------

@transfer("cast")
def _cast(op, ctx):
    x = ctx.r(op.x)
    dtype = str(param_value(op, ctx, "dtype", "fp32"))
    if dtype == "bool":
        return Interval(0.0, 1.0)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype.replace("fp", "float"))
        if x.is_empty:
            return x
        lo = math.floor(x.lo) if math.isfinite(x.lo) else float(info.min)
        hi = math.ceil(x.hi) if math.isfinite(x.hi) else float(info.max)
        # NaN and out-of-range values convert to an implementation-defined integer
        wild = x.may_nan or x.lo < info.min or x.hi > info.max
        return Interval(float(info.min), float(info.max)) if wild else Interval(lo, hi)
    return x          # the rounding to the target float type is applied by the propagation


_BOOL = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
         "logical_and", "logical_or", "logical_xor", "logical_not")


@transfer(*_BOOL)
def _bool(op, ctx):
    return Interval(0.0, 1.0)


# ---- control flow ------------------------------------------------------------------------------

@transfer("cond")
def _cond(op, ctx):
    """The hull of both branches' outputs (the branches are visited before the op)."""
    outs = [list(b.outputs) for b in op.blocks]
    return [hull_all(ctx.r(branch[i]) for branch in outs if i < len(branch))
            for i in range(len(op.outputs))]


@transfer("while_loop")
def _while_loop(op, ctx):
    """Loop-carried values are not bounded by this analysis: every output is unbounded."""
    return Interval.top()


# ---- compile-time weights and state ------------------------------------------------------------

@transfer("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale", "constexpr_cast",
          "constexpr_lut_to_dense", "constexpr_lut_to_sparse", "constexpr_sparse_blockwise_shift_scale",
          "constexpr_sparse_to_dense")
def _constexpr(op, ctx):
    """Weights decompressed at load time: exact, from the op's own materialised value."""
    vals = materialized(op)                     # if it raises, the range analysis reports it
    return [Interval.of(v) if v.dtype != object else Interval.top() for v in vals]


@transfer("read_state")
def _read_state(op, ctx):
    """The contents of a state (a KV cache) are whatever earlier predictions wrote: unbounded."""
    return Interval.top()


@transfer("coreml_update_state")
def _update_state(op, ctx):
    return ctx.r(op.value)


@transfer("quantize")
def _quantize(op, ctx):
    """round(x / scale) + zero_point, saturated to the integer output type."""
    dtype = str(param_value(op, ctx, "output_dtype", "int8"))
    info = np.iinfo(dtype) if dtype.startswith(("int", "uint")) else np.iinfo(np.int8)
    return Interval(float(info.min), float(info.max))


@transfer("dequantize")
def _dequantize(op, ctx):
    """(q - zero_point) · scale."""
    zp = op.inputs.get("zero_point")
    q = ctx.r(op.input) - (ctx.r(zp) if zp is not None else Interval.point(0.0))
    return q * ctx.r(op.scale)
