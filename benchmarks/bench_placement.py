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
import logging
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "placement"
LAYERS_FULL = (14, 45, 134, 450)
LAYERS_QUICK = (14, 45)
REPEATS = 3


def run(layer_counts: tuple[int, ...]) -> dict[str, Any]:
    from milguard.placement import PlacementOptions, predict, summarize

    options = PlacementOptions(size_floor_flops=0, min_ane_segment_flops=0)

    rows = []
    for layers in layer_counts:
        prog = common.llama_program(layers, hidden=64, seq=16, inter=128, dtype="fp16", norm="fp32_island")
        ops = len(list(prog.functions["main"].operations))
        t_predict, placements = common.best_of(lambda: predict(prog, options=options), REPEATS)
        t_summary, summary = common.best_of(lambda: summarize(prog, placements), REPEATS)
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
        "k_predict": common.growth_exponent(ops, [r["predict_s"] for r in rows]),
        "k_summarize": common.growth_exponent(ops, [r["summarize_s"] for r in rows]),
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
    common.save_results(RESULTS, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
