"""milguard against the peer users would otherwise pick: onnxconverter-common's automatic mixed precision.

``onnxconverter_common.auto_mixed_precision.auto_convert_mixed_precision`` converts an ONNX model
to fp16 and searches for the nodes to keep fp32 by running candidates: it bisects the node list
(topological order), converts all but the tried segment's complement, runs the model and keeps the
segment fp16 when a validation function accepts the outputs. Its runtime is ONNX Runtime on
``CPUExecutionProvider``.

On the zoo's LLaMA, T5, ConvNeXt and ViT blocks, fed their planted activation magnitudes, each
method goes from the zoo entry to a mixed-precision model:

* ``onnx_fp16``    the same traced module (``torch.jit.trace`` as ``zoo.convert`` does) exported with
                   the TorchScript exporter (``torch.onnx.export(traced, ..., dynamo=False)``, opset
                   18: the dynamo exporter takes an ``nn.Module``, not the traced module, and would
                   also need onnxscript), then ``float16.convert_float_to_float16`` with no node kept
                   fp32: the ONNX analogue of coremltools' default fp16.
* ``peer_ort``     the peer as shipped: the search on the planted input, validated on ORT CPU.
* ``peer_strict``  the peer's own search loop with its runtime swapped for the strict fp16 oracle
                   below (``get_tensor_values_using_ort`` replaced), as a device that really computes
                   in fp16 would validate.
* ``coreml_fp16``  ``zoo.convert`` with coremltools' defaults (every op fp16).
* ``milguard``     ``zoo.convert(..., pass_pipeline=milguard.pipeline())``, milguard's default.
* ``milguard_fp32`` ``milguard.pipeline(remedy="fp32")``, where that option exists.

Accuracy bar, the same for everyone: an output is accurate when it is finite and its SNR against
torch fp32 is at least 40 dB (``ACCURATE_DB``, the bar of ``bench_policies.py``). The peer is given
that bar as its ``validate_fn`` (SNR >= 40 dB on every output; ``rtol``/``atol`` unset) and
``keep_io_types=True``, so like the Core ML models it takes and returns fp32 and casts inside.

Time to a safe mixed model, best of ``REPEATS`` runs where affordable (a step is repeated only while
its runs so far took under ``REPEAT_BUDGET_S``; the number of runs is recorded):

* ONNX rows: build + trace + ``torch.onnx.export`` (+ ``convert_float_to_float16`` for onnx_fp16,
  + the whole search, final validation included, for the peer). The search runs in a child process
  capped at ``SEARCH_CAP_S`` seconds; a search that crashes or hits the cap is the result, with the
  time spent.
* Core ML rows: build + trace + ``ct.convert`` (``zoo.convert``), so ``coreml_fp16``'s time is the
  baseline milguard's conversion adds to.

The peer crashes on graphs where one ``Cast`` feeds several nodes (``float16.
remove_unnecessary_cast_node`` indexes a list as a node: ``AttributeError: 'list' object has no
attribute 'input'``); the TorchScript exporter emits such identity casts (fp32 -> fp32) for the
``.to(torch.float32)`` of LLaMA's and T5's norms. The crash is recorded, then every ONNX method runs
on the export with its identity casts dropped (``drop_identity_casts``, numerically a no-op).

Evaluation, stated per column:

* **ORT CPU** (how the peer validates and ships): ONNX Runtime's CPU provider has fp16 kernels for
  few ops; for the others it inserts casts and computes in fp32 (the graph it runs is saved with
  graph optimisations off and measured as "fp16 FLOPs ORT runs"), and its default optimisations
  fuse decomposed norms into fp32 ``LayerNormalization``. Overflow in fp16 is hidden there.
* **strict fp16** for ONNX models: ``onnx.reference.ReferenceEvaluator`` (numpy), which computes each
  node in its tensors' dtype: fp16 nodes round and overflow per node (``x * x`` at 300 gives inf;
  checked by ``oracle_self_check`` on every run), while numpy accumulates fp16 sums and matmuls in
  fp32 inside one node. That is the semantics of ``milguard.run`` (the strict column of the Core ML
  rows): typed fp16/fp32 per op, fp32 accumulation. Ops whose fp16 output comes back in another
  dtype are listed per model (``oracle_upcasts``; none on these graphs when last run).
* **2x**: the same models, found on the planted input, fed the scenario planted at twice the
  documented magnitude (``common.scaled_planted_inputs``), to see whether a search tuned on one
  input holds on a larger one.

FLOP share in fp16, the definition of ``common.precision_stats`` for MIL: FLOPs of nodes whose
first output is fp16 over FLOPs of nodes whose first output is fp16 or fp32; casts and constants
count in neither. Per-node FLOPs (``ONNX_FLOPS``) mirror ``milguard.placement.flops``: MatMul and Gemm
2·n·K, Conv 2·n·(C_in/groups)·∏kernel (+ n for a bias), Softmax 5·n, LayerNormalization 8·n,
reductions one per element read, element-wise ops n (n: output elements); data movement 0.

Needs the benchmark-only extra: ``pip install -c constraints.txt -e '.[peers]'``.
Run: ``python benchmarks/bench_peers.py [--models a,b]``; writes results/bench_peers.{json,md}.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_peers"
MODELS = ("llama_decoder", "t5_encoder", "convnext_block", "vit_block")
ACCURATE_DB = 40.0
OPSET = 18
SEARCH_CAP_S = 600.0
REPEATS = 3
REPEAT_BUDGET_S = 60.0
FACTOR = 2.0
PEER_PACKAGES = ("onnx", "onnxruntime", "onnxconverter_common")

METHODS = (  # key, label
    ("onnx_fp16", "ONNX all fp16"),
    ("peer_ort", "peer, ORT CPU validation (as shipped)"),
    ("peer_strict", "peer, strict fp16 validation"),
    ("coreml_fp16", "Core ML default fp16"),
    ("milguard", "milguard.pipeline()"),
    ("milguard_fp32", 'milguard.pipeline(remedy="fp32")'),
)
MILGUARD_OPTIONS = {"milguard": {}, "milguard_fp32": {"remedy": "fp32"}}

# ---------------------------------------------------------------- FLOPs of ONNX nodes

ELEMENTWISE = frozenset({
    "Abs", "Add", "And", "Ceil", "Celu", "Clip", "Cos", "Cosh", "Div", "Elu", "Equal", "Erf", "Exp",
    "Floor", "Gelu", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "IsInf", "IsNaN",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "Max", "Min", "Mish", "Mod", "Mul", "Neg", "Not", "Or",
    "PRelu", "Pow", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
    "Softsign", "Sqrt", "Sub", "Tan", "Tanh", "ThresholdedRelu", "Where", "Xor",
})
REDUCTIONS = frozenset({
    "ArgMax", "ArgMin", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
})
Shapes = dict[str, tuple[int, ...]]


def _n(node: Any, shapes: Shapes) -> int:
    return math.prod(shapes[node.output[0]])


def _n_in(node: Any, shapes: Shapes) -> int:
    return math.prod(shapes[node.input[0]])


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _has_bias(node: Any, index: int) -> bool:
    return len(node.input) > index and node.input[index] != ""


def _gemm(node: Any, shapes: Shapes) -> float:
    a = shapes[node.input[0]]
    k = a[0] if _attr(node, "transA", 0) else a[1]
    return 2.0 * _n(node, shapes) * k + (_n(node, shapes) if _has_bias(node, 2) else 0)


def _conv(node: Any, shapes: Shapes) -> float:
    per_output = math.prod(shapes[node.input[1]][1:])
    return 2.0 * _n(node, shapes) * per_output + (_n(node, shapes) if _has_bias(node, 2) else 0)


def _pool(node: Any, shapes: Shapes) -> float:
    return float(_n(node, shapes) * math.prod(_attr(node, "kernel_shape", [1])))


ONNX_FLOPS: dict[str, Callable[[Any, Shapes], float]] = {
    "MatMul": lambda node, s: 2.0 * _n(node, s) * s[node.input[0]][-1],
    "Gemm": _gemm,
    "Conv": _conv,
    "ConvTranspose": lambda node, s: 2.0 * _n_in(node, s) * math.prod(s[node.input[1]][1:]),
    "Softmax": lambda node, s: 5.0 * _n(node, s),
    "LogSoftmax": lambda node, s: 5.0 * _n(node, s),
    "LayerNormalization": lambda node, s: 8.0 * _n(node, s),
    "BatchNormalization": lambda node, s: 2.0 * _n(node, s),
    "LpNormalization": lambda node, s: 3.0 * _n(node, s),
    "AveragePool": _pool,
    "MaxPool": _pool,
    **{t: (lambda node, s: float(_n_in(node, s))) for t in REDUCTIONS},
    **{t: (lambda node, s: float(_n(node, s))) for t in ELEMENTWISE},
}


def node_flops(node: Any, shapes: Shapes) -> float:
    """Estimated FLOPs of one ONNX node (see ``ONNX_FLOPS``); 0 for data movement and unknown ops."""
    formula = ONNX_FLOPS.get(node.op_type)
    return float(formula(node, shapes)) if formula is not None else 0.0


def onnx_precision_stats(model: Any, values: dict[str, np.ndarray]) -> dict[str, Any]:
    """fp32 compute nodes, casts and the share of FLOPs computed in fp16, from evaluated ``values``.

    ``values`` maps every tensor name (inputs, initializers, node outputs) to its value, as
    ``evaluate_all`` returns; a node computes in the dtype of its first output.
    """
    from onnx import numpy_helper

    shapes = {k: tuple(np.shape(v)) for k, v in values.items()}
    shapes.update({t.name: tuple(numpy_helper.to_array(t).shape) for t in model.graph.initializer})
    fp16 = fp32 = 0.0
    fp32_ops = casts = 0
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        if node.op_type == "Cast":
            casts += 1
            continue
        dtype = np.asarray(values[node.output[0]]).dtype
        f = node_flops(node, shapes)
        if dtype == np.float16:
            fp16 += f
        elif dtype == np.float32:
            fp32 += f
            fp32_ops += 1
    total = fp16 + fp32
    return {"fp32_ops": fp32_ops, "casts": casts, "flops_fp16_share": fp16 / total if total else 0.0,
            "flops_total": total}


# ---------------------------------------------------------------- graphs and runtimes

def export_onnx(entry: Any, inputs: tuple) -> bytes:
    """Build, trace (as ``zoo.convert`` does) and export the traced module with the TorchScript exporter."""
    import torch

    model = entry.build()
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs)
    buf = io.BytesIO()
    torch.onnx.export(traced, inputs, buf, input_names=list(entry.input_names),
                      output_names=list(entry.output_names), opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def drop_identity_casts(model: Any) -> tuple[Any, int]:
    """A copy of ``model`` without the Casts whose input already has the target type; their readers
    read the input instead. Casts producing a graph output stay. Returns (model, number dropped)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(model)
    elem = {v.name: v.type.tensor_type.elem_type
            for v in (*model.graph.input, *model.graph.value_info, *model.graph.output)}
    elem.update({t.name: t.data_type for t in model.graph.initializer})
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Cast" and n.output[0] not in outputs and elem.get(n.input[0]) == _attr(n, "to")}
    kept = [n for n in model.graph.node if not (n.op_type == "Cast" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model, len(alias)


def evaluate_all(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor of ``model`` on ``feeds`` through the strict oracle (``ReferenceEvaluator``)."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):
        return ReferenceEvaluator(model).run(None, feeds, intermediate=True)


def strict_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Graph outputs through the strict fp16 oracle."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):
        return ReferenceEvaluator(model).run(None, feeds)


def ort_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Graph outputs on ONNX Runtime's CPU provider with its default session options."""
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def ort_executed_graph(model: Any) -> Any:
    """The graph ORT CPU runs with graph optimisations off: its own Casts around nodes without an fp16 kernel."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "executed.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def oracle_self_check() -> dict[str, Any]:
    """The oracle keeps fp16 per node: ``x * x`` in fp16 at 300 is inf, while a 3-term fp16 sum whose
    partial sum passes 65504 stays finite (numpy accumulates fp16 reductions in fp32)."""
    from onnx import TensorProto, helper

    def graph(op: str, **attrs: Any) -> Any:
        inputs = ["x", "x"] if op == "Mul" else ["x", "axes"]
        node = helper.make_node(op, inputs, ["y"], **attrs)
        specs = [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3])]
        if op != "Mul":
            specs.append(helper.make_tensor_value_info("axes", TensorProto.INT64, [1]))
        g = helper.make_graph([node], op, specs, [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])

    x = np.array([[300.0, 60000.0, -60000.0]], np.float16)
    square = strict_run(graph("Mul"), {"x": x})[0]
    total = strict_run(graph("ReduceSum", keepdims=1), {"x": np.array([[60000.0, 60000.0, -60000.0]], np.float16),
                                                         "axes": np.array([1])})[0]
    result = {"square_300": float(square[0, 0]), "square_dtype": str(square.dtype),
              "sum_60000_60000_-60000": float(total.ravel()[0])}
    if not (np.isinf(square[0, 0]) and square.dtype == np.float16 and np.isfinite(total).all()):
        raise RuntimeError(f"the ONNX reference evaluator no longer has strict fp16 per-node semantics: {result}")
    return result


def oracle_upcasts(model: Any, values: dict[str, np.ndarray]) -> list[str]:
    """Op types whose declared fp16 output the oracle returned in another dtype (no fp16 kernel)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    declared = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    return sorted({n.op_type for n in model.graph.node
                   if declared.get(n.output[0]) == onnx.TensorProto.FLOAT16
                   and np.asarray(values[n.output[0]]).dtype != np.float16})


# ---------------------------------------------------------------- the peer's search, capped, in a child

def search(model: Any, feeds: dict[str, np.ndarray], validate: str) -> dict[str, Any]:
    """The peer's search on ``model`` (validated on "ort" or "strict"), in a child process capped at
    ``SEARCH_CAP_S``; returns its times, attempts and nodes kept fp32, the mixed model or an error."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)
        onnx.save(model, job / "model.onnx")
        np.savez(job / "feeds.npz", **feeds)
        (job / "job.json").write_text(json.dumps({"validate": validate, "accurate_db": ACCURATE_DB}))
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--search-job", str(job)],
                                  capture_output=True, text=True, timeout=SEARCH_CAP_S)
        except subprocess.TimeoutExpired:
            return {"error": f"no model within the {SEARCH_CAP_S:.0f} s cap", "search_s": SEARCH_CAP_S,
                    "capped": True}
        wall = time.perf_counter() - t0
        if not (job / "result.json").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"error": f"search process: {tail[0]}"[:300], "search_s": wall}
        out = json.loads((job / "result.json").read_text())
        if (job / "mixed.onnx").is_file():
            out["model"] = onnx.load(job / "mixed.onnx")
        return out


def _strict_values(model: Any, input_feed: dict, output_names: list | None = None, sess_options: Any = None) -> list:
    """``get_tensor_values_using_ort``'s signature, computed by the strict oracle."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):
        return ReferenceEvaluator(model).run(output_names, input_feed)


def _search_job(job: Path) -> None:
    """Child process: run the peer's search best-of, write result.json (and mixed.onnx)."""
    import onnx
    from onnxconverter_common import auto_mixed_precision

    spec = json.loads((job / "job.json").read_text())
    if spec["validate"] == "strict":
        auto_mixed_precision.get_tensor_values_using_ort = _strict_values
    model = onnx.load(job / "model.onnx")
    feeds = dict(np.load(job / "feeds.npz"))

    def validate(reference: list, candidate: list) -> bool:
        return all(common.snr_db(np.asarray(r, np.float64), c) >= spec["accurate_db"]
                   for r, c in zip(reference, candidate))

    times: list[float] = []
    result: dict[str, Any] = {}
    while len(times) < REPEATS and sum(times) < REPEAT_BUDGET_S:
        log = io.StringIO()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(log):
                mixed = auto_mixed_precision.auto_convert_mixed_precision(model, feeds, validate_fn=validate,
                                                                          keep_io_types=True)
        except Exception as exc:  # noqa: BLE001 - the peer failing is the result
            result = {"error": f"{type(exc).__name__}: {exc}"[:300], "search_s": time.perf_counter() - t0,
                      "attempts": log.getvalue().count("Running attempt")}
            break
        times.append(time.perf_counter() - t0)
        done = [ln for ln in log.getvalue().splitlines() if ln.startswith("Done: ")]
        result = {"search_s": min(times), "search_runs": len(times),
                  "attempts": log.getvalue().count("Running attempt"),
                  "kept_fp32": ast.literal_eval(done[-1][len("Done: "):]) if done else None}
        onnx.save(mixed, job / "mixed.onnx")
    (job / "result.json").write_text(json.dumps(result))


# ---------------------------------------------------------------- measuring

def _outputs(run: Callable[[], Any]) -> tuple[np.ndarray | None, str | None]:
    try:
        return np.asarray(run()[0], np.float64), None
    except Exception as exc:  # noqa: BLE001 - a runtime refusing a model is a result
        return None, f"{type(exc).__name__}: {exc}"[:300]


def snr_columns(row: dict[str, Any], runs: dict[str, Callable[[dict], Any]], feeds: dict[str, dict],
                refs: dict[str, np.ndarray]) -> None:
    """``row["snr_db"][runtime][input]`` (and inf/NaN counts) for every runtime and input."""
    row["snr_db"], row["nonfinite"] = {}, {}
    for runtime, run in runs.items():
        for key, feed in feeds.items():
            out, error = _outputs(lambda: run(feed))
            if out is None:
                row.setdefault("errors", {})[f"{runtime}/{key}"] = error
                continue
            row["snr_db"].setdefault(runtime, {})[key] = common.snr_db(refs[key], out)
            row["nonfinite"].setdefault(runtime, {})[key] = int(out.size - np.isfinite(out).sum())
    strict = row["snr_db"].get("strict", {}).get("planted")
    row["accurate"] = bool(strict is not None and strict >= ACCURATE_DB)


def timed(fn: Callable[[], Any]) -> tuple[float, int, Any]:
    """(best seconds, runs, last result): up to ``REPEATS`` runs while they took under ``REPEAT_BUDGET_S``."""
    times: list[float] = []
    out = None
    while len(times) < REPEATS and sum(times) < REPEAT_BUDGET_S:
        t, out = common.best_of(fn, 1)
        times.append(t)
    return min(times), len(times), out


def onnx_rows(entry: Any, feeds: dict[str, dict], refs: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(rows for onnx_fp16, peer_ort, peer_strict; notes about the exported graph)."""
    import onnx
    from onnxconverter_common import float16

    example = entry.example_inputs()
    export_s, export_runs, raw = timed(lambda: export_onnx(entry, example))
    exported = onnx.load_from_string(raw)
    notes: dict[str, Any] = {"export_s": export_s, "export_runs": export_runs, "opset": OPSET,
                             "nodes": len(exported.graph.node)}
    fp32 = {"strict": lambda f: strict_run(exported, f), "ort": lambda f: ort_run(exported, f)}
    notes["export_snr_db"] = {}
    for runtime, run in fp32.items():
        out, error = _outputs(lambda: run(feeds["planted"]))
        notes["export_snr_db"][runtime] = common.snr_db(refs["planted"], out) if out is not None else error
    planted = feeds["planted"]
    first = search(exported, planted, "ort")
    graph = exported
    if "error" in first:
        notes["as_exported_error"] = first["error"]
        graph, notes["identity_casts_dropped"] = drop_identity_casts(exported)

    rows: dict[str, dict] = {}
    t0 = time.perf_counter()
    try:
        all_fp16 = float16.convert_float_to_float16(copy.deepcopy(graph), keep_io_types=True)
        rows["onnx_fp16"] = {"time_s": export_s + time.perf_counter() - t0, "model": all_fp16}
    except Exception as exc:  # noqa: BLE001
        rows["onnx_fp16"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    results = {"ort": first if graph is exported else search(graph, planted, "ort"),
               "strict": search(graph, planted, "strict")}
    for validate, found in results.items():
        row = {k: v for k, v in found.items() if k != "model"}
        row["time_s"] = export_s + found.get("search_s", 0.0)
        if "model" in found:
            row["model"] = found["model"]
        rows[f"peer_{validate}"] = row

    for key, row in rows.items():
        model = row.pop("model", None)
        if model is None:
            continue
        values = evaluate_all(model, planted)
        row.update(onnx_precision_stats(model, values))
        if key == "onnx_fp16":
            notes["oracle_upcasts"] = oracle_upcasts(model, values)
        try:
            executed = ort_executed_graph(model)
            row["flops_fp16_share_ort_runs"] = onnx_precision_stats(
                executed, evaluate_all(executed, planted))["flops_fp16_share"]
        except Exception as exc:  # noqa: BLE001
            row["ort_graph_error"] = f"{type(exc).__name__}: {exc}"[:300]
        snr_columns(row, {"ort": lambda f, m=model: ort_run(m, f), "strict": lambda f, m=model: strict_run(m, f)},
                    feeds, refs)
    return rows, notes


def coreml_rows(entry: Any, feeds: dict[str, dict], refs: dict[str, np.ndarray]) -> dict[str, dict]:
    """Rows for coremltools' default fp16 and milguard's pipelines (skipped when an option is unknown).

    The conversions are timed in ``REPEATS`` interleaved rounds (fp16, milguard, ... again), so load
    from other work on the machine falls on every method alike; each keeps its best time.
    """
    import milguard
    from milguard import zoo
    from milguard.mil import load

    setups: dict[str, Callable[[], dict]] = {"coreml_fp16": dict}
    for key, opts in MILGUARD_OPTIONS.items():
        setups[key] = lambda opts=opts: {"pass_pipeline": milguard.pipeline(**opts)}
    rows: dict[str, dict] = {}
    for key, kwargs in list(setups.items()):
        try:
            kwargs()
        except (TypeError, milguard.MilguardError) as exc:
            rows[key] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
            del setups[key]
    example = entry.example_inputs()
    times: dict[str, list[float]] = {key: [] for key in setups}
    models: dict[str, Any] = {}
    for _ in range(REPEATS):
        for key, kwargs in setups.items():
            if key in rows:
                continue
            try:
                seconds, models[key] = common.best_of(lambda: zoo.convert(entry, inputs=example, **kwargs()), 1)
            except Exception as exc:  # noqa: BLE001 - a conversion that fails is a result
                rows[key] = {"error": f"convert: {type(exc).__name__}: {exc}"[:300]}
                continue
            times[key].append(seconds)
    output = entry.output_names[0]
    for key, mlmodel in models.items():
        if key in rows:
            continue
        row: dict[str, Any] = {"time_s": min(times[key]), "runs": len(times[key])}
        row.update(common.precision_stats(load(mlmodel).program.functions["main"]))
        snr_columns(row, {"strict": lambda f, m=mlmodel: [milguard.run(m, f)[output]]}, feeds, refs)
        rows[key] = row
    return rows


def bench_model(name: str) -> dict[str, Any]:
    import torch

    from milguard import zoo

    entry = zoo.MODELS[name]
    inputs = {"planted": entry.planted_inputs(), "2x": common.scaled_planted_inputs(entry, FACTOR)}
    model = entry.build()
    with torch.no_grad():
        refs = {k: model(*x).numpy().astype(np.float64) for k, x in inputs.items()}
    feeds = {k: {n: t.numpy() for n, t in zip(entry.input_names, x)} for k, x in inputs.items()}
    s = entry.scenario
    result: dict[str, Any] = {
        "model": name, "description": entry.description,
        "scenario": {"key": s.key, "magnitude": s.magnitude, "where": s.where, "source": s.source},
        "planted_input_max_abs": {k: float(x[0].abs().max()) for k, x in inputs.items()},
    }
    peer, result["onnx"] = onnx_rows(entry, feeds, refs)
    result["methods"] = {**peer, **coreml_rows(entry, feeds, refs)}
    return result


# ---------------------------------------------------------------- tables

def _snr(row: dict, runtime: str, key: str) -> str:
    value = row.get("snr_db", {}).get(runtime, {}).get(key)
    text = common.db_text(value)
    return f"**{text}**" if value is not None and float(value) >= ACCURATE_DB else text


def _time(row: dict) -> str:
    if row.get("capped"):
        return f">{row['time_s']:.0f} (cap)"
    return f"{row['time_s']:.2f}" if "time_s" in row else "–"


def _state(row: dict) -> str:
    """"not available", "failed: <error up to its first parenthesis>", or ""."""
    if "skipped" in row:
        return "not available"
    return f"failed: {row['error'].split(' (')[0][:90]}" if "error" in row else ""


def readme_table(data: dict) -> str:
    """The README table: per model, the peer and milguard side by side (from ``bench_peers.json``)."""
    lines = [f"Time from the zoo entry to the mixed model, share of FLOPs in fp16, and output SNR in dB against "
             f"torch fp32 (bold: >= {ACCURATE_DB:.0f} dB) on the planted input and on twice its magnitude. "
             "*ORT CPU*: ONNX Runtime's CPU provider, which the peer validates on and which computes fp16 nodes "
             "without an fp16 kernel in fp32; *strict*: per-op fp16 semantics (onnx's `ReferenceEvaluator` for ONNX models, "
             "`milguard.run` for Core ML ones). See `benchmarks/results/bench_peers.md`.", "",
             "| model | method | time (s) | fp16 FLOPs | SNR ORT CPU | SNR strict | SNR strict, 2x |",
             "|---|---|---:|---:|---:|---:|---:|"]
    shown = ("peer_ort", "peer_strict", "coreml_fp16", "milguard", "milguard_fp32")
    labels = dict(METHODS)
    for m in data["models"]:
        for key in shown:
            row = m["methods"].get(key, {})
            if not row or "skipped" in row:
                continue
            if "error" in row and "snr_db" not in row:
                lines.append(f"| {m['model']} | {labels[key]} | {_time(row)} | {_state(row)} | | | |")
                continue
            lines.append(f"| {m['model']} | {labels[key]} | {_time(row)} | {_pct(row.get('flops_fp16_share'))} | "
                         f"{_snr(row, 'ort', 'planted')} | {_snr(row, 'strict', 'planted')} | "
                         f"{_snr(row, 'strict', '2x')} |")
    return "\n".join(lines) + "\n" + "\n" + findings(data) + "\n"


def _pct(v: Any) -> str:
    return "–" if v is None else common.truncated_pct(v)


def _range(values: list, fmt: Callable[[float], str] = "{:.1f}".format) -> str:
    """"lo to hi" of the values present (one value when both print alike), "–" when none."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return "–"
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo} to {hi}"


def findings(data: dict) -> str:
    """What the numbers show, as sentences computed from them (so they stay true when re-measured)."""
    models = data["models"]
    n = len(models)
    seconds1, seconds2 = "{:.1f}".format, "{:.2f}".format

    def rows(key: str) -> list[dict]:
        return [m["methods"][key] for m in models if key in m["methods"] and "skipped" not in m["methods"][key]]

    def field(key: str, name: str, fmt: Callable[[float], str] = seconds1) -> str:
        return _range([r.get(name) for r in rows(key) if "error" not in r], fmt)

    def snrs(key: str, runtime: str, inp: str) -> str:
        return _range([r.get("snr_db", {}).get(runtime, {}).get(inp) for r in rows(key)])

    def accurate(key: str, inp: str) -> int:
        values = [r.get("snr_db", {}).get("strict", {}).get(inp) for r in rows(key)]
        return sum(1 for v in values if v is not None and float(v) >= ACCURATE_DB)

    out = []
    if rows("peer_ort"):
        out.append(
            f"- The peer validated on ORT CPU returned models with {field('peer_ort', 'flops_fp16_share', common.truncated_pct)} "
            f"of FLOPs in fp16 after {field('peer_ort', 'search_s', seconds2)} s of search, "
            f"{snrs('peer_ort', 'ort', 'planted')} dB on ORT CPU, where ORT runs "
            f"{field('peer_ort', 'flops_fp16_share_ort_runs', common.truncated_pct)} of the FLOPs in fp16; under "
            f"strict fp16 the same models give {snrs('peer_ort', 'strict', 'planted')} dB "
            f"({accurate('peer_ort', 'planted')} of {n} accurate).")
    if rows("peer_strict"):
        crashed = [m["model"] for m in models if "error" in m["methods"].get("peer_strict", {})]
        made = n - len(crashed)
        out.append(
            f"- The same search validated under strict fp16 produced a model on {made} of {n} models"
            + (f" (failed: {', '.join(crashed)})" if crashed else "")
            + f": {snrs('peer_strict', 'strict', 'planted')} dB with "
            f"{field('peer_strict', 'flops_fp16_share', common.truncated_pct)} of FLOPs in fp16, in "
            f"{field('peer_strict', 'search_s')} s of search; at twice the magnitude "
            f"{accurate('peer_strict', '2x')} of those {made} stay accurate.")
    if rows("milguard"):
        extra = [m["methods"]["milguard"]["time_s"] - m["methods"]["coreml_fp16"]["time_s"] for m in models
                 if "time_s" in m["methods"].get("milguard", {}) and "time_s" in m["methods"].get("coreml_fp16", {})]
        out.append(
            f"- milguard: {snrs('milguard', 'strict', 'planted')} dB with "
            f"{field('milguard', 'flops_fp16_share', common.truncated_pct)} of FLOPs in fp16, "
            f"{_range(extra, '{:+.2f}'.format)} s over coremltools' own fp16 conversion; at twice the magnitude "
            f"{accurate('milguard', '2x')} of {len(rows('milguard'))} stay accurate "
            f"({snrs('milguard', 'strict', '2x')} dB).")
    out.append(f"- Time from the zoo entry to the mixed model: peer on ORT CPU {field('peer_ort', 'time_s')} s, "
               f"peer under strict fp16 {field('peer_strict', 'time_s')} s, milguard {field('milguard', 'time_s')} s.")
    return "\n".join(out)


def markdown(result: dict) -> str:
    labels = dict(METHODS)
    lines = ["# milguard and onnxconverter-common's auto mixed precision", "",
             f"Peer: {result['versions']}. Search cap {SEARCH_CAP_S:.0f} s; times are the best of up to "
             f"{REPEATS} runs (runs repeated while under {REPEAT_BUDGET_S:.0f} s). Oracle self-check: "
             f"{result['oracle_self_check']}.", "", readme_table(result).rstrip(), "",
             "## Every method", "",
             "fp16 FLOPs (ORT runs): the share in fp16 of the graph ORT CPU executes (its casts around "
             "nodes without an fp16 kernel). Attempts: model runs of the peer's search.", "",
             "| model | method | time (s) | attempts | fp32 nodes | fp16 FLOPs | fp16 FLOPs (ORT runs) | "
             "SNR ORT CPU | SNR strict | SNR ORT CPU, 2x | SNR strict, 2x | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in result["models"]:
        for key, label in METHODS:
            r = m["methods"].get(key, {})
            lines.append(
                f"| {m['model']} | {labels[key]} | {_time(r)} | {r.get('attempts', '–')} | {r.get('fp32_ops', '–')} | "
                f"{_pct(r.get('flops_fp16_share'))} | {_pct(r.get('flops_fp16_share_ort_runs'))} | "
                f"{_snr(r, 'ort', 'planted')} | {_snr(r, 'strict', 'planted')} | {_snr(r, 'ort', '2x')} | "
                f"{_snr(r, 'strict', '2x')} | {_state(r)} |")
    lines += ["", "## The exported graphs", "",
              "| model | nodes | export (s) | fp32 export SNR ORT / strict | peer on the export as is | "
              "identity casts dropped | ops without fp16 in the oracle | nodes the strict search kept fp32 |",
              "|---|---:|---:|---|---|---:|---|---|"]
    for m in result["models"]:
        o = m["onnx"]
        kept = m["methods"].get("peer_strict", {}).get("kept_fp32")
        lines.append(
            f"| {m['model']} | {o['nodes']} | {o['export_s']:.2f} | {common.db_text(o['export_snr_db']['ort'])} / "
            f"{common.db_text(o['export_snr_db']['strict'])} | {o.get('as_exported_error', 'ran')[:90]} | "
            f"{o.get('identity_casts_dropped', 0)} | {', '.join(o.get('oracle_upcasts', [])) or 'none'} | "
            f"{', '.join(kept) if kept else '–'} |")
    lines += ["", "## Planted magnitudes", ""]
    for m in result["models"]:
        s = m["scenario"]
        lines.append(f"- **{m['model']}** ({s['key']}): max |x| {s['magnitude']:.4g} at `{s['where'] or 'input'}`, "
                     f"{FACTOR:g}x: {FACTOR * s['magnitude']:.4g}. {s['source']}")
    return "\n".join(lines) + "\n"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("onnx", "onnxruntime", "onnxconverter-common", "torch"))


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo model names")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--search-job", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.search_job is not None:
        _search_job(args.search_job)
        return None
    missing = [p for p in PEER_PACKAGES if not _importable(p)]
    if missing:
        raise SystemExit(f"bench_peers needs the peers extra (missing {', '.join(missing)}): "
                         "pip install -c constraints.txt -e '.[peers]'")
    common.quiet()
    result: dict[str, Any] = {"name": NAME, "machine": platform.platform(), "versions": versions(),
                              "accurate_db": ACCURATE_DB, "factor": FACTOR, "search_cap_s": SEARCH_CAP_S,
                              "oracle_self_check": oracle_self_check(), "models": []}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        result["models"].append(bench_model(name))
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    safe = common.json_safe(result)
    common.save_results(args.out, NAME, safe, markdown(safe))
    return result


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


if __name__ == "__main__":
    main()
