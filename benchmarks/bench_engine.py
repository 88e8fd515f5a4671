"""Pattern-engine throughput: ``find_patterns`` on synthetic transformer programs of 1k to 100k ops.

Each layer holds one decomposed LayerNorm (last axis, sqrt + real_div, affine), a hand-written
max-shifted softmax attention, and a LLaMA RMSNorm feeding a ReLU MLP: all three pattern families,
so every anchor index and every rule is exercised. Target: linear growth, 10k ops well under 1 s.

    python benchmarks/bench_engine.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

NAME = "engine"
RESULTS = Path(__file__).resolve().parent / "results"
LAYERS_FULL = (17, 170, 1700)      # about 1k, 10k and 100k ops, consts included
LAYERS_QUICK = (17, 50)


def transformer_program(layers: int, hidden: int = 32, seq: int = 8):
    """A pymil Program of ``layers`` pre-norm transformer layers built from decomposed norms."""
    import coremltools as ct

    from milguard.mil import mb

    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)

    def layer_norm(h):
        d = mb.sub(x=h, y=mb.reduce_mean(x=h, axes=[-1], keep_dims=True))
        var = mb.reduce_mean(x=mb.pow(x=d, y=2.0), axes=[-1], keep_dims=True)
        n = mb.real_div(x=d, y=mb.sqrt(x=mb.add(x=var, y=1e-5)))
        return mb.add(x=mb.mul(x=n, y=w(hidden)), y=w(hidden))

    def rms_norm(h):
        var = mb.reduce_mean(x=mb.mul(x=h, y=h), axes=[-1], keep_dims=True)
        return mb.mul(x=w(hidden), y=mb.mul(x=h, y=mb.rsqrt(x=mb.add(x=var, y=1e-6))))

    def attention(h):
        q, k, v = (mb.linear(x=h, weight=w(hidden, hidden)) for _ in range(3))
        s = mb.matmul(x=q, y=k, transpose_y=True)
        e = mb.exp(x=mb.sub(x=s, y=mb.reduce_max(x=s, axes=[-1], keep_dims=True)))
        p = mb.real_div(x=e, y=mb.reduce_sum(x=e, axes=[-1], keep_dims=True))
        return mb.linear(x=mb.matmul(x=p, y=v), weight=w(hidden, hidden))

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, seq, hidden))], opset_version=ct.target.iOS17)
    def prog(x):
        h = x
        for _ in range(layers):
            h = mb.add(x=h, y=attention(layer_norm(h)))
            h = mb.add(x=h, y=mb.linear(x=mb.relu(x=mb.linear(x=rms_norm(h), weight=w(hidden, hidden))),
                                        weight=w(hidden, hidden)))
        return h

    return prog


def measure(layers: int, repeats: int) -> dict[str, Any]:
    from milguard import find_patterns
    from milguard.mil import iter_ops

    t0 = time.perf_counter()
    prog = transformer_program(layers)
    build_s = time.perf_counter() - t0
    ops = sum(1 for _ in iter_ops(prog.functions["main"]))
    times, matches = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        matches = find_patterns(prog)
        times.append(time.perf_counter() - t0)
    kinds = {k: sum(m.kind == k for m in matches) for k in ("layer_norm", "rms_norm", "softmax")}
    assert kinds == {"layer_norm": layers, "rms_norm": layers, "softmax": layers}, kinds
    best = min(times)
    return {"layers": layers, "ops": ops, "matches": len(matches), "find_patterns_s": best,
            "us_per_op": 1e6 * best / ops, "build_s": build_s, "repeats": repeats}




def markdown(result: dict) -> str:
    lines = ["# Pattern engine: find_patterns on synthetic transformer programs", "",
             "Per layer: decomposed LayerNorm, max-shifted softmax attention, RMSNorm + ReLU MLP. "
             "Best of the repeats, seconds.", "",
             "| layers | ops | matches | find_patterns (s) | µs per op |", "|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['layers']} | {r['ops']} | {r['matches']} | {r['find_patterns_s']:.3f} | "
                     f"{r['us_per_op']:.1f} |")
    lines += ["", f"Growth exponent k (t ~ ops^k): {result['exponent']:.2f}. Target: k near 1, "
                  "10k ops well under 1 s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    common.quiet()
    rows = []
    for layers in (LAYERS_QUICK if args.quick else LAYERS_FULL):
        rows.append(measure(layers, repeats=3 if layers < 1000 else 1))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"name": NAME, "quick": args.quick, "machine": platform.platform(), "rows": rows,
              "exponent": common.growth_exponent([r["ops"] for r in rows], [r["find_patterns_s"] for r in rows])}
    common.save_results(args.out, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    main()
