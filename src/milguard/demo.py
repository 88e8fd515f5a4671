"""milguard's main job on the bundled example: convert with and without milguard, compare, audit.

    python -m milguard.demo [--out DIR]

The example is the zoo's LLaMA-style decoder layer at a realistic width (hidden 512, 64 tokens:
large enough that the fp16 model is expected on the Neural Engine) fed a residual stream with
massive activations of the size measured in LLaMA2-7B (its source is printed). It is converted four
ways: the default fp16 conversion; with ``milguard.pipeline()`` (the default remedy: each region at
risk gets the cheapest fix); with ``milguard.pipeline(remedy="fp32")`` (every norm an fp32 island);
and FLOAT32. Each program is run by milguard's reference executor and compared with torch in fp32,
and its expected placement predicted. Then the default fp16 model is audited with the planted
inputs as calibration data, and the packages are saved under DIR.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from milguard.progress import quiet

DEFAULT_OUT = Path("out") / "demo"


def snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    if not np.all(np.isfinite(out)):
        return float("-inf")
    noise = float(np.sum((out - ref) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(ref ** 2)) / noise)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m milguard.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to save the packages ({DEFAULT_OUT})")
    args = ap.parse_args(argv)
    with quiet():
        return _run(args.out)


def _run(out_dir: Path) -> int:
    import coremltools as ct
    import torch

    import milguard
    from milguard import zoo
    from milguard.actions.decide import remembered
    from milguard.executor import first_nonfinite, run
    from milguard.mil import converted_program, dtype_name, iter_ops
    from milguard.placement import predict, summarize

    entry = zoo.MODELS[zoo.EXAMPLE]
    size = "realistic"
    inputs = entry.planted_inputs(0, size)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    with torch.no_grad():
        ref = entry.build(0, size)(*inputs)
    ref = (ref[0] if isinstance(ref, tuple) else ref).double().numpy()
    shape = "x".join(str(d) for d in inputs[0].shape)
    dims = ", ".join(f"{k} {v}" for k, v in entry.realistic[0].items())
    print(f"Example: {entry.description.split(' (')[0]} at a realistic size ({dims}; input {shape})")
    print(f"Input: max |x| = {np.abs(inputs[0].numpy()).max():.0f} ({entry.source})\n")

    policies = {
        "default fp16": {},
        "milguard": {"pass_pipeline": milguard.pipeline()},
        "fp32 islands": {"pass_pipeline": milguard.pipeline(remedy="fp32")},
        "FLOAT32": {"compute_precision": ct.precision.FLOAT32},
    }
    models = {}
    print(f"{'conversion':14s} {'max abs error':>14s} {'SNR (dB)':>9s} {'inf/NaN in output':>18s} "
          f"{'fp32 ops':>9s} {'transitions':>12s} {'rel. cost':>10s}  first op giving inf/NaN inside the program")
    for name, kwargs in policies.items():
        ml = models[name] = zoo.convert(entry, inputs, size=size, **kwargs)
        trace = run(ml, feeds, trace=True)
        out = trace[entry.output_names[0]].astype(np.float64)
        fn = converted_program(ml).functions["main"]
        ops = [op for op in iter_ops(fn) if op.op_type not in ("const", "cast")]
        fp32 = sum(dtype_name(op.outputs[0]) == "fp32" for op in ops)
        placed = summarize(fn, predict(fn, compute_units="ALL"))
        bad = first_nonfinite(ml, trace)
        where = f"{bad[1]} '{bad[0]}'" if bad else "-"
        print(f"{name:14s} {np.max(np.abs(out - ref)):14.4g} {snr_db(ref, out):9.1f} "
              f"{int(np.sum(~np.isfinite(out))):18d} {fp32:5d}/{len(ops):<3d} {placed.transitions:12d} "
              f"{placed.relative_cost:10.0f}  {where}")
    print("(inf/NaN in output: how many output values are not finite. The last column names the op where\n"
          " a non-finite value first appears inside the program; it can vanish before the output, e.g. x / inf = 0.\n"
          " transitions and rel. cost: the expected placement on an M1 Neural Engine (ALL), relative units.)")

    print("\nWhat milguard decided for each region (no input range given: a region whose input is unbounded "
          "is at risk):")
    for d in remembered(converted_program(models["milguard"])):
        cost = f"+{d.cost.transitions} transitions, +{d.cost.relative:.3g}" if d.cost else "-"
        print(f"  {d.family:9s} {d.verdict:12s} {cost:28s} {d.risk or 'safe'}")

    print("\nAudit of the default fp16 conversion (calibrated with the example input):")
    report = milguard.audit(models["default fp16"], calibration=feeds).to_dict()
    _print_audit(report)
    print("\nAudit of the milguard conversion:")
    _print_audit(milguard.audit(models["milguard"], calibration=feeds).to_dict())

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, ml in models.items():
        path = out_dir / f"{name.lower().replace(' ', '_')}.mlpackage"
        shutil.rmtree(path, ignore_errors=True)
        ml.save(str(path))
    np.savez(out_dir / "calibration.npz", **feeds)
    command, activate = command_line()
    print(f"\nSaved the four packages and calibration.npz in {out_dir}/. Audit one with:\n"
          f"  {command} audit {out_dir}/default_fp16.mlpackage --calibration {out_dir}/calibration.npz"
          f" --html {out_dir}/report.html")
    if activate:
        print(f"(`source {activate}` puts `milguard` on your PATH.)")
    return 0


def command_line() -> tuple[str, str | None]:
    """How to call milguard from the shell the demo was started in: the console script next to this
    interpreter (relative to the current folder when it is inside it) and the environment's
    ``activate`` script, or ``python -m milguard`` when the script is not installed."""
    bin_dir = Path(sys.executable).parent
    script, activate = bin_dir / "milguard", bin_dir / "activate"
    if not script.is_file():
        return f"{sys.executable} -m milguard", None
    return _shown(script), (_shown(activate) if activate.is_file() else None)


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it (with a ``/``, so a shell runs
    it as a path), else absolute."""
    rel = os.path.relpath(path)
    if rel.startswith(".."):
        return str(path)
    return rel if os.sep in rel else os.path.join(".", rel)


def _print_audit(report: dict) -> None:
    summary = report["summary"]
    by_sev = summary["findings"]["by_severity"]
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(summary["decisions"]["by_verdict"].items()))
    print(f"  {summary['ops']} ops ({summary['fp16_ops']} fp16, {summary['fp32_ops']} fp32), "
          f"{summary['patterns']} regions ({verdicts}), findings: " +
          (", ".join(f"{n} {s}" for s, n in sorted(by_sev.items())) or "none"))
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    for f in errors[:6]:
        print(f"    {f['severity']:7s} {f['kind']:13s} {f['op_type']:12s} {f['op']:28s} "
              f"|x| = {float(f['magnitude']):.3g} > {float(f['limit']):.3g}  fix: {f['covered_by'] or '-'}")
    if len(errors) > 6:
        print(f"    ... and {len(errors) - 6} more errors")
    placement = report.get("placement")
    if placement:
        s = placement["summary"]
        devices = " | ".join(f"{seg['device']} x{len(seg['ops'])}" for seg in s["segments"])
        print(f"  expected placement: {devices}; {s['transitions']} transitions, "
              f"{s['fp32_islands']} fp32 islands, relative cost {s['relative_cost']:.3g}")
        rules = Counter(p["rule"] for p in placement["ops"].values())
        if rules.most_common(1)[0][0] == "S1.size_floor":
            print("  (this small example layer is under the Neural Engine's size floor, rule S1 of "
                  "docs/placement.md, so all of it is expected on the CPU)")


if __name__ == "__main__":
    raise SystemExit(main())
