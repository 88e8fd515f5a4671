"""Published ``MLComputePlan`` observations, the programs they were taken on, and agreement.

On Linux the only ground truth for placement is what people measured on a Mac and published.
Each observation is a compute-plan dump (``ground_truth`` format) in ``published_plans/``:

* ``fitted/``: observations whose source the predictor's rules cite (a rule or threshold was
  set from that source, e.g. ``size_floor_flops`` between the Vx#435 matmuls); agreement there
  is agreement on the training set and says nothing about accuracy;
* ``held_out/``: observations from sources no rule cites; agreement there is the only figure
  that measures the predictor.

Every dump records its ``provenance``: ``verbatim`` (the compared devices are copied from a
printed plan or a table of measurements) or ``reconstructed`` (the devices restate a sentence
or a count on a rebuilt program), with a ``note`` on what was rebuilt. ``program`` names the
builder below that rebuilds the measured model so that ops join by name; ``chip`` the chip
family to predict for (the measuring Mac's, or M1 where the source does not say: no rule
these programs reach depends on it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import coremltools as ct
import numpy as np

from milguard.mil import Program, load, mb, types

from .ground_truth import Agreement, GroundTruth, evaluate, load as load_dump
from .rules import REGION_RULES, RULES

PLANS = Path(__file__).parent / "published_plans"
SPLITS = ("fitted", "held_out")
PROVENANCE = ("verbatim", "reconstructed")


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal(shape).astype(np.float16)


# --------------------------------------------------------------------------- rebuilt programs
def vx_matmul(n: int) -> Program:
    """Vx#435/#436: fp32 inputs a, b -> cast fp16 -> matmul -> cast fp32."""
    spec = mb.TensorSpec(shape=(n, n), dtype=types.fp32)

    def body(a, b):
        c = mb.matmul(x=mb.cast(x=a, dtype="fp16", name="a_fp16"),
                      y=mb.cast(x=b, dtype="fp16", name="b_fp16"), name="c_fp16")
        return mb.cast(x=c, dtype="fp32", name="c")
    return mb.program(input_specs=[spec, spec], opset_version=ct.target.iOS17)(body)


def vx_sdpa(shape: tuple[int, ...], dtype: str) -> Program:
    """Vx#437: one fused ios18 scaled_dot_product_attention on q, k, v of ``shape``."""
    spec = mb.TensorSpec(shape=shape, dtype=types.string_to_builtin(dtype))
    return mb.program(input_specs=[spec] * 3, opset_version=ct.target.iOS18)(
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v, name="attn"))


def voxcpm_rmsnorm_conv() -> Program:
    """VoxCPMANE#15: fp16 x·rsqrt(mean(x²) + eps) on (1, C, 1, S), then a 1×1 conv projection."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1024, 1, 128), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x):
        sq = mb.mul(x=x, y=x, name="var_20_cast_fp16")
        ms = mb.reduce_mean(x=sq, axes=[1], keep_dims=True, name="_inversed_mean_square_1_cast_fp16")
        r = mb.rsqrt(x=mb.add(x=ms, y=np.float16(1e-6), name="var_26_cast_fp16"),
                     epsilon=np.float16(1e-12), name="var_27_cast_fp16")
        n = mb.mul(x=x, y=r, name="normalized_1_cast_fp16")
        k = mb.conv(x=n, weight=_w(1024, 1024, 1, 1), bias=_w(1024), name="var_72_cast_fp16")
        return mb.reshape(x=k, shape=[1, 16, 64, 128], name="var_78_cast_fp16")
    return prog


def rfdetr_query_selection() -> Program:
    """RF-DETR#1495: two-stage topk over class scores, then gathers of boxes and features."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 300, 256), dtype=types.fp16)],
                opset_version=ct.target.iOS17)
    def prog(x):
        act = mb.gelu(x=mb.linear(x=x, weight=_w(1024, 256), name="enc_fc1"), name="enc_act")
        feats = mb.linear(x=act, weight=_w(256, 1024), name="enc_fc2")
        cls = mb.linear(x=feats, weight=_w(91, 256), name="cls_head")
        hidden = mb.relu(x=mb.linear(x=feats, weight=_w(256, 256), name="box_fc1"), name="box_act")
        boxes = mb.sigmoid(x=mb.linear(x=hidden, weight=_w(4, 256), name="box_head"), name="boxes")
        scores = mb.reduce_max(x=cls, axes=[-1], name="scores")
        _, idx = mb.topk(x=scores, k=100, axis=1, name="topk")

        def select(src, width, tag, out):
            i = mb.tile(x=mb.expand_dims(x=idx, axes=[-1], name=f"idx_{tag}"), reps=[1, 1, width],
                        name=f"idx_{tag}_tiled")
            return mb.gather_along_axis(x=src, indices=i, axis=1, name=out)
        sel_boxes = select(boxes, 4, "box", "sel_boxes")
        sel_feats = select(feats, 256, "feat", "sel_feats")
        return (mb.linear(x=sel_feats, weight=_w(256, 256), name="dec_fc"),
                mb.linear(x=sel_boxes, weight=_w(256, 4), name="dec_box"))
    return prog


def _converted(prog: Program, **convert_kwargs: Any) -> Program:
    """``prog`` through ``ct.convert`` (default pipeline, as the publisher ran it), reloaded."""
    return load(ct.convert(prog, convert_to="mlprogram", skip_model_load=True, **convert_kwargs)).program


def fino_single_op(kind: str) -> Program:
    """Sequins-dev/fino tests/fixtures/coreml/generate.py: one (1,256)x(256,256) matmul with both
    operands as inputs, or one 64->64 3x3 conv on (1,64,32,32), converted FLOAT16 for iOS16."""
    if kind == "matmul":
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 256)), mb.TensorSpec(shape=(256, 256))])
        def prog(x, w):
            return mb.matmul(x=x, y=w)
    else:
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64, 32, 32))])
        def prog(x):
            weight = np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32)
            return mb.conv(x=x, weight=weight, pad_type="same", strides=[1, 1])
    return _converted(prog, minimum_deployment_target=ct.target.iOS16,
                      compute_precision=ct.precision.FLOAT16)


def fino_stack(runtime_weights: bool) -> Program:
    """Sequins-dev/fino generate.py: eight (256,768)x(768,768) matmuls, each followed by relu, with
    fp16 input; the weights are constants, or (``runtime_weights``) eight more fp16 inputs."""
    x_spec = mb.TensorSpec(shape=(256, 768))
    if runtime_weights:
        @mb.program(input_specs=[x_spec] + [mb.TensorSpec(shape=(768, 768)) for _ in range(8)])
        def prog(x, w0, w1, w2, w3, w4, w5, w6, w7):
            for weight in (w0, w1, w2, w3, w4, w5, w6, w7):
                x = mb.relu(x=mb.matmul(x=x, y=weight))
            return x
        extra = [ct.TensorType(name=f"w{i}", shape=(768, 768), dtype=np.float16) for i in range(8)]
    else:
        @mb.program(input_specs=[x_spec])
        def prog(x):
            rng = np.random.default_rng(0)
            for _ in range(8):
                x = mb.relu(x=mb.matmul(x=x, y=rng.standard_normal((768, 768)).astype(np.float32) * 0.02))
            return x
        extra = []
    return _converted(prog, minimum_deployment_target=ct.target.iOS16, compute_precision=ct.precision.FLOAT16,
                      inputs=[ct.TensorType(name="x", shape=(256, 768), dtype=np.float16), *extra],
                      outputs=[ct.TensorType(dtype=np.float16)])


def higgs_int8_conv(channels: int) -> Program:
    """dusterbloom/higgs benchmarks/ane_int8_mlpackage_probe: a 1x1 conv whose int8 weights
    (channels x channels) go through constexpr_affine_dequantize, on a (1, C, 1, 16) fp16 input."""
    if channels == 64:
        w = np.array([(i % 127) - 63 for i in range(64 * 64)], dtype=np.int8).reshape(64, 64, 1, 1)
    else:
        w = np.random.default_rng(0).integers(-127, 127, size=(channels, channels, 1, 1), dtype=np.int8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, channels, 1, 16), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def prog(x):
        weight = mb.constexpr_affine_dequantize(quantized_data=w, zero_point=np.int8(0),
                                                scale=np.float16(0.01), axis=0)
        return mb.conv(x=x, weight=weight, strides=[1, 1], pad_type="valid", dilations=[1, 1])
    return _converted(prog, compute_units=ct.ComputeUnit.CPU_AND_NE, minimum_deployment_target=ct.target.iOS18)


PROGRAMS: dict[str, Callable[[], Program]] = {
    "vx_matmul_512": lambda: vx_matmul(512),
    "vx_matmul_384": lambda: vx_matmul(384),
    "vx_matmul_4": lambda: vx_matmul(4),
    "vx_sdpa_1x16x2048x64_fp16": lambda: vx_sdpa((1, 16, 2048, 64), "fp16"),
    "vx_sdpa_1x8x512x64_fp16": lambda: vx_sdpa((1, 8, 512, 64), "fp16"),
    "vx_sdpa_1x16x1024x64_fp16": lambda: vx_sdpa((1, 16, 1024, 64), "fp16"),
    "vx_sdpa_1x16x1024x64_fp32": lambda: vx_sdpa((1, 16, 1024, 64), "fp32"),
    "vx_sdpa_1x32x1024x128_fp16": lambda: vx_sdpa((1, 32, 1024, 128), "fp16"),
    "vx_sdpa_1x32x1024x128_fp32": lambda: vx_sdpa((1, 32, 1024, 128), "fp32"),
    "voxcpm_rmsnorm_conv": voxcpm_rmsnorm_conv,
    "rfdetr_query_selection": rfdetr_query_selection,
    "fino_matmul": lambda: fino_single_op("matmul"),
    "fino_conv": lambda: fino_single_op("conv"),
    "fino_stack": lambda: fino_stack(runtime_weights=False),
    "fino_runtime_weights": lambda: fino_stack(runtime_weights=True),
    "higgs_int8_conv_64": lambda: higgs_int8_conv(64),
    "higgs_int8_conv_3072": lambda: higgs_int8_conv(3072),
}


# --------------------------------------------------------------------------- citations
_REPO = r"[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9]"


def source_key(url: str) -> str:
    """'owner/repo#N' for an issue or pull request URL, 'owner/repo' for any other GitHub URL."""
    m = re.search(rf"github\.com/({_REPO})(?:/(?:issues|pull)/(\d+))?", url)
    if m is None:
        raise ValueError(f"not a GitHub source: {url!r}")
    return m.group(1) + (f"#{m.group(2)}" if m.group(2) else "")


def citations(source: str) -> set[str]:
    """Every 'owner/repo' and 'owner/repo#N' a rule's source cites ('vx-lang/Vx#435, #436' gives both
    numbers; a '#N' belongs to the last repository named before it in the same ';' part)."""
    keys: set[str] = set()
    for part in source.split(";"):
        repo = None
        for m in re.finditer(rf"({_REPO})(?:#(\d+))?|#(\d+)", part):
            if m.group(1):
                repo = m.group(1)
                keys.add(repo)
            number = m.group(2) or m.group(3)
            if repo and number:
                keys.add(f"{repo}#{number}")
    return keys


def citing_rules(key: str) -> list[str]:
    """Ids of the rules (table and region rules) whose source cites ``key``."""
    return [r.id for r in (*RULES, *REGION_RULES) if key in citations(r.source)]


# --------------------------------------------------------------------------- observations
@dataclass(frozen=True)
class PublishedPlan:
    name: str                 # file stem
    split: str                # "fitted" | "held_out"
    truth: GroundTruth

    @property
    def meta(self) -> dict[str, Any]:
        return self.truth.meta

    def program(self) -> Program:
        return PROGRAMS[self.meta["program"]]()

    def evaluate(self) -> Agreement:
        return evaluate(self.program(), self.truth, chip=self.meta.get("chip") or "M1")


@lru_cache(maxsize=None)
def plans() -> tuple[PublishedPlan, ...]:
    """Every published observation, fitted ones first, by name."""
    return tuple(PublishedPlan(path.stem, split, load_dump(path))
                 for split in SPLITS for path in sorted((PLANS / split).glob("*.json")))


def agreement_report() -> dict[str, Any]:
    """Per observation and per split: ops compared and agreeing, observations agreeing on every op.

    ``held_out["accuracy"]`` is None when nothing is held out: then the predictor is not validated.
    """
    rows = []
    for plan in plans():
        a = plan.evaluate()
        rows.append({"name": plan.name, "split": plan.split, "provenance": plan.meta["provenance"],
                     "source": plan.meta["source"], "compute_units": plan.truth.compute_units,
                     "chip": plan.meta.get("chip"),
                     "cited_by": citing_rules(source_key(plan.meta["source"])), "compared": a.compared, "correct": a.correct,
                     "accuracy": a.accuracy, "mismatches": [list(m) for m in a.mismatches],
                     "unmatched": list(a.unmatched), "segment_count_error": a.segment_count_error})
    return {"plans": rows, **{split: _totals([r for r in rows if r["split"] == split]) for split in SPLITS}}


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    compared, correct = sum(r["compared"] for r in rows), sum(r["correct"] for r in rows)
    return {"observations": len(rows), "observations_agreeing": sum(r["correct"] == r["compared"] for r in rows),
            "verbatim": sum(r["provenance"] == "verbatim" for r in rows),
            "compared": compared, "correct": correct, "accuracy": correct / compared if compared else None}
