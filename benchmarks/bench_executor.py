"""Reference-executor speed on a converted transformer, against torch eager fp32 on CPU.

Model: ``nn.TransformerEncoder`` with 4 layers, d_model 256, 4 heads, feed-forward 1024, GELU,
batch 1, sequence length 128. It is traced with torch's fused attention fast path switched off
(coremltools has no converter for ``_transformer_encoder_layer_fwd``) and converted twice with
``ct.convert`` (iOS17): ``compute_precision=FLOAT32`` and the default FLOAT16.

Timed, in interleaved rounds so that load from other processes hits every configuration alike:

* ``torch``: ``model(x)`` under ``torch.no_grad()`` (torch's default eager inference, fast path on);
* ``fp32`` / ``fp16``: ``milguard.executor.prepare(program)(inputs)`` on the two programs;
* ``fp16 / accumulate=fp16``: the fp16 program with blocked fp16 accumulation;
* ``run() one-shot``: ``milguard.executor.run(program, inputs)`` (prepares on every call).

The same comparison on the small programs of ``milguard.zoo`` (its "small" size: one narrow layer or
block each, default fp16 conversion, ordinary inputs), where preparing is a larger part of a one-shot ``run``: torch
eager, the prepared executor, and ``run()``.

Reported: median and minimum wall seconds and median process CPU seconds (all threads) per
configuration, the ratios executor / torch of each, and the maximum relative error against torch.
The machine is shared, so wall times swing with other load; the minimum and CPU-time ratios are
the steadier figures. Both sides use ``--threads`` threads (default 1: with more threads than free
cores, BLAS and OpenMP pools spin and single calls swing by 10x). Target: ratio within 3x.

Run: ``python benchmarks/bench_executor.py [--rounds N] [--threads N]``; writes results/executor.{json,md}.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable


def _threads_from_argv(default: int = 1) -> int:
    """--threads N, read before numpy/torch load their thread pools."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return default


THREADS = _threads_from_argv()
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import numpy as np  # noqa: E402  (after the thread settings)

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "executor"
LAYERS, WIDTH, HEADS, FFN, SEQ = 4, 256, 4, 1024, 128
TARGET_RATIO = 3.0


def build_models() -> tuple[Any, Any, dict[str, Any]]:
    """(torch module, example input, {"fp32": Program, "fp16": Program})."""
    import coremltools as ct
    import torch
    from torch import nn

    from milguard.mil import load

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(WIDTH, HEADS, FFN, dropout=0.0, batch_first=True, activation="gelu")
    model = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False).eval()
    x = torch.randn(1, SEQ, WIDTH)
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            traced = torch.jit.trace(model, (x,))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    programs = {}
    for key, precision in (("fp32", ct.precision.FLOAT32), ("fp16", ct.precision.FLOAT16)):
        mlmodel = ct.convert(traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                             inputs=[ct.TensorType(name="x", shape=tuple(x.shape))], compute_precision=precision,
                             skip_model_load=True)
        programs[key] = load(mlmodel).program
    return model, x, programs


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds over all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds_of(configs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Every configuration once per round, in turn (after one warm-up call each)."""
    for fn in configs.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for _ in range(rounds):
        for key, fn in configs.items():
            times[key].append(_timed(fn))
    return times


def ratio_rows(times: dict[str, list[tuple[float, float]]], base: str = "torch") -> list[dict[str, Any]]:
    def stats(key: str) -> tuple[float, float, float]:
        wall, cpu = np.array(times[key]).T
        return float(np.median(wall)), float(np.min(wall)), float(np.median(cpu))

    ref = stats(base)
    rows = []
    for key in times:
        med, mn, cpu = stats(key)
        rows.append({"config": key, "median_s": med, "min_s": mn, "median_cpu_s": cpu,
                     "ratio_median": med / ref[0], "ratio_min": mn / ref[1], "ratio_cpu": cpu / ref[2]})
    return rows


def measure(rounds: int) -> dict[str, Any]:
    import torch

    from milguard.executor import prepare, run

    torch.set_num_threads(THREADS)
    model, x, programs = build_models()
    feeds = {"x": x.numpy()}
    with torch.no_grad():
        reference = model(x).numpy()
    runners: dict[str, Callable[[], Any]] = {}
    for key, accumulate in (("fp32", "fp32"), ("fp16", "fp32"), ("fp16 / accumulate=fp16", "fp16")):
        ex = prepare(programs[key.split()[0]], accumulate=accumulate)
        runners[key] = lambda ex=ex: ex(feeds)
    for key in ("fp32", "fp16"):
        runners[f"run() one-shot, {key}"] = lambda p=programs[key]: run(p, feeds)

    def torch_eager():
        with torch.no_grad():
            model(x)

    errors = {}
    for key, fn in runners.items():
        out = np.asarray(list(fn().values())[0], dtype=np.float64)
        errors[key] = float(np.max(np.abs(out - reference)) / np.max(np.abs(reference)))
    load_before = os.getloadavg()
    rows = ratio_rows(rounds_of({"torch": torch_eager, **runners}, rounds))
    load_after = os.getloadavg()
    for row in rows:
        row["max_rel_error_vs_torch"] = errors.get(row["config"])
    ops = {k: sum(1 for op in p.functions["main"].operations if op.op_type != "const") for k, p in programs.items()}
    return {
        "benchmark": NAME,
        "model": f"nn.TransformerEncoder: {LAYERS} layers, d_model {WIDTH}, {HEADS} heads, ffn {FFN}, GELU, "
                 f"batch 1, seq {SEQ}",
        "non_const_ops": ops,
        "rounds": rounds,
        "target_ratio": TARGET_RATIO,
        "rows": rows,
        "zoo": measure_zoo(rounds),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "torch": torch.__version__, "threads": THREADS,
                    "torch_threads": torch.get_num_threads(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in load_after]},
    }


def measure_zoo(rounds: int) -> list[dict[str, Any]]:
    """Per zoo model (small size, default fp16 conversion): torch eager, the prepared executor, one-shot run()."""
    import torch

    from milguard import zoo
    from milguard.executor import prepare, run
    from milguard.mil import load

    out = []
    for name, entry in zoo.MODELS.items():
        inputs = entry.example_inputs(0)
        program = load(zoo.convert(entry, inputs)).program
        model = entry.build(0)
        feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
        ex = prepare(program)

        def torch_eager(model=model, inputs=inputs):
            with torch.no_grad():
                model(*inputs)
        times = rounds_of({"torch": torch_eager, "prepared": lambda ex=ex, f=feeds: ex(f),
                           "run() one-shot": lambda p=program, f=feeds: run(p, f)}, rounds)
        rows = {r["config"]: r for r in ratio_rows(times)}
        out.append({"model": name, "non_const_ops": sum(op.op_type != "const" for op in program.functions["main"].operations),
                    "torch_median_s": rows["torch"]["median_s"],
                    "prepared_median_s": rows["prepared"]["median_s"],
                    "one_shot_median_s": rows["run() one-shot"]["median_s"],
                    **{f"{k}_{m}": rows[c][f"ratio_{m}"] for k, c in (("prepared", "prepared"), ("one_shot", "run() one-shot"))
                       for m in ("median", "min", "cpu")}})
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Reference executor vs torch eager (CPU)",
        "",
        f"{result['model']}; non-const ops: fp32 program {result['non_const_ops']['fp32']}, "
        f"fp16 program {result['non_const_ops']['fp16']}. {result['rounds']} interleaved rounds; "
        f"target ratio <= {result['target_ratio']:g}.",
        "",
        "| configuration | median ms | min ms | median CPU ms | ratio (median) | ratio (min) | ratio (CPU) "
        "| max rel. error vs torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        err = "—" if r["max_rel_error_vs_torch"] is None else f"{r['max_rel_error_vs_torch']:.2e}"
        lines.append(f"| {r['config']} | {r['median_s'] * 1e3:.1f} | {r['min_s'] * 1e3:.1f} | "
                     f"{r['median_cpu_s'] * 1e3:.1f} | {r['ratio_median']:.2f} | {r['ratio_min']:.2f} | "
                     f"{r['ratio_cpu']:.2f} | {err} |")
    lines += ["", "Small programs (`milguard.zoo`, default fp16 conversion, ordinary inputs): executor / torch eager, "
                  "median wall (median CPU in parentheses), for the prepared executor and for a one-shot `run()`.", "",
              "| model | non-const ops | torch median ms | prepared / torch | run() / torch |", "|---|---:|---:|---:|---:|"]
    for z in result.get("zoo", []):
        lines.append(f"| {z['model']} | {z['non_const_ops']} | {z['torch_median_s'] * 1e3:.2f} | "
                     f"{z['prepared_median']:.2f} ({z['prepared_cpu']:.2f}) | {z['one_shot_median']:.2f} "
                     f"({z['one_shot_cpu']:.2f}) |")
    m = result["machine"]
    lines += ["", f"Machine: {m['platform']}, {m['cpus']} CPUs (shared), Python {m['python']}, numpy {m['numpy']}, "
                  f"torch {m['torch']}; {m['threads']} thread(s) for torch and numpy's BLAS; load average before/after "
                  f"{m['load_average_before'][0]} / {m['load_average_after'][0]}.", ""]
    return "\n".join(lines)


def main() -> None:
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads for torch and numpy's BLAS (default 1: steadier on a shared machine)")
    args = parser.parse_args()
    result = measure(args.rounds)
    common.save_results(RESULTS, NAME, result, markdown(result))
    logging.getLogger("milguard").info("wrote %s", RESULTS / f"{NAME}.md")


if __name__ == "__main__":
    main()
