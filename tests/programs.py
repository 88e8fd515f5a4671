"""MIL programs built with the builder, one per pattern variant, for pattern and precision tests.

Every builder puts one unrelated op before the pattern (``relu``) and one after (``tanh``) so a
test can check that a match takes exactly the pattern's ops.
"""
from __future__ import annotations

import numpy as np
import coremltools as ct

from milguard.mil import mb, types

RANK3 = (2, 3, 16)
RANK4 = (1, 8, 4, 4)
GAMMA3 = np.linspace(0.5, 1.5, 16).astype(np.float32)
BETA3 = np.linspace(-0.2, 0.2, 16).astype(np.float32)
GAMMA4 = np.linspace(0.5, 1.5, 8).astype(np.float32).reshape(8, 1, 1)
BETA4 = np.linspace(-0.2, 0.2, 8).astype(np.float32).reshape(8, 1, 1)


def program(shape, body, dtype=types.fp32, opset=ct.target.iOS17, inputs=1):
    """A program with ``inputs`` inputs of ``shape``: relu -> body(...) -> tanh."""
    specs = [mb.TensorSpec(shape=shape, dtype=dtype) for _ in range(inputs)]
    wrap = lambda *xs: mb.tanh(x=body(*(mb.relu(x=x) for x in xs)))  # noqa: E731
    if inputs == 1:
        def prog(x):
            return wrap(x)
    else:
        def prog(x, y):
            return wrap(x, y)
    return mb.program(input_specs=specs, opset_version=opset)(prog)


def square(v, form):
    return {"pow": lambda: mb.pow(x=v, y=2.0), "square": lambda: mb.square(x=v),
            "mul": lambda: mb.mul(x=v, y=v)}[form]()


def normalize(num, var_eps, form):
    return {"rsqrt": lambda: mb.mul(x=num, y=mb.rsqrt(x=var_eps)),
            "sqrt_div": lambda: mb.real_div(x=num, y=mb.sqrt(x=var_eps)),
            "pow_-0.5": lambda: mb.mul(x=num, y=mb.pow(x=var_eps, y=-0.5))}[form]()


def layer_norm(x, *, sq="pow", inv="rsqrt", tail="affine", axes=(-1,), axes2=None, eps=1e-5,
               exponent=2.0, gamma=GAMMA3, beta=BETA3):
    mean = mb.reduce_mean(x=x, axes=list(axes), keep_dims=True)
    d = mb.sub(x=x, y=mean)
    s = square(d, sq) if exponent == 2.0 else mb.pow(x=d, y=exponent)
    var = mb.reduce_mean(x=s, axes=list(axes2 or axes), keep_dims=True)
    n = normalize(d, mb.add(x=var, y=eps), inv)
    tails = {
        "affine": lambda: mb.add(x=mb.mul(x=n, y=gamma), y=beta),
        "affine_shift_first": lambda: mb.mul(x=mb.add(x=n, y=beta), y=gamma),
        "batch_norm": lambda: mb.batch_norm(x=n, mean=np.zeros(8, np.float32), variance=np.ones(8, np.float32),
                                            gamma=gamma.reshape(-1), beta=beta.reshape(-1), epsilon=0.0),
        "scale": lambda: mb.mul(x=n, y=gamma),
        "shift": lambda: mb.add(x=n, y=beta),
        "no_affine": lambda: n,
    }
    return tails[tail]()


def rms_norm(x, *, sq="pow", inv="rsqrt", weight="weight", casts=False, eps=1e-6, exponent=2.0,
             other=None, w=None):
    xf = mb.cast(x=x, dtype="fp32") if casts else x
    z = other if other is not None else xf
    s = square(z, sq) if exponent == 2.0 else mb.pow(x=z, y=exponent)
    ms = mb.add(x=mb.reduce_mean(x=s, axes=[-1], keep_dims=True), y=eps)
    n = normalize(xf, ms, inv)
    n = mb.cast(x=n, dtype="fp32") if casts else n
    return {"weight": lambda: mb.mul(x=GAMMA3, y=n),
            "gemma": lambda: mb.mul(x=n, y=mb.add(x=1.0, y=w)),   # w computed: a const (1 + w) folds
            "no_weight": lambda: n}[weight]()


def rms_norm_max_abs(x, *, eps=1e-6, axes_max=(-1,)):
    """coremltools' translation of torch.nn.RMSNorm: y = x / (sqrt(mean((x/m)^2) + eps) * m) * w."""
    m = mb.reduce_max(x=mb.abs(x=x), axes=list(axes_max), keep_dims=True)
    ms = mb.reduce_mean(x=mb.square(x=mb.real_div(x=x, y=m)), axes=[-1], keep_dims=True)
    rms = mb.mul(x=mb.sqrt(x=mb.add(x=ms, y=eps)), y=m)
    return mb.mul(x=mb.real_div(x=x, y=rms), y=GAMMA3)


def softmax(x, *, form="max_shifted", axes=(-1,), axes_sum=None, other=None):
    axes_sum = list(axes_sum or axes)
    if form == "max_shifted":
        e = mb.exp(x=mb.sub(x=x, y=mb.reduce_max(x=x, axes=list(axes), keep_dims=True)))
        return mb.real_div(x=e, y=mb.reduce_sum(x=e, axes=axes_sum, keep_dims=True))
    if form == "naive":
        e = mb.exp(x=x)
        e2 = mb.exp(x=other) if other is not None else e
        return mb.real_div(x=e, y=mb.reduce_sum(x=e2, axes=axes_sum, keep_dims=True))
    if form == "log_softmax":
        sh = mb.sub(x=x, y=mb.reduce_max(x=x, axes=list(axes), keep_dims=True))
        return mb.sub(x=sh, y=mb.log(x=mb.reduce_sum(x=mb.exp(x=sh), axes=axes_sum, keep_dims=True)))
    if form == "log_softmax_naive":
        src = other if other is not None else x
        return mb.sub(x=x, y=mb.log(x=mb.reduce_sum(x=mb.exp(x=src), axes=axes_sum, keep_dims=True)))
    if form == "log_of_softmax":
        return mb.log(x=mb.softmax(x=x, axis=-1))
    if form == "native":
        return mb.softmax(x=x, axis=-1)
    if form == "native_log_sum_exp":
        return mb.reduce_log_sum_exp(x=x, axes=[-1], keep_dims=True)
    raise ValueError(form)


def op_types(prog, skip_const=True):
    from milguard.mil import iter_ops
    return [op.op_type for op in iter_ops(prog.functions["main"])
            if not (skip_const and op.op_type == "const")]


def group_norm(x, *, groups=2, inv="sqrt_div", sq="square", eps=1e-5, axes=None, restore=True):
    """nn.GroupNorm as coremltools lowers it: reshape to (N, G, C/G, H, W), the LayerNorm chain over
    axes [2, 3, 4], reshape back, per-channel affine (RANK4 input)."""
    n, c, h, w = RANK4
    g = mb.reshape(x=x, shape=[n, groups, c // groups, h, w])
    axes = list(axes or (2, 3, 4))
    mean = mb.reduce_mean(x=g, axes=axes, keep_dims=True)
    d = mb.sub(x=g, y=mean)
    var = mb.reduce_mean(x=square(d, sq), axes=axes, keep_dims=True)
    normed = normalize(d, mb.add(x=var, y=eps), inv)
    back = mb.reshape(x=normed, shape=[n, c, h, w] if restore else [n, c, h * w])
    return mb.add(x=mb.mul(x=back, y=GAMMA4), y=BETA4) if restore else back


def l2_reduce(x, *, axes=(-1,), keep_dims=True):
    return mb.reduce_l2_norm(x=x, axes=list(axes), keep_dims=keep_dims)


def l2_normalize(x, *, eps=1e-12, tiled=True, axes=(-1,)):
    """F.normalize as coremltools lowers it: x / tile(maximum(reduce_l2_norm(x), eps))."""
    den = mb.maximum(x=mb.reduce_l2_norm(x=x, axes=list(axes), keep_dims=True), y=eps)
    if tiled:
        den = mb.tile(x=den, reps=[1] * (len(RANK3) - 1) + [RANK3[-1]])
    return mb.real_div(x=x, y=den)


def grn(x, *, eps=1e-6):
    """ConvNeXtV2's GRN on an NHWC tensor (RANK4 read as N, H, W, C): Gx / (mean_c(Gx) + eps)."""
    gx = mb.reduce_l2_norm(x=x, axes=[1, 2], keep_dims=True)
    nx = mb.real_div(x=gx, y=mb.add(x=mb.reduce_mean(x=gx, axes=[-1], keep_dims=True), y=eps))
    return mb.add(x=mb.mul(x=x, y=nx), y=x)


def masked(x, *, value=float(np.finfo(np.float32).min), rows=(0,)):
    """x + a causal-style additive mask holding ``value``; the listed rows are masked entirely."""
    mask = np.zeros(RANK3[1:], np.float32)
    mask[np.triu_indices(RANK3[1], 1, RANK3[2])] = value
    for r in rows:
        mask[r, :] = value
    return mb.softmax(x=mb.add(x=x, y=mask), axis=-1)


def deep_chain(length: int, shape=(2, 3, 16), dtype=types.fp16, opset=ct.target.iOS17):
    """A program deeper than Python's recursion limit: ``length`` chained ops (add, mul, tanh
    repeating, each feeding the next), then an RMSNorm, a q·kᵀ matmul and a native softmax.

    Every value stays in [-1, 1] (tanh), so the typed program computes finite values: what such a
    program exercises is stack depth, not numerics.
    """
    f = np.float16 if dtype == types.fp16 else np.float32

    def body(x):
        v = x
        for _ in range(length // 3):
            v = mb.tanh(x=mb.mul(x=mb.add(x=v, y=v), y=v))
        ms = mb.reduce_mean(x=mb.pow(x=v, y=f(2)), axes=[-1], keep_dims=True)
        v = mb.mul(x=mb.mul(x=v, y=mb.rsqrt(x=mb.add(x=ms, y=f(1e-5)))), y=GAMMA3.astype(f))
        return mb.softmax(x=mb.matmul(x=v, y=v, transpose_y=True), axis=-1, name="probs")

    return mb.program(input_specs=[mb.TensorSpec(shape=shape, dtype=dtype)], opset_version=opset)(body)


def rescaled(prog, *, casting=True, **opts):
    """``prog`` with its regions rewritten by the rescale remedy, decided as inside ``ct.convert``
    (``casting``: an fp32 program that ``add_fp16_cast`` will make fp16) or as for an fp16 package;
    at least one region must be rescaled."""
    from milguard.actions.apply import carry_out
    from milguard.actions.decide import Context, decide
    from milguard.actions.options import Options

    options = Options.make(remedy="rescale", **opts)
    ctx = Context(prog, options, casting=casting)
    pairs = decide(ctx)
    assert "rescale" in {d.remedy for _, d in pairs}, pairs
    carry_out(prog, pairs, ctx)
    prog.validate()
    return prog


def signature(model):
    """(op type, output dtype) of every non-const op of ``model``'s main function, in order."""
    from milguard.mil import dtype_name, iter_ops, load

    fn = load(model).program.functions["main"]
    return [(op.op_type, dtype_name(op.outputs[0])) for op in iter_ops(fn) if op.op_type != "const"]
