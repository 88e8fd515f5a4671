"""Pass cost at LLM scale: milguard's passes against coremltools' whole default pipeline.

Synthetic LLaMA-shaped MIL programs are built with the MIL builder directly (no torch): N layers of
RMSNorm + grouped attention + RMSNorm + SiLU-gated MLP, from about 1k to about 100k ops. For each
size, on fresh copies of the same program:

* ``milguard``: ``milguard::keep_fp32_layer_norm|rms_norm|softmax`` through ``PassPipelineManager``
  on a pipeline holding only those passes, plus ``milguard::apply_fp32_islands`` timed alone on the
  same program after an untimed ``common::add_fp16_cast`` (the islands are rebuilt there);
* ``find_patterns``: the matching step alone (``milguard.find_patterns``), the bulk of that cost;
* ``default``: ``ct.PassPipeline.DEFAULT`` (92 passes, ``add_fp16_cast`` included);
* ``in_pipeline``: ``milguard.pipeline()`` run whole, with the time spent inside every milguard
  pass it installs measured by wrappers around their ``apply``: the passes' own share of that pipeline (it
  leaves out what they cost the passes after them, which see more ops and casts).

End to end, what a user pays: ``ct.convert`` of the same model with the default pipeline and with
``milguard.pipeline()``, interleaved (default, milguard, default, milguard, ...; each conversion on
a freshly built program or freshly traced module, building untimed), best of N per pipeline, and
the ratio of the two bests. On the synthetic programs (``ct.convert`` of the pymil program: the
pipeline plus the backend) and on every model of ``milguard.zoo`` at its realistic size (``ct.convert``
of the traced torch module: frontend, pipeline and backend).

Reported: seconds, the ratios, and the growth exponent k of t ~ ops^k (least squares on log-log).
Target: milguard under 10% of the default pipeline, k close to 1.

Run: ``python benchmarks/bench_passes.py [--quick]``; writes results/bench_passes.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_passes"
APPLY_PASS = "milguard::apply_fp32_islands"


def milguard_passes() -> tuple[str, ...]:
    """Every pass ``milguard.pipeline()`` installs except ``apply_fp32_islands`` (the finding passes)."""
    import milguard

    return tuple(p for p in milguard.pipeline().passes if p.startswith("milguard::") and p != APPLY_PASS)
FP16_PASS = "common::add_fp16_cast"
LAYERS_FULL = (14, 45, 134, 450, 1334)   # about 1k, 3k, 10k, 34k, 100k ops (consts included)
LAYERS_QUICK = (14, 45)
DEFAULT_MAX_LAYERS = 450    # the default pipeline is timed up to this size (~5-10 min there already)
E2E_LAYERS = ((14, 7), (45, 5), (134, 3))   # (layers, conversions per pipeline) for end-to-end ct.convert
E2E_LAYERS_QUICK = ((14, 3),)
E2E_ZOO_ROUNDS = 7
E2E_ZOO_SIZE = "realistic"                    # the zoo at the widths models are converted at


def op_counts(prog) -> tuple[int, int]:
    """(all ops, non-const ops) of the main function."""
    from milguard.mil import iter_ops

    ops = list(iter_ops(prog.functions["main"]))
    return len(ops), sum(op.op_type != "const" for op in ops)


def fp32_compute_ops(prog) -> int:
    """Ops other than const and cast whose first output is fp32 (the islands, once fp16 is applied)."""
    from milguard.mil import dtype_name, iter_ops

    return sum(op.op_type not in ("const", "cast") and bool(op.outputs) and dtype_name(op.outputs[0]) == "fp32"
               for op in iter_ops(prog.functions["main"]))


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def only(*names: str):
    """A pipeline holding just ``names``, or None while one of them is not registered."""
    import coremltools as ct

    import milguard  # noqa: F401  (registers the passes)
    from milguard.mil import PASS_REGISTRY

    if not all(name in PASS_REGISTRY.passes for name in names):
        return None
    return ct.PassPipeline(pass_names=list(names), pipeline_name="milguard")


@contextmanager
def pass_timers(names: tuple[str, ...]) -> Iterator[dict[str, float]]:
    """Seconds spent in each named pass's ``apply`` while the context is open (class-level wrappers)."""
    from milguard.mil import PASS_REGISTRY

    spent = {n: 0.0 for n in names}
    patched = []
    for name in names:
        cls = PASS_REGISTRY.passes[name]
        own, orig = cls.__dict__.get("apply"), cls.apply

        def wrapped(self, prog, _orig=orig, _name=name):
            t0 = time.perf_counter()
            try:
                return _orig(self, prog)
            finally:
                spent[_name] += time.perf_counter() - t0

        cls.apply = wrapped
        patched.append((cls, own))
    try:
        yield spent
    finally:
        for cls, own in patched:
            if own is None:
                del cls.apply
            else:
                cls.apply = own


def measure_once(layers: int, time_default: bool) -> dict[str, Any]:
    import coremltools as ct

    import milguard
    from milguard.mil import PassPipelineManager

    t0 = time.perf_counter()
    prog = common.llama_program(layers)
    row: dict[str, Any] = {"layers": layers, "build_s": time.perf_counter() - t0}
    row["ops"], row["non_const_ops"] = op_counts(prog)
    row["find_patterns_s"] = _timed(lambda: milguard.find_patterns(prog))
    row["matches"] = len(milguard.find_patterns(prog))
    finding = milguard_passes()
    keep, fp16, islands = only(*finding), only(FP16_PASS), only(APPLY_PASS)
    if keep is not None:
        row["keep_fp32_s"] = _timed(lambda: PassPipelineManager.apply_pipeline(prog, keep))
        row["milguard_s"] = row["keep_fp32_s"]
        if islands is not None:
            PassPipelineManager.apply_pipeline(prog, fp16)
            row["apply_islands_s"] = _timed(lambda: PassPipelineManager.apply_pipeline(prog, islands))
            row["milguard_s"] += row["apply_islands_s"]
            row["fp32_ops_after"] = fp32_compute_ops(prog)
        prog = common.llama_program(layers)
    if time_default:
        row["default_s"] = _timed(lambda: PassPipelineManager.apply_pipeline(prog, ct.PassPipeline.DEFAULT))
        if keep is not None and islands is not None:
            prog = common.llama_program(layers)
            with pass_timers((*finding, APPLY_PASS)) as spent:
                row["with_milguard_s"] = _timed(
                    lambda: PassPipelineManager.apply_pipeline(prog, milguard.pipeline()))
            row["in_pipeline_s"] = sum(spent.values())
    return row


def measure(layers: int, time_default: bool, repeats: int) -> dict[str, Any]:
    """Best (minimum) time of ``repeats`` runs per column, each on freshly built programs."""
    runs = [measure_once(layers, time_default) for _ in range(repeats)]
    best = dict(runs[0])
    for key in best:
        if key.endswith("_s"):
            best[key] = min(r[key] for r in runs)
    best["repeats"] = repeats
    return best


def interleaved(make: Callable[[], tuple[Any, dict[str, Any]]], rounds: int) -> dict[str, Any]:
    """``ct.convert`` with the default pipeline and with ``milguard.pipeline()``, alternating.

    ``make()`` returns a fresh (source, ct.convert kwargs) each time, built before the clock starts.
    Returns every wall and process-CPU time per pipeline, the best of each, and the ratios
    milguard / default of the bests (the CPU ratio is the steadier one on a shared machine).
    """
    import coremltools as ct

    import milguard

    pipelines = {"default": lambda: ct.PassPipeline.DEFAULT, "milguard": milguard.pipeline}
    wall: dict[str, list[float]] = {name: [] for name in pipelines}
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, pipeline in pipelines.items():
            source, kwargs = make()
            pipe = pipeline()
            t0, c0 = time.perf_counter(), time.process_time()
            ct.convert(source, pass_pipeline=pipe, **kwargs)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    out: dict[str, Any] = {"rounds": rounds}
    for name in pipelines:
        out |= {f"{name}_s": wall[name], f"{name}_cpu_s": cpu[name],
                f"{name}_best_s": min(wall[name]), f"{name}_best_cpu_s": min(cpu[name])}
    out["ratio"] = out["milguard_best_s"] / out["default_best_s"]
    out["ratio_cpu"] = out["milguard_best_cpu_s"] / out["default_best_cpu_s"]
    return out


def end_to_end_programs(sizes: tuple[tuple[int, int], ...]) -> list[dict[str, Any]]:
    import coremltools as ct

    def make(layers: int):
        return lambda: (common.llama_program(layers), dict(convert_to="mlprogram", skip_model_load=True,
                                                             minimum_deployment_target=ct.target.iOS17))
    rows = []
    for layers, rounds in sizes:
        row = {"layers": layers, "ops": op_counts(common.llama_program(layers))[0], **interleaved(make(layers), rounds)}
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def end_to_end_zoo(rounds: int) -> list[dict[str, Any]]:
    import coremltools as ct
    import torch

    from milguard import zoo

    rows = []
    for name, entry in zoo.MODELS.items():
        inputs = entry.example_inputs(0, size=E2E_ZOO_SIZE)

        def make(entry=entry, inputs=inputs):
            with torch.no_grad():
                traced = torch.jit.trace(entry.build(0, size=E2E_ZOO_SIZE), inputs)
            return traced, dict(
                convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True,
                inputs=[ct.TensorType(name=n, shape=tuple(t.shape)) for n, t in zip(entry.input_names, inputs)],
                outputs=[ct.TensorType(name=n) for n in entry.output_names])
        row = {"model": name, "size": E2E_ZOO_SIZE, **interleaved(make, rounds)}
        print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def growth_exponent(rows: list[dict], key: str) -> float | None:
    return common.growth_exponent([r["ops"] for r in rows if r.get(key)], [r[key] for r in rows if r.get(key)])


def summarize(rows: list[dict]) -> dict[str, Any]:
    for r in rows:
        if r.get("with_milguard_s"):
            r["in_pipeline_share"] = r["in_pipeline_s"] / r["with_milguard_s"]
        for key in ("milguard_s", "find_patterns_s"):
            if key in r and r.get("default_s"):
                r[key.replace("_s", "_over_default")] = r[key] / r["default_s"]
    keys = ("milguard_s", "keep_fp32_s", "apply_islands_s", "find_patterns_s", "in_pipeline_s", "default_s")
    out: dict[str, Any] = {"exponent": {k: growth_exponent(rows, k) for k in keys}}
    ratios = [r["milguard_over_default"] for r in rows if "milguard_over_default" in r]
    proxy = [r["find_patterns_over_default"] for r in rows if "find_patterns_over_default" in r]
    out["max_ratio_milguard"] = max(ratios) if ratios else None
    out["max_ratio_find_patterns"] = max(proxy) if proxy else None
    shares = [r["in_pipeline_share"] for r in rows if "in_pipeline_share" in r]
    out["max_in_pipeline_share"] = max(shares) if shares else None
    out["milguard_passes_registered"] = any("milguard_s" in r for r in rows)
    return out


def end_to_end_summary(e2e: dict[str, list[dict]]) -> dict[str, Any]:
    """Smallest and largest ratio milguard / default of whole ct.convert calls, per kind of source."""
    return {kind: {key: {"min": min(r[key] for r in rows), "max": max(r[key] for r in rows)}
                   for key in ("ratio", "ratio_cpu")}
            for kind, rows in e2e.items() if rows}


def markdown(result: dict) -> str:
    def f(v: Any, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    lines = [
        "# Pass cost: milguard vs the default coremltools pipeline",
        "",
        "Synthetic LLaMA-shaped MIL programs (RMSNorm + attention + RMSNorm + SiLU MLP per layer, hidden 32).",
        "Times in seconds: best of 3 runs up to 134 layers, one run above, each on a freshly built program.",
        "",
        "| layers | ops (all) | ops (non-const) | matches | find_patterns | keep_fp32_* | apply_fp32_islands "
        "| milguard total | default pipeline | milguard / default |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['layers']} | {r['ops']} | {r['non_const_ops']} | {r['matches']} | "
                     f"{f(r.get('find_patterns_s'), '.3f')} | {f(r.get('keep_fp32_s'), '.3f')} | "
                     f"{f(r.get('apply_islands_s'), '.3f')} | {f(r.get('milguard_s'), '.3f')} | "
                     f"{f(r.get('default_s'), '.2f')} | {f(r.get('milguard_over_default'), '.1%')} |")
    e2e = result.get("end_to_end", {})
    if e2e:
        lines += ["", "End to end: `ct.convert` with the default pipeline against `ct.convert` with `milguard.pipeline()`, "
                      "interleaved, best of the conversions per pipeline, wall and process CPU seconds; overhead = "
                      "best milguard / best default - 1.", "",
                  "| source | ops (all) | conversions each | default wall | milguard wall | overhead (wall) "
                  "| default CPU | milguard CPU | overhead (CPU) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        sources = [(f"synthetic, {r['layers']} layers", r["ops"], r) for r in e2e.get("programs", [])]
        sources += [(f"zoo: {r['model']} ({r.get('size', 'small')}, traced torch)", "–", r) for r in e2e.get("zoo", [])]
        for label, ops, r in sources:
            lines.append(f"| {label} | {ops} | {r['rounds']} | {r['default_best_s']:.2f} | {r['milguard_best_s']:.2f} | "
                         f"{r['ratio'] - 1:+.1%} | {r['default_best_cpu_s']:.2f} | {r['milguard_best_cpu_s']:.2f} | "
                         f"{r['ratio_cpu'] - 1:+.1%} |")
    lines += ["", "Inside a real conversion pipeline (`milguard.pipeline()` = the default pipeline with milguard's "
                  f"passes: {', '.join(result.get('passes', []))}): time spent in milguard's own passes, and their share of that whole pipeline (what "
                  "the passes after them pay for the extra casts and ops is not in it; see the end-to-end table).", "",
              "| layers | ops (all) | whole pipeline | milguard passes inside it | share |",
              "|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "with_milguard_s" in r:
            lines.append(f"| {r['layers']} | {r['ops']} | {r['with_milguard_s']:.2f} | {r['in_pipeline_s']:.3f} | "
                         f"{r['in_pipeline_share']:.1%} |")
    s = result["summary"]
    e = s["exponent"]
    lines += ["", f"Growth exponent k (t ~ ops^k, least squares over all measured sizes): milguard passes "
                  f"{f(e['milguard_s'], '.2f')} (keep_fp32_* {f(e.get('keep_fp32_s'), '.2f')}, apply_fp32_islands "
                  f"{f(e.get('apply_islands_s'), '.2f')}), inside the pipeline {f(e.get('in_pipeline_s'), '.2f')}, "
                  f"find_patterns {f(e['find_patterns_s'], '.2f')}, default pipeline {f(e['default_s'], '.2f')}.",
              f"Largest ratio milguard / default: {f(s['max_ratio_milguard'], '.1%')} "
              f"(find_patterns alone: {f(s['max_ratio_find_patterns'], '.1%')}; inside the pipeline at most "
              f"{f(s.get('max_in_pipeline_share'), '.1%')}). Target: under 10%, k near 1."]
    if any("default_s" not in r for r in result["rows"]):
        lines += ["", f"The default pipeline was timed up to {DEFAULT_MAX_LAYERS} layers only: its time grows faster "
                      "than linearly, and one run at the largest size would take over an hour on this machine."]
    if not s["milguard_passes_registered"]:
        lines += ["", "The `milguard::keep_fp32_*` passes were not registered when this ran: only the matching "
                      "step (`find_patterns`) was timed."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (seconds, for a smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    common.quiet()
    sizes = LAYERS_QUICK if args.quick else LAYERS_FULL
    e2e = {"programs": end_to_end_programs(E2E_LAYERS_QUICK if args.quick else E2E_LAYERS),
           "zoo": [] if args.quick else end_to_end_zoo(E2E_ZOO_ROUNDS)}
    rows = []
    for layers in sizes:
        rows.append(measure(layers, time_default=layers <= DEFAULT_MAX_LAYERS, repeats=3 if layers <= 150 else 1))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"name": NAME, "quick": args.quick, "machine": platform.platform(),
              "passes": [*milguard_passes(), APPLY_PASS],
              "rows": rows, "summary": summarize(rows), "end_to_end": e2e,
              "end_to_end_summary": end_to_end_summary(e2e)}
    common.save_results(args.out, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    main()
