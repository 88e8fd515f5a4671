"""Running one corpus architecture end to end, and counting its norms and softmaxes in torch.

``evaluate(arch)`` traces the model, converts it twice (default fp16; ``milguard.pipeline()``),
repairs the default conversion with ``milguard.keep_fp32`` (what ``milguard fix`` does), audits
it, runs all three in milguard's reference executor and compares each with torch in fp32.

Counting in torch (``count_torch``), per call of one forward pass on the traced inputs (a module
called twice, as ALBERT's shared layer is, counts twice; MIL has one region per call):

* norm modules by forward hooks, outermost only (a norm class wrapping an ``nn.LayerNorm`` counts
  once): ``nn.LayerNorm`` and leaf classes named ``*LayerNorm`` -> layer_norm; ``nn.RMSNorm``, leaf
  classes named ``*RMSNorm`` and ``T5LayerNorm`` (an RMSNorm by its math) -> rms_norm;
  ``nn.GroupNorm`` -> group_norm; ConvNeXt V2's ``*GRN`` -> l2_norm;
* softmax by a ``TorchFunctionMode`` that sees every ``softmax`` / ``log_softmax`` call, whether
  through ``torch.softmax``, ``F.softmax``, ``Tensor.softmax`` or an ``nn.Softmax`` module (the mode
  is not re-entered while it handles a call, so ``F.softmax`` calling ``Tensor.softmax`` counts
  once); ``F.normalize`` calls count as l2_norm.

SNR (dB) = 10·log10(Σ ref² / Σ (out − ref)²) of the model's output against torch fp32, pooled over
``SAMPLES`` ordinary random inputs (the traced ones first).
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from bench_modules import load_bench_module
from models.corpus import Arch, build

snr_db = load_bench_module("common").snr_db      # the benchmarks' SNR, one definition

SAMPLES = 4            # random inputs per model; the SNR pools them (one small output is a noisy estimate)
FAMILIES = ("layer_norm", "rms_norm", "softmax", "group_norm", "l2_norm")
_SOFTMAX = {torch.softmax, torch.log_softmax, nn.functional.softmax, nn.functional.log_softmax,
            torch.Tensor.softmax, torch.Tensor.log_softmax}
_L2 = {nn.functional.normalize}


def norm_family(module: nn.Module) -> str | None:
    """The family of a norm module: by type, and for transformers' own norm classes (leaves: no
    submodules, unlike ``Wav2Vec2EncoderStableLayerNorm``, an encoder) by class name."""
    name = type(module).__name__ if not any(True for _ in module.children()) else ""
    if isinstance(module, nn.GroupNorm):
        return "group_norm"
    if isinstance(module, getattr(nn, "RMSNorm", ())) or re.search(r"RMSNorm$", name) or name == "T5LayerNorm":
        return "rms_norm"
    if isinstance(module, nn.LayerNorm) or name.endswith("LayerNorm"):
        return "layer_norm"
    if name.endswith("GRN"):
        return "l2_norm"
    return None


class _Calls(TorchFunctionMode):
    def __init__(self, counts: Counter):
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _SOFTMAX:
            self.counts["softmax"] += 1
        elif func in _L2:
            self.counts["l2_norm"] += 1
        return func(*args, **(kwargs or {}))


def count_torch(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Counter:
    """{family: calls} in one forward pass (see the module docstring)."""
    counts: Counter = Counter()
    depth = [0]
    handles = []
    for module in model.modules():
        family = norm_family(module)
        if family is None:
            continue

        def pre(mod, args, family=family):
            if depth[0] == 0:
                counts[family] += 1
            depth[0] += 1

        def post(mod, args, out):
            depth[0] -= 1

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        with torch.no_grad(), _Calls(counts):
            model(*inputs.values())
    finally:
        for h in handles:
            h.remove()
    return counts


@dataclass
class Result:
    name: str
    torch_counts: Counter
    matched: Counter                      # find_patterns kinds in the default conversion
    matched_milguard: Counter             # ... in the milguard conversion
    snr: dict[str, float]                 # default / milguard / fixed
    seconds: dict[str, float] = field(default_factory=dict)
    audit_patterns: int = 0
    fp32_ops: dict[str, int] = field(default_factory=dict)


def convert(traced: Any, inputs: dict[str, torch.Tensor], **kwargs: Any) -> Any:
    import coremltools as ct

    types = [ct.TensorType(name=n, shape=tuple(t.shape), dtype=np.int32 if not t.is_floating_point() else None)
             for n, t in inputs.items()]
    return ct.convert(traced, inputs=types, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                      skip_model_load=True, **kwargs)


def evaluate(arch: Arch, samples: int = SAMPLES) -> Result:
    import milguard
    import milguard.executor
    from milguard.mil import converted_program, dtype_name, iter_ops

    clock: dict[str, float] = {}
    start = time.perf_counter()
    model, inputs = build(arch)
    counts = count_torch(model, inputs)
    feeds = [inputs] + [arch.inputs(torch.Generator().manual_seed(2000 + i)) for i in range(1, samples)]
    with torch.no_grad():
        refs = [model(*feed.values()).numpy() for feed in feeds]
        traced = torch.jit.trace(model, tuple(inputs.values()), check_trace=False)
    clock["trace"] = time.perf_counter() - start

    t = time.perf_counter()
    default = convert(traced, inputs)
    clock["convert_default"] = time.perf_counter() - t
    t = time.perf_counter()
    guarded = convert(traced, inputs, pass_pipeline=milguard.pipeline())
    clock["convert_milguard"] = time.perf_counter() - t
    t = time.perf_counter()
    fixed = milguard.keep_fp32(default)
    clock["fix"] = time.perf_counter() - t
    t = time.perf_counter()
    report = milguard.audit(default).to_dict()
    clock["audit"] = time.perf_counter() - t

    t = time.perf_counter()
    snr = {}
    for label, mlmodel in (("default", default), ("milguard", guarded), ("fixed", fixed)):
        runner = milguard.executor.prepare(mlmodel)
        outs = [list(runner({n: v.numpy() for n, v in feed.items()}).values())[0] for feed in feeds]
        snr[label] = snr_db(np.concatenate([r.ravel() for r in refs]), np.concatenate([o.ravel() for o in outs]))
    clock["run"] = time.perf_counter() - t
    clock["total"] = time.perf_counter() - start

    def kinds(mlmodel: Any) -> Counter:
        return Counter(m.kind for m in milguard.find_patterns(mlmodel))

    def fp32(mlmodel: Any) -> int:
        fn = converted_program(mlmodel).functions["main"]
        return sum(1 for op in iter_ops(fn) if op.op_type != "const" and op.outputs
                   and dtype_name(op.outputs[0]) == "fp32")

    return Result(arch.name, counts, kinds(default), kinds(guarded), snr, clock, len(report["patterns"]),
                  {"default": fp32(default), "milguard": fp32(guarded)})


def table(results: list[Result]) -> str:
    """The per-architecture table of docs/hf-models.md (markdown)."""
    lines = ["| architecture | torch (norms, softmax) | matched (default / milguard) | default SNR (dB) | "
             "milguard SNR (dB) | fixed SNR (dB) | fp32 ops (milguard) | time (s) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        def show(c: Counter) -> str:
            return ", ".join(f"{k} {c[k]}" for k in FAMILIES if c.get(k)) or "-"
        same = "same" if r.matched == r.matched_milguard else show(r.matched_milguard)
        lines.append(f"| {r.name} | {show(r.torch_counts)} | {show(r.matched)} / {same} | {r.snr['default']:.1f} | "
                     f"{r.snr['milguard']:.1f} | {r.snr['fixed']:.1f} | {r.fp32_ops['milguard']} | "
                     f"{r.seconds['total']:.1f} |")
    lines.append(f"\nTotal: {sum(r.seconds['total'] for r in results):.0f} s for {len(results)} architectures.")
    return "\n".join(lines)


if __name__ == "__main__":          # cd tests && python -m models.harness [name ...]: the table, measured now
    import logging
    import sys
    import warnings

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from models.corpus import ARCHS as _ALL

    wanted = set(sys.argv[1:])
    print(table([evaluate(a) for a in _ALL if not wanted or a.name in wanted]))
