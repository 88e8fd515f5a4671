"""The zoo: models build deterministically, run, carry their documented planted magnitudes, and convert."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from milguard.errors import MilguardError
from milguard.fp16 import MAX as FP16_MAX, SQUARE_LIMIT as FP16_SQUARE_LIMIT
from milguard.zoo import EXAMPLE, MODELS, SCENARIOS, convert
from milguard.zoo.layers import GemmaRMSNorm, LayerNorm, LayerNorm2d, LlamaRMSNorm, T5LayerNorm

NORMS = (GemmaRMSNorm, LayerNorm, LayerNorm2d, LlamaRMSNorm, T5LayerNorm)
NAMES = sorted(MODELS)
PLANTED = [n for n in NAMES if MODELS[n].scenario.channels]


def _norm_inputs(model: torch.nn.Module, inputs: tuple) -> dict[str, float]:
    """max |x| at the input of every norm module, by module name."""
    seen: dict[str, float] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=name: seen.__setitem__(n, float(a[0].abs().max())))
             for name, m in model.named_modules() if isinstance(m, NORMS)]
    with torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()
    return seen


def test_registry_is_complete():
    assert {"llama_decoder", "t5_encoder", "gemma_decoder", "sam_neck", "convnext_block", "vit_block",
            "minilm"} <= set(MODELS)
    assert EXAMPLE in MODELS and MODELS[EXAMPLE].scenario.magnitude > FP16_SQUARE_LIMIT
    for entry in MODELS.values():
        assert entry.scenario.source and entry.scenario.certainty
        assert len(entry.input_names) == len(entry.input_shapes) == len(entry.example_inputs())


@pytest.mark.parametrize("name", NAMES)
def test_builds_deterministically_and_runs(name):
    entry = MODELS[name]
    a, b = entry.build(0), entry.build(0)
    assert not a.training
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    x = entry.example_inputs(0)
    assert all(torch.equal(u, v) for u, v in zip(x, entry.example_inputs(0)))
    assert tuple(x[0].shape) == entry.input_shapes[0]
    with torch.no_grad():
        y = a(*x)
    assert torch.isfinite(y).all() and y.abs().max() > 0
    assert any(isinstance(m, NORMS) for m in a.modules())


@pytest.mark.parametrize("name", [n for n in NAMES if n != "minilm"])
def test_seed_changes_random_weights(name):
    w0 = next(iter(MODELS[name].build(0).parameters()))
    w1 = next(iter(MODELS[name].build(1).parameters()))
    assert not torch.equal(w0, w1)


@pytest.mark.parametrize("name", PLANTED)
def test_planted_inputs_reach_documented_magnitude(name):
    entry, scenario = MODELS[name], MODELS[name].scenario
    model, planted = entry.build(0), entry.planted_inputs(0)
    if scenario.where:
        seen = []
        hook = model.get_submodule(scenario.where).register_forward_pre_hook(
            lambda _m, a: seen.append(float(a[0].abs().max())))
        with torch.no_grad():
            model(*planted)
        hook.remove()
        reached = seen[0]
    else:
        reached = float(planted[0].abs().max())
    assert reached == pytest.approx(scenario.magnitude, rel=1e-4)
    # representable as an fp16 model input, and above the square limit at some norm input
    assert float(planted[0].abs().max()) < FP16_MAX
    assert max(_norm_inputs(model, planted).values()) > FP16_SQUARE_LIMIT
    assert max(_norm_inputs(model, entry.example_inputs(0)).values()) < FP16_SQUARE_LIMIT


@pytest.mark.parametrize("name", PLANTED)
def test_planted_values_sit_in_the_documented_channels(name):
    entry, s = MODELS[name], MODELS[name].scenario
    x0, x = entry.example_inputs(0)[0], entry.planted_inputs(0)[0]
    changed = (x != x0).nonzero()
    channel_axis = 1 if x.dim() == 4 else 2
    assert set(changed[:, channel_axis].tolist()) == set(s.channels)


def test_example_model_squares_overflow_fp16_in_torch():
    """The bundled example's first norm, run in fp16 by torch itself, loses the massive tokens."""
    entry = MODELS[EXAMPLE]
    model, x = entry.build(0), entry.planted_inputs(0)[0]
    norm = model.input_layernorm
    ref = norm(x)
    sq16 = x.half().float().pow(2).half()
    assert torch.isinf(sq16).any()
    assert torch.isfinite(ref).all()


def test_scenarios_have_sources_and_fit_fp16():
    for s in SCENARIOS.values():
        assert any(tag in s.source for tag in ("arXiv", "#", ".md", "measured")), s.key
        assert s.magnitude < FP16_MAX


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_traces_and_converts_float32(name):
    import coremltools as ct

    from milguard.mil import dtype_name, iter_ops, load

    entry = MODELS[name]
    mlmodel = convert(name, compute_precision=ct.precision.FLOAT32)
    assert mlmodel.get_spec().specificationVersion == 8          # iOS17 by default
    prog = load(mlmodel).program
    fn = prog.functions["main"]
    ops = list(iter_ops(fn))
    types = {op.op_type for op in ops}
    assert [i for i in fn.inputs] == list(entry.input_names)
    assert [v.name for v in fn.outputs] == list(entry.output_names)
    dtypes = {dtype_name(v) for op in ops for v in op.outputs if op.op_type != "const"}
    assert dtypes <= {"fp32", "int32", "bool"}
    if "rms_norm" in entry.patterns:
        assert {"pow", "reduce_mean", "rsqrt"} <= types
    if "layer_norm" in entry.patterns:
        assert {"reduce_mean", "sub", "pow", "sqrt", "real_div"} <= types
    if "softmax" in entry.patterns:
        assert "softmax" in types or {"exp", "reduce_sum", "reduce_max"} <= types


@pytest.mark.slow
def test_convert_takes_input_types_and_converter_options():
    import coremltools as ct

    from milguard.mil import dtype_name, load

    entry = MODELS[EXAMPLE]
    shape = entry.input_shapes[0]
    fp16_in = load(convert(entry)).program.functions["main"]
    fp32_in = load(convert(entry, input_types=[ct.TensorType(name=entry.input_names[0], shape=shape,
                                                             dtype=np.float32)])).program.functions["main"]
    assert dtype_name(fp16_in.inputs[entry.input_names[0]]) == "fp16"       # coremltools' iOS17 default
    assert dtype_name(fp32_in.inputs[entry.input_names[0]]) == "fp32"
    ios16 = convert(entry, minimum_deployment_target=ct.target.iOS16)
    assert ios16.get_spec().specificationVersion == 7


def test_planting_refuses_a_target_below_the_unplanted_input():
    from dataclasses import replace

    from milguard.zoo.planting import plant

    entry = MODELS[EXAMPLE]
    tiny = replace(entry.scenario, magnitude=0.5)      # N(0, 1) inputs already exceed 0.5
    with pytest.raises(MilguardError, match="already reaches"):
        plant(entry.build(0), entry.example_inputs(0), tiny)
