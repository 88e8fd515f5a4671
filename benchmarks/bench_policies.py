"""Precision policies side by side on every zoo model, fed activation magnitudes from the literature.

Policies (one ``ct.convert`` each, same traced model, same planted inputs):

* ``float32``        ``compute_precision=ct.precision.FLOAT32`` (the accuracy reference; off the ANE)
* ``fp16``           coremltools' default: every op fp16
* ``seed_pow_sqrt``  the seed article's stateful op selector: ops from a ``pow`` up to the next
                     ``sqrt`` stay fp32 (ailia, "Using Mixed Precision in Core ML")
* ``autocast_list``  an op-type list after PyTorch autocast's CUDA "float32" list
                     (pytorch docs/source/amp.rst; see ``AUTOCAST_FP32``)
* ``milguard``       ``pass_pipeline=milguard.pipeline()``: whole matched regions fp32
* ``milguard_core``  ``pass_pipeline=milguard.pipeline(scope="core")``: only the overflow-prone core

Metrics against torch fp32 on the planted inputs, outputs computed by ``milguard.executor.run``
(typed fp16/fp32 semantics, fp32 accumulation): max abs error, SNR in dB
(10 log10(sum ref^2 / sum err^2)), inf/NaN count and the op where they first appear, share of
FLOPs computed in fp16, number of fp32 compute ops, and from ``milguard.placement`` (M1, ALL):
device segments, transitions and the relative cost (relative only).

Verdicts: a policy is *accurate* when its output is finite and its SNR is at least
``ACCURATE_DB`` (40 dB: between the 35 dB parity threshold of apple/ml-stable-diffusion and the
60 dB of apple/ml-ane-transformers' DistilBERT test); default fp16 *fails* a model when it is not
accurate there. ``FP16_FLOOR`` is the SNR default fp16 reaches on the same model's ordinary,
unplanted inputs: the best an fp16 model can do, so the honest target for milguard.

Run: ``python benchmarks/bench_policies.py [--models a,b]``; writes results/bench_policies.{json,md}.
"""
from __future__ import annotations

import argparse
import logging
import math
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402
from common import precision_stats, snr_db  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_policies"
ACCURATE_DB = 40.0
FLOOR_MARGIN_DB = 6.0

# PyTorch autocast (CUDA) ops that autocast to float32, by their MIL op type. Torch's list names
# __pow__/pow, exp, log*, __rdiv__/__rtruediv__, sum, prod, cumsum, softmax/log_softmax/softmin,
# softplus, layer_norm, group_norm, normalize, norm, rsqrt, reciprocal, logsumexp and a few
# trigonometric ops. reduce_mean (a sum divided by n) and every real_div are added as the task's
# op list has them; sqrt is not on torch's list.
AUTOCAST_FP32 = frozenset({
    "pow", "exp", "log", "real_div", "reduce_sum", "reduce_mean", "reduce_prod", "cumsum", "softmax",
    "softplus", "layer_norm", "instance_norm", "l2_norm", "reduce_l2_norm", "rsqrt", "inverse",
    "reduce_log_sum_exp", "tan", "sinh", "cosh", "acos", "asin",
})


class SeedSelector:
    """The seed article's selector, verbatim in behaviour: fp32 from a ``pow`` up to the next ``sqrt``.

    ``add_fp16_cast`` calls it once per op in program order. With an ``rsqrt`` norm (LLaMA, T5,
    Gemma) no ``sqrt`` ever closes the window, so everything after the first ``pow`` stays fp32.
    """

    def __init__(self) -> None:
        self.layer_norm = False

    def __call__(self, op: Any) -> bool:
        if op.op_type == "pow":
            self.layer_norm = True
        is_fp16 = not self.layer_norm
        if op.op_type == "sqrt":
            self.layer_norm = False
        return is_fp16


def policies() -> dict[str, Callable[[], dict[str, Any]]]:
    """policy name -> a function giving fresh ct.convert keyword arguments."""
    import coremltools as ct

    import milguard

    return {
        "float32": lambda: {"compute_precision": ct.precision.FLOAT32},
        "fp16": lambda: {},
        "seed_pow_sqrt": lambda: {"compute_precision": ct.transform.FP16ComputePrecision(
            op_selector=SeedSelector())},
        "autocast_list": lambda: {"compute_precision": ct.transform.FP16ComputePrecision(
            op_selector=lambda op: op.op_type not in AUTOCAST_FP32)},
        "milguard": lambda: {"pass_pipeline": milguard.pipeline()},
        "milguard_core": lambda: {"pass_pipeline": milguard.pipeline(scope="core")},
    }


def placement_stats(fn: Any) -> dict[str, Any]:
    from milguard import placement

    summary = placement.summarize(fn, placement.predict(fn, compute_units="ALL", chip="M1"))
    return {"segments": len(summary.segments), "transitions": summary.transitions,
            "fp32_islands": summary.fp32_islands, "ane_flops_share": summary.flops_share.get("ane", 0.0),
            "relative_cost": summary.relative_cost}


def evaluate(entry: Any, policy: str, ct_kwargs: dict[str, Any], inputs: tuple, ref: np.ndarray) -> dict[str, Any]:
    """Convert with one policy and measure it; errors are recorded, not raised."""
    from milguard import executor, zoo
    from milguard.mil import load

    row: dict[str, Any] = {"policy": policy}
    try:
        t0 = time.perf_counter()
        mlmodel = zoo.convert(entry, inputs=entry.example_inputs(), **ct_kwargs)
        row["convert_s"] = time.perf_counter() - t0
        fn = load(mlmodel).program.functions["main"]
    except Exception as exc:  # noqa: BLE001 - a policy that cannot convert is a result
        row["error"] = f"convert: {type(exc).__name__}: {exc}"[:300]
        return row
    row.update(precision_stats(fn))
    try:
        row.update(placement_stats(fn))
    except Exception as exc:  # noqa: BLE001
        row["placement_error"] = f"{type(exc).__name__}: {exc}"[:300]
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    try:
        out = executor.run(mlmodel, feeds)[entry.output_names[0]].astype(np.float64)
    except Exception as exc:  # noqa: BLE001
        row["error"] = f"executor: {type(exc).__name__}: {exc}"[:300]
        return row
    row["nonfinite"] = int(np.size(out) - np.isfinite(out).sum())
    finite = np.isfinite(out)
    row["max_abs_err"] = float(np.abs(out - ref)[finite].max()) if finite.any() else math.inf
    if row["nonfinite"]:
        row["max_abs_err"] = math.inf
        trace = executor.run(mlmodel, feeds, trace=True)
        row["first_nonfinite"] = executor.first_nonfinite(mlmodel, trace)
    row["snr_db"] = snr_db(ref, out)
    row["accurate"] = bool(row["nonfinite"] == 0 and row["snr_db"] >= ACCURATE_DB)
    # the pessimistic hardware assumption: fp16 ops also accumulate their sums in fp16
    out16 = executor.run(mlmodel, feeds, accumulate="fp16")[entry.output_names[0]].astype(np.float64)
    row["snr_db_fp16_accumulate"] = snr_db(ref, out16)
    return row


def fp16_floor(entry: Any) -> float:
    """SNR of the default fp16 conversion on ordinary inputs (no planted magnitudes)."""
    import torch

    from milguard import executor, zoo

    x = entry.example_inputs()
    with torch.no_grad():
        ref = entry.build()(*x).numpy().astype(np.float64)
    out = executor.run(zoo.convert(entry, inputs=x), {n: t.numpy() for n, t in zip(entry.input_names, x)})
    return snr_db(ref, out[entry.output_names[0]].astype(np.float64))


def bench_model(name: str) -> dict[str, Any]:
    import torch

    from milguard import zoo

    entry = zoo.MODELS[name]
    inputs = entry.planted_inputs()
    with torch.no_grad():
        ref = entry.build()(*inputs).numpy().astype(np.float64)
    s = entry.scenario
    result: dict[str, Any] = {
        "model": name, "description": entry.description,
        "scenario": {"key": s.key, "magnitude": s.magnitude, "where": s.where, "source": s.source,
                     "certainty": s.certainty},
        "planted_input_max_abs": float(inputs[0].abs().max()),
        "fp16_floor_db": fp16_floor(entry),
        "policies": {},
    }
    for policy, kwargs in policies().items():
        result["policies"][policy] = evaluate(entry, policy, kwargs(), inputs, ref)
    return result


def verdicts(models: list[dict]) -> dict[str, Any]:
    """The issue's claim, checked: where fp16 fails, milguard is accurate and keeps >= 99% FLOPs fp16."""
    out = []
    for m in models:
        p = m["policies"]
        fp16_fails = not p["fp16"].get("accurate", False)
        mg = p["milguard"]
        row = {"model": m["model"], "fp16_fails": fp16_fails,
               "milguard_accurate": mg.get("accurate", False),
               "milguard_within_floor": bool(mg.get("snr_db", -math.inf) >= m["fp16_floor_db"] - FLOOR_MARGIN_DB),
               "milguard_fp16_flops": mg.get("flops_fp16_share"),
               "float32_reference_ok": p["float32"].get("snr_db", -math.inf) >= 60.0}
        keeps_fp16 = (row["milguard_fp16_flops"] or 0.0) >= 0.99
        row["claim_holds"] = (not fp16_fails) or (row["milguard_accurate"] and keeps_fp16)
        out.append(row)
    return {"per_model": out, "claim_holds_everywhere": all(r["claim_holds"] for r in out),
            "accurate_db": ACCURATE_DB, "floor_margin_db": FLOOR_MARGIN_DB}


def _cell(row: dict) -> str:
    if "error" in row:
        return "error"
    snr = row["snr_db"]
    text = "inf/NaN" if snr == -math.inf else ("exact" if snr == math.inf else f"{snr:.1f}")
    text = f"**{text}**" if row.get("accurate") else text
    return f"{text} ({_fmt_pct(row['flops_fp16_share'])})"


def markdown(result: dict) -> str:
    names = list(policies_order())
    lines = [
        "# Precision policies on the model zoo (planted activation magnitudes)",
        "",
        f"Output SNR in dB against torch fp32 (bold: finite and >= {ACCURATE_DB:.0f} dB) and, in parentheses, "
        "the share of FLOPs computed in fp16 (percentages here are truncated, never rounded up). "
        "Outputs from milguard's numpy executor with typed fp16/fp32 semantics.",
        "",
        "| model | planted max abs | fp16 floor | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for m in result["models"]:
        cells = [_cell(m["policies"][p]) for p in names]
        lines.append(f"| {m['model']} | {m['scenario']['magnitude'] or m['planted_input_max_abs']:.3g} | "
                     f"{m['fp16_floor_db']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "## Cost of each policy", "",
              "fp16 FLOPs: share of FLOPs in fp16 ops. Segments / transitions / cost: expected placement on an "
              "M1 with compute units ALL (`milguard.placement`; the cost is relative only).", "",
              "SNR (acc16): the same output with fp16 ops accumulating in fp16 (the executor's pessimistic mode).", "",
              "| model | policy | max abs err | inf/NaN | SNR (acc16) | fp16 FLOPs | fp32 ops | casts | segments "
              "| transitions | rel. cost |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in result["models"]:
        for p in names:
            r = m["policies"][p]
            if "error" in r:
                lines.append(f"| {m['model']} | {p} | {r['error'][:80]} ||||||||| ")
                continue
            lines.append(
                f"| {m['model']} | {p} | {r['max_abs_err']:.3g} | {r['nonfinite']} | "
                f"{common.db_text(r.get('snr_db_fp16_accumulate'))} | {_fmt_pct(r['flops_fp16_share'])} | "
                f"{r['fp32_ops']} | {r['casts']} | {r.get('segments', '–')} | {r.get('transitions', '–')} | "
                f"{_fmt(r.get('relative_cost'))} |")
    v = result["verdicts"]
    lines += ["", "## The claim, checked", "",
              f"Where default fp16 is not accurate, milguard (whole regions) must be accurate (>= {ACCURATE_DB:.0f} dB, "
              "finite) with >= 99% of FLOPs in fp16.", "",
              "| model | fp16 fails | milguard accurate | within fp16 floor - 6 dB | milguard fp16 FLOPs "
              "| FLOAT32 reference ok | holds |",
              "|---|---|---|---|---:|---|---|"]
    for r in v["per_model"]:
        lines.append(f"| {r['model']} | {_yn(r['fp16_fails'])} | {_yn(r['milguard_accurate'])} | "
                     f"{_yn(r['milguard_within_floor'])} | {_fmt_pct(r['milguard_fp16_flops'])} | "
                     f"{_yn(r['float32_reference_ok'])} | {_yn(r['claim_holds'])} |")
    lines += ["", f"Claim holds on every model: **{_yn(v['claim_holds_everywhere'])}**."]
    if any(m["model"] == "minilm" for m in result["models"]):
        lines += minilm_ranges_markdown()
    lines += ["", "## Planted magnitudes and sources", ""]
    for m in result["models"]:
        s = m["scenario"]
        lines.append(f"- **{m['model']}** ({s['key']}, max |x| {s['magnitude']:.4g} at `{s['where'] or 'input'}`, "
                     f"certainty {s['certainty']}): {s['source']}")
    return "\n".join(lines) + "\n"


def minilm_ranges_markdown() -> list[str]:
    """The committed real-activation measurement of MiniLM, against the fp16 square limit."""
    from milguard.fp16 import SQUARE_LIMIT as FP16_SQUARE_LIMIT
    from milguard.zoo import minilm

    data = minilm.measured_ranges()
    lines = ["", "## MiniLM: real activation ranges (trained weights, fp32)", "",
             f"max |x| over {len(data['sentences'])} sentences at every LayerNorm input; x^2 overflows fp16 "
             f"above {FP16_SQUARE_LIMIT:.1f}.", "", "| norm input | max abs | of the fp16 square limit |",
             "|---|---:|---:|"]
    for key, value in sorted(data["max_abs"].items()):
        if key.startswith("norm_input:"):
            lines.append(f"| {key.split(':', 1)[1]} | {value:.2f} | {value / FP16_SQUARE_LIMIT:.0%} |")
    return lines


def policies_order() -> tuple[str, ...]:
    return ("float32", "fp16", "seed_pow_sqrt", "autocast_list", "milguard", "milguard_core")


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}"


def _fmt_pct(v: Any) -> str:
    return "–" if v is None else common.truncated_pct(v)


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from milguard import zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.MODELS), help="comma-separated zoo model names")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    common.quiet()
    models = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        models.append(bench_model(name))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    result = {"name": NAME, "machine": platform.platform(), "models": models,
              "verdicts": verdicts(models)}
    common.save_results(args.out, NAME, common.json_safe(result), markdown(result))
    return result


if __name__ == "__main__":
    main()
