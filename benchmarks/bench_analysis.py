"""fp16 risk analysis time against program size, and its false positives on planted activations.

Synthetic transformer-shaped fp16 MIL programs built with the MIL builder (no torch): N layers of
a decomposed fp16 RMSNorm (pow, reduce_mean, add, rsqrt, mul, mul), attention (q/k/v linears,
reshapes, transposes, q·kᵀ, softmax, ·v, output linear), a second RMSNorm and a SiLU MLP, with
residual adds; hidden 256, 4 heads, sequence 64, MLP 1024. Sizes 8, 16, 32 and 64 layers.

For each size, best of the repeats, in seconds: ``propagate`` (static intervals for every var),
``static_findings``, ``to_networkx`` (with pattern matching and placement), the whole
``audit`` (static only), and ``calibrate`` (two executor runs, fp32 reference and typed fp16, on
one sample); plus µs per op and the growth exponent k of t ~ ops^k (least squares on log-log).
Target, stated before measuring: the 32-layer audit within a few seconds, k close to 1.

The third table does the same on every model of the zoo (``milguard.zoo``) with its planted
magnitudes, converted by the default fp16 pipeline and by ``milguard.pipeline()``, saved as a
package and reloaded: calibrated audit with the planted sample, static ranges from its hull.

The second table counts, on the three planted-activation programs of the analysis tests
(LLaMA RMSNorm at |x| = 300, masked softmax with finfo(float32).min, LayerNorm2d with ±1000
channels), the ops that go non-finite in the executor's fp16 run, the ops the calibrated and the
static analyses flag, and the false negatives and false positives of each.

Run: ``python benchmarks/bench_analysis.py [--quick]``; writes results/analysis.{json,md}.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAME = "analysis"
LAYERS_FULL = (8, 16, 32, 64)
LAYERS_QUICK = (8, 16)
REPEATS = 3
HIDDEN, HEADS, SEQ, INTER = 256, 4, 64, 1024


def measure(layers: int, repeats: int) -> dict[str, Any]:
    from milguard.analysis.calibrate import calibrate
    from milguard.analysis.findings import count, static_findings
    from milguard.analysis.graph import pattern_index, to_networkx
    from milguard.analysis.ranges import propagate
    from milguard.mil import iter_ops
    from milguard.report.audit import audit

    prog = common.llama_program(layers, hidden=HIDDEN, heads=HEADS, seq=SEQ, inter=INTER, dtype="fp16")
    fn = prog.functions["main"]
    ops = sum(1 for _ in iter_ops(fn))
    from milguard.analysis.norms import _spectral
    _spectral.cache_clear()                   # cold: spectral bounds of the weights computed
    t_cold, _ = common.best_of(lambda: propagate(prog), 1)
    t_prop, ranges = common.best_of(lambda: propagate(prog), repeats)
    matches = pattern_index(prog, "main")
    t_find, findings = common.best_of(lambda: static_findings(fn, ranges, matches), repeats)
    t_graph, graph = common.best_of(lambda: to_networkx(prog), repeats)
    t_audit, _ = common.best_of(lambda: audit(prog), repeats)
    sample = {"x": np.random.default_rng(1).normal(0, 1, (1, SEQ, HIDDEN)).astype(np.float32)}
    t_cal, _ = common.best_of(lambda: calibrate(prog, sample), 1)
    return {"layers": layers, "ops": ops, "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
            "patterns": len({id(m) for m in matches.values()}), "findings": count(findings),
            "propagate_cold_s": t_cold, "propagate_s": t_prop, "findings_s": t_find, "to_networkx_s": t_graph, "audit_s": t_audit,
            "calibrate_s": t_cal}


def planted_counts() -> list[dict[str, Any]]:
    path = HERE.parent / "tests" / "analysis" / "test_analysis_planted.py"
    spec = importlib.util.spec_from_file_location("analysis_planted_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    rows = []
    for name in sorted(module.CASES):
        for island in (False, True):
            _, static, calibrated, nonfinite = module.analyse(name, island)
            cal, sta = module._flagged(calibrated), module._flagged(static)
            rows.append({"model": name, "fp32_island": island, "nonfinite_ops": sorted(nonfinite),
                         "calibrated_flagged": sorted(cal), "static_flagged": sorted(sta),
                         "calibrated_false_negatives": len(nonfinite - cal),
                         "calibrated_false_positives": len(cal - nonfinite),
                         "static_false_negatives": len(nonfinite - sta),
                         "static_false_positives": len(sta - nonfinite)})
    return rows


def zoo_counts() -> list[dict[str, Any]]:
    """Every zoo model with its planted magnitudes, converted by the default fp16 pipeline and by
    milguard's, saved and reloaded: non-finite ops of the fp16 run against flagged ops."""
    import tempfile

    import milguard
    from milguard.mil import load
    from milguard.report.audit import audit
    from milguard.zoo import MODELS, convert

    risk = {"overflow", "nan", "nonfinite"}
    rows = []
    for name, entry in MODELS.items():
        sample = {n: t.numpy().astype(np.float32) for n, t in zip(entry.input_names, entry.planted_inputs(0))}
        hull = {n: (float(v.min()), float(v.max())) for n, v in sample.items()}
        for policy, kwargs in (("default fp16", {}), ("milguard", {"pass_pipeline": milguard.pipeline()})):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.mlpackage"
                convert(entry, **kwargs).save(str(path))
                fn = load(path).program.functions["main"]
                start = time.perf_counter()
                rep = audit(path, hull, calibration=sample)
                seconds = time.perf_counter() - start
                from milguard.executor import run
                with np.errstate(all="ignore"):
                    trace = run(path, sample, trace=True)
            producer = {v.name: op.name for op in fn.operations for v in op.outputs}
            nonfinite = {producer[k] for k, v in trace.items()
                         if k in producer and np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()}
            cal = {f.op for f in rep.findings if f.source == "calibration" and f.kind in risk}
            sta = {f.op for f in rep.findings if f.source == "static" and f.kind in risk}
            rows.append({"model": name, "policy": policy, "ops": rep.summary["ops"],
                         "nonfinite_ops": len(nonfinite), "calibrated_flagged": len(cal),
                         "calibrated_false_negatives": len(nonfinite - cal),
                         "calibrated_false_positives": len(cal - nonfinite),
                         "calibrated_errors": sum(1 for f in rep.findings
                                                  if f.source == "calibration" and f.severity == "error"),
                         "static_flagged": len(sta), "static_false_negatives": len(nonfinite - sta),
                         "audit_s": seconds, "scenario": entry.scenario.key})
    return rows


def markdown(rows: list[dict[str, Any]], growth: dict[str, float], planted: list[dict[str, Any]],
             load: list[float], zoo: list[dict[str, Any]]) -> str:
    out = ["# Analysis: fp16 risk analysis on transformer-shaped programs", "",
           f"Per layer: two decomposed fp16 RMSNorms, attention (hidden {HIDDEN}, {HEADS} heads, "
           f"sequence {SEQ}), SiLU MLP ({INTER}); default input range [-1, 1]. Best of {REPEATS}, seconds "
           "(calibrate: one sample, one run, i.e. two executor runs); 'propagate (cold)' is the first run, "
           "which computes the spectral-norm bounds of the attention weights (cached by content "
           "afterwards, as in audit); ops include consts. "
           f"Load average during the run {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} cores "
           "(a shared machine: timings are upper bounds).", "",
           "| layers | ops | patterns | static findings (warning/info) | propagate (cold) | propagate | findings "
           "| to_networkx | audit | µs/op (audit) | calibrate |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        sev = r["findings"]["by_severity"]
        out.append(f"| {r['layers']} | {r['ops']} | {r['patterns']} | {sev.get('warning', 0)}/{sev.get('info', 0)} | "
                   f"{r['propagate_cold_s']:.3f} | {r['propagate_s']:.3f} | {r['findings_s']:.3f} | {r['to_networkx_s']:.3f} | "
                   f"{r['audit_s']:.3f} | {1e6 * r['audit_s'] / r['ops']:.0f} | {r['calibrate_s']:.3f} |")
    out += ["", "Growth exponent k (t ~ ops^k): " + ", ".join(f"{k} {v:.2f}" for k, v in growth.items())
            + ". Target: the 32-layer audit within a few seconds; k close to 1.", "",
            "## Planted activations: flagged ops against ops that go non-finite in the fp16 run", "",
            "| model | fp32 island | non-finite ops | calibrated FN | calibrated FP | static FN | static FP |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for p in planted:
        out.append(f"| {p['model']} | {'yes' if p['fp32_island'] else 'no'} | {len(p['nonfinite_ops'])} | "
                   f"{p['calibrated_false_negatives']} | {p['calibrated_false_positives']} | "
                   f"{p['static_false_negatives']} | {p['static_false_positives']} |")
    if zoo:
        out += ["", "## Zoo models with planted magnitudes, saved and reloaded packages", "",
                "Static ranges: the hull of the sample input. FN/FP: false negatives/positives against "
                "the ops that go non-finite in the executor's fp16 run (accumulate fp32).", "",
                "| model | conversion | ops | non-finite ops | calibrated flagged | FN | FP | calibrated errors "
                "| static flagged | static FN | audit (s) |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for z in zoo:
            out.append(f"| {z['model']} | {z['policy']} | {z['ops']} | {z['nonfinite_ops']} | "
                       f"{z['calibrated_flagged']} | {z['calibrated_false_negatives']} | "
                       f"{z['calibrated_false_positives']} | {z['calibrated_errors']} | {z['static_flagged']} | "
                       f"{z['static_false_negatives']} | {z['audit_s']:.2f} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 and 16 layers only")
    args = parser.parse_args(argv)
    logging.getLogger("milguard").setLevel(logging.WARNING)
    load = [os.getloadavg()[0]]
    rows = [measure(n, REPEATS) for n in (LAYERS_QUICK if args.quick else LAYERS_FULL)]
    load.append(os.getloadavg()[0])
    ops = [r["ops"] for r in rows]
    growth = {key: common.growth_exponent(ops, [r[f"{key}_s"] for r in rows])
              for key in ("propagate_cold", "propagate", "findings", "to_networkx", "audit", "calibrate")}
    planted = planted_counts()
    try:
        zoo = [] if args.quick else zoo_counts()
    except ImportError:                 # the zoo needs torch
        zoo = []
    result = {"name": NAME, "python": platform.python_version(), "machine": platform.machine(),
              "hidden": HIDDEN, "heads": HEADS, "seq": SEQ, "inter": INTER, "repeats": REPEATS,
              "load_average": load, "rows": rows, "growth_exponent": growth, "planted": planted,
              "zoo": zoo}
    common.save_results(RESULTS, NAME, result, markdown(rows, growth, planted, load, zoo))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
