"""Precision policies side by side on every zoo model, fed activation magnitudes from the literature.

Every model is built at its realistic size (``size="realistic"`` of ``milguard.zoo``: hidden 512 and
sequence 64 for the text blocks, 65 tokens of width 512 for the ViT block, ConvNeXt-T's stage 1 at
56x56, SAM's neck at 256 channels; MiniLM as it is), where the default fp16 conversion is expected
on the Neural Engine, so that device transitions and relative cost mean something.

Policies (one ``ct.convert`` each, same traced model, same planted inputs):

* ``float32``             ``compute_precision=ct.precision.FLOAT32`` (the accuracy reference; off the ANE)
* ``fp16``                coremltools' default: every op fp16
* ``seed_pow_sqrt``       the seed article's stateful op selector: ops from a ``pow`` up to the next
                          ``sqrt`` stay fp32 (ailia, "Using Mixed Precision in Core ML")
* ``autocast_list``       an op-type list after PyTorch autocast's CUDA "float32" list
                          (pytorch docs/source/amp.rst; see ``AUTOCAST_FP32``)
* ``milguard``            ``pass_pipeline=milguard.pipeline()``: the default ``remedy="auto"`` with no
                          data: a region whose input range is unknown is at risk and gets the
                          cheapest remedy for compute units ALL
* ``milguard_calibrated`` ``milguard.pipeline(calibration=...)`` with the evaluated input as the
                          calibration sample: only the regions it puts at risk are remedied
* ``milguard_fp32``       ``milguard.pipeline(remedy="fp32")``: every decomposed region an fp32 island
                          (milguard's first behaviour)

Metrics against torch fp32 on the planted inputs, outputs computed by ``milguard.executor.run``
(typed fp16/fp32 semantics): SNR in dB (10 log10(sum ref^2 / sum err^2)) with fp32 accumulation and
with the pessimistic fp16 accumulation, max abs error, inf/NaN count and the op where they first
appear, share of FLOPs computed in fp16, fp32 compute ops and casts, the regions rescaled and kept
fp32, and from ``milguard.placement`` (M1, ALL): device segments, transitions and the relative cost
(relative only).

Verdicts, stated before measuring: a policy is *accurate* when its output is finite and its SNR is at
least ``ACCURATE_DB`` (40 dB: between the 35 dB parity threshold of apple/ml-stable-diffusion and the
60 dB of apple/ml-ane-transformers' DistilBERT test). The *fp16 floor* is the SNR the default fp16
conversion reaches on the same model's ordinary, unplanted inputs: the best an fp16 model can do.
The default remedy must reach the floor minus ``FLOOR_MARGIN_DB`` (3 dB) under both accumulation
modes, with no more Neural Engine transitions than default fp16 on at least 5 of the 7 models and
a relative cost at most ``COST_RATIO`` (1.10) times default fp16's.

Run: ``python benchmarks/bench_policies.py [--models a,b] [--size small]``; writes
results/bench_policies.{json,md}.
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
FLOOR_MARGIN_DB = 3.0
COST_RATIO = 1.10
MIN_MODELS_WITHOUT_EXTRA_TRANSITIONS = 5

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


def policies() -> dict[str, Callable[[tuple], dict[str, Any]]]:
    """policy name -> a function of the evaluated inputs giving fresh ct.convert keyword arguments."""
    import coremltools as ct

    import milguard

    return {
        "float32": lambda x: {"compute_precision": ct.precision.FLOAT32},
        "fp16": lambda x: {},
        "seed_pow_sqrt": lambda x: {"compute_precision": ct.transform.FP16ComputePrecision(
            op_selector=SeedSelector())},
        "autocast_list": lambda x: {"compute_precision": ct.transform.FP16ComputePrecision(
            op_selector=lambda op: op.op_type not in AUTOCAST_FP32)},
        "milguard": lambda x: {"pass_pipeline": milguard.pipeline()},
        "milguard_calibrated": lambda x: {"pass_pipeline": milguard.pipeline(calibration=x)},
        "milguard_fp32": lambda x: {"pass_pipeline": milguard.pipeline(remedy="fp32")},
    }


def placement_stats(fn: Any) -> dict[str, Any]:
    from milguard import placement

    summary = placement.summarize(fn, placement.predict(fn, compute_units="ALL", chip="M1"))
    return {"segments": len(summary.segments), "transitions": summary.transitions,
            "fp32_islands": summary.fp32_islands, "ane_flops_share": summary.flops_share.get("ane", 0.0),
            "relative_cost": summary.relative_cost}


def remedy_stats(program: Any) -> dict[str, Any]:
    """Regions rescaled and kept fp32 by milguard's passes during the conversion (0 for other policies)."""
    from milguard.actions.decide import remembered

    done = remembered(program)
    return {"rescaled": sum(d.remedy == "rescale" for d in done),
            "islands": sum(d.remedy == "fp32" for d in done)}


def evaluate(entry: Any, policy: str, make_kwargs: Callable[[tuple], dict[str, Any]], inputs: tuple,
             ref: np.ndarray, size: str) -> dict[str, Any]:
    """Convert with one policy and measure it; errors are recorded, not raised."""
    from milguard import executor, zoo
    from milguard.mil import load

    row: dict[str, Any] = {"policy": policy}
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    try:
        t0 = time.perf_counter()
        mlmodel = zoo.convert(entry, inputs=entry.example_inputs(size=size), size=size, **make_kwargs(feeds))
        row["convert_s"] = time.perf_counter() - t0
        program = load(mlmodel).program
        fn = program.functions["main"]
    except Exception as exc:  # noqa: BLE001 - a policy that cannot convert is a result
        row["error"] = f"convert: {type(exc).__name__}: {exc}"[:300]
        return row
    row.update(precision_stats(fn))
    row.update(remedy_stats(program))
    try:
        row.update(placement_stats(fn))
    except Exception as exc:  # noqa: BLE001
        row["placement_error"] = f"{type(exc).__name__}: {exc}"[:300]
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


def fp16_floor(entry: Any, size: str) -> dict[str, float]:
    """SNR of the default fp16 conversion on ordinary inputs (no planted magnitudes), per accumulation."""
    import torch

    from milguard import executor, zoo

    x = entry.example_inputs(size=size)
    with torch.no_grad():
        ref = entry.build(size=size)(*x).numpy().astype(np.float64)
    model = zoo.convert(entry, inputs=x, size=size)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, x)}
    return {acc: snr_db(ref, executor.run(model, feeds, accumulate=acc)[entry.output_names[0]].astype(np.float64))
            for acc in ("fp32", "fp16")}


def bench_model(name: str, size: str = "realistic") -> dict[str, Any]:
    import torch

    from milguard import zoo

    entry = zoo.MODELS[name]
    inputs = entry.planted_inputs(size=size)
    with torch.no_grad():
        ref = entry.build(size=size)(*inputs).numpy().astype(np.float64)
    s = entry.scenario
    result: dict[str, Any] = {
        "model": name, "description": entry.description,
        "scenario": {"key": s.key, "magnitude": s.magnitude, "where": s.where, "source": s.source,
                     "certainty": s.certainty},
        "size": size, "input_shapes": [list(s) for s in entry.shapes(size)],
        "planted_input_max_abs": float(inputs[0].abs().max()),
        "fp16_floor_by_accumulation": (floor := fp16_floor(entry, size)),
        "fp16_floor_db": floor["fp32"],
        "policies": {},
    }
    for policy, make in policies().items():
        result["policies"][policy] = evaluate(entry, policy, make, inputs, ref, size)
    return result


def verdicts(models: list[dict]) -> dict[str, Any]:
    """The claims, checked per model against the fp16 floor and default fp16's expected placement."""
    out = []
    for m in models:
        p = m["policies"]
        mg, fp16 = p["milguard"], p["fp16"]
        floor = m["fp16_floor_by_accumulation"]
        within = {acc: bool(mg.get(key, -math.inf) >= floor[acc] - FLOOR_MARGIN_DB)
                  for acc, key in (("fp32", "snr_db"), ("fp16", "snr_db_fp16_accumulate"))}
        cost = mg.get("relative_cost")
        ratio = cost / fp16["relative_cost"] if cost is not None and fp16.get("relative_cost") else None
        row = {"model": m["model"], "fp16_fails": not fp16.get("accurate", False),
               "milguard_accurate": mg.get("accurate", False),
               "within_floor": within["fp32"] and within["fp16"], "within_floor_by_accumulation": within,
               "extra_transitions": (mg.get("transitions", 0) or 0) - (fp16.get("transitions", 0) or 0),
               "cost_ratio": ratio, "cost_within": ratio is not None and ratio <= COST_RATIO,
               "fp16_flops": mg.get("flops_fp16_share"),
               "fp16_flops_islands": p["milguard_fp32"].get("flops_fp16_share"),
               "float32_reference_ok": p["float32"].get("snr_db", -math.inf) >= 60.0}
        out.append(row)
    no_extra = sum(r["extra_transitions"] <= 0 for r in out)
    return {"per_model": out, "accurate_db": ACCURATE_DB, "floor_margin_db": FLOOR_MARGIN_DB,
            "cost_ratio_limit": COST_RATIO,
            "all_within_floor": all(r["within_floor"] for r in out),
            "models_without_extra_transitions": no_extra,
            "transitions_claim_holds": no_extra >= min(MIN_MODELS_WITHOUT_EXTRA_TRANSITIONS, len(out)),
            "all_costs_within": all(r["cost_within"] for r in out)}


def _cell(row: dict) -> str:
    if "error" in row:
        return "error"
    snr = row["snr_db"]
    text = "inf/NaN" if snr == -math.inf else ("exact" if snr == math.inf else f"{snr:.1f}")
    text = f"**{text}**" if row.get("accurate") else text
    return f"{text} ({_fmt_pct(row['flops_fp16_share'])})"


def markdown(result: dict) -> str:
    names = list(policies_order())
    size = result.get("size", "realistic")
    lines = [
        "# Precision policies on the model zoo (planted activation magnitudes)",
        "",
        f"Zoo size: {size} (input shapes below). Output SNR in dB against torch fp32 (bold: finite and "
        f">= {ACCURATE_DB:.0f} dB) and, in parentheses, the share of FLOPs computed in fp16 (percentages here "
        "are truncated, never rounded up). Outputs from milguard's numpy executor with typed fp16/fp32 "
        "semantics and fp32 accumulation.",
        "",
        "| model | planted max abs | fp16 floor | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for m in result["models"]:
        cells = [_cell(m["policies"][p]) for p in names]
        lines.append(f"| {m['model']} | {m['scenario']['magnitude'] or m['planted_input_max_abs']:.3g} | "
                     f"{m['fp16_floor_db']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "## Cost of each policy", "",
              "SNR (acc16): the same output with fp16 ops accumulating in fp16 (the executor's pessimistic "
              "mode). fp16 FLOPs: share of FLOPs in fp16 ops. Rescaled / islands: regions milguard rewrote "
              "fp16-safely / kept fp32. Segments / transitions / cost: expected placement on an M1 with compute "
              "units ALL (`milguard.placement`; the cost is relative only).", "",
              "| model | policy | max abs err | inf/NaN | SNR (acc16) | fp16 FLOPs | fp32 ops | casts | rescaled "
              "| islands | segments | transitions | rel. cost |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in result["models"]:
        for p in names:
            r = m["policies"][p]
            if "error" in r:
                lines.append(f"| {m['model']} | {p} | {r['error'][:80]} ||||||||||| ")
                continue
            lines.append(
                f"| {m['model']} | {p} | {r['max_abs_err']:.3g} | {r['nonfinite']} | "
                f"{common.db_text(r.get('snr_db_fp16_accumulate'))} | {_fmt_pct(r['flops_fp16_share'])} | "
                f"{r['fp32_ops']} | {r['casts']} | {r.get('rescaled', 0)} | {r.get('islands', 0)} | "
                f"{r.get('segments', '–')} | {r.get('transitions', '–')} | {_fmt(r.get('relative_cost'))} |")
    v = result["verdicts"]
    lines += ["", "## The claims, checked", "",
              f"The default `milguard.pipeline()` against default fp16 and the fp16 floor (the SNR default fp16 "
              f"reaches on ordinary inputs, per accumulation mode): SNR at least the floor - {FLOOR_MARGIN_DB:.0f} dB "
              f"in both modes; no extra Neural Engine transition on at least {MIN_MODELS_WITHOUT_EXTRA_TRANSITIONS} "
              f"of the models; relative cost at most {COST_RATIO:.2f}x default fp16's.", "",
              "| model | fp16 fails | floor (acc32 / acc16) | milguard (acc32 / acc16) | within floor | extra "
              "transitions | cost / fp16 | fp16 FLOPs (milguard / islands) | FLOAT32 ok |",
              "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r, m in zip(v["per_model"], result["models"]):
        floor, mg = m["fp16_floor_by_accumulation"], m["policies"]["milguard"]
        lines.append(f"| {r['model']} | {_yn(r['fp16_fails'])} | {floor['fp32']:.1f} / {floor['fp16']:.1f} | "
                     f"{common.db_text(mg.get('snr_db'))} / {common.db_text(mg.get('snr_db_fp16_accumulate'))} | "
                     f"{_yn(r['within_floor'])} | {r['extra_transitions']} | {_ratio(r['cost_ratio'])} | "
                     f"{_fmt_pct(r['fp16_flops'])} / {_fmt_pct(r['fp16_flops_islands'])} | "
                     f"{_yn(r['float32_reference_ok'])} |")
    lines += ["", f"Within the floor on every model: **{_yn(v['all_within_floor'])}**. No extra transition on "
              f"**{v['models_without_extra_transitions']} of {len(v['per_model'])}** models. Relative cost within "
              f"{COST_RATIO:.2f}x on every model: **{_yn(v['all_costs_within'])}**."]
    calibrated = result.get("minilm_calibrated")
    if calibrated:
        lines += ["", f"MiniLM calibrated on its {calibrated['samples']} real sentences (nothing at risk): "
                  f"{calibrated['rescaled']} regions rescaled, {calibrated['islands']} fp32 islands; the program "
                  f"equals the default conversion op for op ({calibrated['ops']} ops): "
                  f"**{_yn(calibrated['equal_op_for_op'])}**."]
    if any(m["model"] == "minilm" for m in result["models"]):
        lines += minilm_ranges_markdown()
    lines += ["", "## Planted magnitudes and sources", ""]
    for m in result["models"]:
        s = m["scenario"]
        shapes = ", ".join("x".join(str(d) for d in sh) for sh in m.get("input_shapes", []))
        lines.append(f"- **{m['model']}** (input {shapes}; {s['key']}, max |x| {s['magnitude']:.4g} at "
                     f"`{s['where'] or 'input'}`, certainty {s['certainty']}): {s['source']}")
    return "\n".join(lines) + "\n"


def _ratio(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def minilm_calibrated_equals_default() -> dict[str, Any]:
    """MiniLM with its trained weights, calibrated on its real sentences (nothing at risk): the
    program milguard's default pipeline gives, against the default conversion, op for op."""
    from milguard import zoo
    from milguard.mil import dtype_name, iter_ops, load

    import milguard

    from milguard.zoo import minilm

    entry = zoo.MODELS["minilm"]
    samples = [{n: t.numpy() for n, t in zip(entry.input_names, entry.example_inputs(seed))}
               for seed in range(len(minilm.SENTENCES))]

    def signature(model: Any) -> list[tuple[str, str | None]]:
        fn = load(model).program.functions["main"]
        return [(op.op_type, dtype_name(op.outputs[0])) for op in iter_ops(fn) if op.op_type != "const"]

    guarded = zoo.convert(entry, pass_pipeline=milguard.pipeline(calibration=samples))
    plain = zoo.convert(entry)
    ours, theirs = signature(guarded), signature(plain)
    stats = remedy_stats(load(guarded).program)
    return {"samples": len(samples), "ops": len(ours), "equal_op_for_op": ours == theirs, **stats}


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
    return ("float32", "fp16", "seed_pow_sqrt", "autocast_list", "milguard", "milguard_calibrated", "milguard_fp32")


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
    ap.add_argument("--size", default="realistic", choices=("small", "realistic"), help="zoo size (realistic)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    common.quiet()
    models = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        models.append(bench_model(name, args.size))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    result = {"name": NAME, "machine": platform.platform(), "size": args.size, "models": models,
              "verdicts": verdicts(models), "minilm_calibrated": minilm_calibrated_equals_default()
              if "minilm" in args.models.split(",") else None}
    common.save_results(args.out, NAME, common.json_safe(result), markdown(result))
    return result


if __name__ == "__main__":
    main()
