"""Placement prediction at LLM scale: milguard.placement.predict and summarize against program size.

Synthetic LLaMA-shaped fp16 MIL programs built with the MIL builder (no torch): N layers of an
fp32 RMSNorm island (cast → pow, reduce_mean, add, rsqrt, mul → cast), attention (linears,
reshapes, transposes, matmuls, softmax), a second island and a SiLU MLP, from about 1k to about
34k ops (consts included). The layers are narrow (width 64) to keep building fast, so the
whole-model size floor and the small-segment rule are switched off (``size_floor_flops=0``,
``min_ane_segment_flops=0``) to place them as a full-size model would be placed. For each
size: seconds for ``predict`` (ALL, M1) and for ``summarize``, best of the repeats, µs per op, and the growth exponent k of t ~ ops^k (least
squares on log-log). Target, stated before measuring: k close to 1 (both are single passes over
the ops) and under 50 µs per op, i.e. well under a second for a 10k-op program.

Run: ``python benchmarks/bench_placement.py [--quick]``; writes results/placement.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "placement"
LAYERS_FULL = (14, 45, 134, 450)
LAYERS_QUICK = (14, 45)
REPEATS = 3


def llama_program(layers: int, hidden: int = 64, heads: int = 2, seq: int = 16, inter: int = 128):
    """A pymil Program of ``layers`` fp16 LLaMA-shaped layers with fp32 RMSNorm islands."""
    import coremltools as ct

    from milguard.mil import mb, types

    rng = np.random.default_rng(0)
    hd = hidden // heads

    def w(*shape: int) -> np.ndarray:
        return (0.1 * rng.standard_normal(shape)).astype(np.float16)

    def rms_norm_fp32(h):
        x = mb.cast(x=h, dtype="fp32")
        var = mb.reduce_mean(x=mb.pow(x=x, y=np.float32(2)), axes=[-1], keep_dims=True)
        y = mb.mul(x=x, y=mb.rsqrt(x=mb.add(x=var, y=np.float32(1e-6))))
        return mb.cast(x=y, dtype="fp16")

    def heads_of(t):
        return mb.transpose(x=mb.reshape(x=t, shape=[1, seq, heads, hd]), perm=[0, 2, 1, 3])

    def attention(h):
        q, k, v = (heads_of(mb.linear(x=h, weight=w(hidden, hidden))) for _ in range(3))
        scores = mb.softmax(x=mb.matmul(x=q, y=k, transpose_y=True), axis=-1)
        a = mb.transpose(x=mb.matmul(x=scores, y=v), perm=[0, 2, 1, 3])
        return mb.linear(x=mb.reshape(x=a, shape=[1, seq, hidden]), weight=w(hidden, hidden))

    def mlp(h):
        return mb.linear(x=mb.silu(x=mb.linear(x=h, weight=w(inter, hidden))), weight=w(hidden, inter))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, seq, hidden), dtype=types.fp16)],
                opset_version=ct.target.iOS17)
    def prog(x):
        for _ in range(layers):
            x = mb.add(x=x, y=attention(rms_norm_fp32(x)))
            x = mb.add(x=x, y=mlp(rms_norm_fp32(x)))
        return x
    return prog


def _best(fn, repeats: int = REPEATS) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _exponent(ops: list[int], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(ops), np.log(seconds), 1)[0]) if len(ops) > 1 else float("nan")


def run(layer_counts: tuple[int, ...]) -> dict[str, Any]:
    from milguard.placement import PlacementOptions, predict, summarize

    options = PlacementOptions(size_floor_flops=0, min_ane_segment_flops=0)

    rows = []
    for layers in layer_counts:
        prog = llama_program(layers)
        ops = len(list(prog.functions["main"].operations))
        t_predict, placements = _best(lambda: predict(prog, options=options))
        t_summary, summary = _best(lambda: summarize(prog, placements))
        rows.append({"layers": layers, "ops": ops, "placed_ops": len(placements),
                     "predict_s": t_predict, "summarize_s": t_summary,
                     "predict_us_per_op": 1e6 * t_predict / ops,
                     "summarize_us_per_op": 1e6 * t_summary / ops,
                     "segments": len(summary.segments), "transitions": summary.transitions,
                     "fp32_islands": summary.fp32_islands})
    ops = [r["ops"] for r in rows]
    return {
        "benchmark": NAME, "python": platform.python_version(), "machine": platform.machine(),
        "repeats": REPEATS, "rows": rows,
        "k_predict": _exponent(ops, [r["predict_s"] for r in rows]),
        "k_summarize": _exponent(ops, [r["summarize_s"] for r in rows]),
        "target": "k close to 1; under 50 µs per op",
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Placement: predict and summarize on synthetic LLaMA-shaped programs",
        "",
        "Per layer: two fp32 RMSNorm islands (7 ops each), attention, SiLU MLP; fp16 elsewhere. "
        "Size floors off (narrow layers). "
        f"Best of {result['repeats']}, seconds; ops include consts.",
        "",
        "| layers | ops | placed | segments | transitions | islands | predict (s) | µs/op "
        "| summarize (s) | µs/op |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['layers']} | {r['ops']} | {r['placed_ops']} | {r['segments']} "
                     f"| {r['transitions']} | {r['fp32_islands']} | {r['predict_s']:.3f} "
                     f"| {r['predict_us_per_op']:.1f} | {r['summarize_s']:.3f} "
                     f"| {r['summarize_us_per_op']:.1f} |")
    lines += ["", f"Growth exponent k (t ~ ops^k): predict {result['k_predict']:.2f}, "
              f"summarize {result['k_summarize']:.2f}. Target: {result['target']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the two smallest sizes only")
    args = parser.parse_args(argv if argv is not None else [])
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    result = run(LAYERS_QUICK if args.quick else LAYERS_FULL)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
