"""What the benchmark scripts share: a quiet coremltools, best-of timing, growth exponents, output SNR,
the share of FLOPs in fp16, JSON-safe results, zoo inputs with a scaled planted magnitude, and the
synthetic LLaMA-shaped MIL programs they measure.

``llama_program(layers, ...)`` builds, with the MIL builder (no torch), ``layers`` pre-norm decoder
layers: RMSNorm, attention (q/k/v linears, head reshapes, scaled q·kᵀ, native softmax, ·v, output
linear), RMSNorm, SiLU MLP, with residual adds. ``dtype`` types the program fp32 (what a converter
sees before ``add_fp16_cast``) or fp16 (what a saved default package holds); ``norm="fp32_island"``
makes each RMSNorm an fp32 island between two casts, as milguard leaves it.
"""
from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


_QUIET = contextlib.ExitStack()


def quiet() -> None:
    """No coremltools warnings and no tqdm bars for the rest of the run (``milguard.progress.quiet``):
    thousands of lines would drown the reports."""
    from milguard.progress import quiet as quiet_block

    _QUIET.enter_context(quiet_block())


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(smallest wall time in seconds over ``repeats`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def growth_exponent(ops: list[float], seconds: list[float]) -> float | None:
    """k of t ~ ops^k, least squares on log-log; None with fewer than two points."""
    pts = [(n, t) for n, t in zip(ops, seconds) if t]
    if len(pts) < 2:
        return None
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (out - ref)^2); -inf when out is not finite, inf when exact."""
    out = np.asarray(out)
    if not np.isfinite(out).all():
        return -math.inf
    err = float(np.sum((out.astype(np.float64) - ref) ** 2))
    return math.inf if err == 0 else 10.0 * math.log10(float(np.sum(np.asarray(ref, np.float64) ** 2)) / err)


def db_text(v: Any) -> str:
    """An SNR for a table: "inf/NaN" for a non-finite output, "exact", or one decimal; "–" when absent."""
    if v is None:
        return "–"
    v = float(v)    # results read back from JSON hold "inf" / "-inf" as strings
    return "inf/NaN" if v == -math.inf else ("exact" if v == math.inf else f"{v:.1f}")


def truncated_pct(share: float) -> str:
    """99.998% -> '99.99%': a share just under a threshold never prints as the threshold."""
    return f"{math.floor(share * 10000) / 100:.2f}%"


def precision_stats(fn: Any) -> dict[str, Any]:
    """fp32 compute ops, casts, and the share of FLOPs whose op computes in fp16, of a MIL function.

    An op computes in the dtype of its first output; FLOPs per op from ``milguard.placement.flops``.
    Consts and casts count in neither share; ops with a non-float output (comparisons) neither.
    """
    from milguard.mil import dtype_name, iter_ops
    from milguard.placement.flops import flops

    fp16 = fp32 = 0.0
    fp32_ops = casts = 0
    for op in iter_ops(fn):
        if op.op_type == "const" or not op.outputs:
            continue
        if op.op_type == "cast":
            casts += 1
            continue
        dtype = dtype_name(op.outputs[0])
        f = flops(op)
        if dtype == "fp16":
            fp16 += f
        elif dtype == "fp32":
            fp32 += f
            fp32_ops += 1
    total = fp16 + fp32
    return {"fp32_ops": fp32_ops, "casts": casts, "flops_fp16_share": fp16 / total if total else 0.0,
            "flops_total": total}


def scaled_planted_inputs(entry: Any, factor: float, seed: int = 0) -> tuple:
    """A zoo entry's inputs with its scenario planted at ``factor`` times the documented magnitude.

    Same channels, positions and calibration point as ``entry.planted_inputs(seed)`` (which is
    ``factor=1``): the input of ``scenario.where`` then reaches ``factor * scenario.magnitude``.
    """
    from dataclasses import replace

    from milguard.zoo.planting import plant

    scenario = replace(entry.scenario, magnitude=entry.scenario.magnitude * factor)
    return plant(entry.build(seed), entry.example_inputs(seed), scenario)


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as the strings "inf", "-inf", "nan" (JSON has no such numbers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


RESULTS_DIR = "benchmarks/results"       # excluded from the dirty check: results are what a run writes


def source_state() -> dict[str, Any]:
    """{"revision": short commit or None, "dirty": True when anything but the results differs from it}.

    Dirty means ``git status --porcelain`` (untracked files included) lists a path outside
    ``benchmarks/results/``: the measured code is then not the code at that revision. None when
    there is no git checkout to ask.
    """
    here = Path(__file__).parent
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
        rev = _git(here, "rev-parse", "--short", "HEAD")
        status = _git(Path(top), "status", "--porcelain", "--", ".", f":(exclude){RESULTS_DIR}")
    except (OSError, subprocess.CalledProcessError):
        return {"revision": None, "dirty": None}
    return {"revision": rev, "dirty": bool(status)}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd, check=True).stdout.strip()


def save_results(out: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    """``out/<name>.json`` (stamped with the measured revision and whether the tree was dirty) and ``.md``."""
    result.update(source_state())
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown)


def llama_program(layers: int, *, hidden: int = 32, heads: int = 2, seq: int = 8, inter: int = 64,
                  dtype: str = "fp32", norm: str = "decomposed"):
    """A pymil Program of ``layers`` LLaMA-shaped layers (iOS17 opset); see the module docstring."""
    import coremltools as ct

    from milguard.mil import mb, np_dtype, types

    if norm not in ("decomposed", "fp32_island"):
        raise ValueError(f"norm must be 'decomposed' or 'fp32_island', not {norm!r}")
    rng = np.random.default_rng(0)
    f = np_dtype(dtype)
    hd = hidden // heads

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(f)

    def rms_norm(h):
        x = mb.cast(x=h, dtype="fp32") if norm == "fp32_island" else h
        t = np.float32 if norm == "fp32_island" else f
        var = mb.reduce_mean(x=mb.pow(x=x, y=t(2)), axes=[-1], keep_dims=True)
        y = mb.mul(x=mb.mul(x=x, y=mb.rsqrt(x=mb.add(x=var, y=t(1e-6)))),
                   y=(1 + 0.1 * rng.standard_normal(hidden)).astype(t))
        return mb.cast(x=y, dtype=dtype) if norm == "fp32_island" else y

    def heads_of(t):
        return mb.transpose(x=mb.reshape(x=t, shape=[1, seq, heads, hd]), perm=[0, 2, 1, 3])

    def attention(h):
        q, k, v = (heads_of(mb.linear(x=h, weight=w(hidden, hidden))) for _ in range(3))
        scores = mb.mul(x=mb.matmul(x=q, y=k, transpose_y=True), y=f(1 / math.sqrt(hd)))
        ctx = mb.transpose(x=mb.matmul(x=mb.softmax(x=scores, axis=-1), y=v), perm=[0, 2, 1, 3])
        return mb.linear(x=mb.reshape(x=ctx, shape=[1, seq, hidden]), weight=w(hidden, hidden))

    def mlp(h):
        gate = mb.silu(x=mb.linear(x=h, weight=w(inter, hidden)))
        return mb.linear(x=mb.mul(x=gate, y=mb.linear(x=h, weight=w(inter, hidden))), weight=w(hidden, inter))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, seq, hidden), dtype=types.string_to_builtin(dtype))],
                opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(layers):
            x = mb.add(x=x, y=attention(rms_norm(x)))
            x = mb.add(x=x, y=mlp(rms_norm(x)))
        return x

    return prog
