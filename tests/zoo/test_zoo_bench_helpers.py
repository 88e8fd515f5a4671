"""The benchmark scripts' policy definitions and result plumbing (no conversion, no timing)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from bench_modules import load_bench_module as _load

policies = _load("bench_policies")
passes = _load("bench_passes")
common = _load("common")
peers = _load("bench_peers")


def test_seed_selector_keeps_pow_to_sqrt_fp32():
    sel = policies.SeedSelector()
    ops = ["linear", "reduce_mean", "sub", "pow", "reduce_mean", "add", "sqrt", "real_div", "mul", "linear"]
    fp16 = [sel(SimpleNamespace(op_type=t)) for t in ops]
    assert fp16 == [True, True, True, False, False, False, False, True, True, True]


def test_seed_selector_never_closes_on_rsqrt_norms():
    sel = policies.SeedSelector()
    ops = ["pow", "reduce_mean", "add", "rsqrt", "mul", "linear", "softmax", "linear"]
    assert not any(sel(SimpleNamespace(op_type=t)) for t in ops)


def test_autocast_list_follows_torch_not_sqrt():
    assert {"pow", "exp", "reduce_sum", "softmax", "layer_norm", "rsqrt"} <= policies.AUTOCAST_FP32
    assert "sqrt" not in policies.AUTOCAST_FP32 and "linear" not in policies.AUTOCAST_FP32


def test_snr():
    ref = np.array([1.0, -2.0, 3.0])
    assert common.snr_db(ref, ref) == math.inf
    assert common.snr_db(ref, np.array([1.0, np.nan, 3.0])) == -math.inf
    assert abs(common.snr_db(ref, ref * 1.1) - 20.0) < 1e-9   # error 10% of the signal: 100x power
    assert common.db_text(-math.inf) == "inf/NaN" and common.db_text("inf") == "exact"
    assert common.db_text(None) == "–" and common.db_text(40.04) == "40.0"


def test_json_safe_spells_non_finite_floats():
    data = {"a": [math.inf, 1.5], "b": {"c": -math.inf, "d": math.nan}, "e": "x"}
    safe = common.json_safe(data)
    assert safe == {"a": ["inf", 1.5], "b": {"c": "-inf", "d": "nan"}, "e": "x"}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_precision_stats_share_of_fp16_flops():
    fp16 = common.precision_stats(common.llama_program(1, dtype="fp16").functions["main"])
    assert fp16["flops_fp16_share"] == 1.0 and fp16["fp32_ops"] == 0 and fp16["casts"] == 0
    island = common.precision_stats(common.llama_program(1, dtype="fp16", norm="fp32_island").functions["main"])
    assert island["casts"] == 4 and island["fp32_ops"] > 0
    assert 0.9 < island["flops_fp16_share"] < 1.0
    assert island["flops_total"] == fp16["flops_total"]


def test_scaled_planted_inputs_reach_the_scaled_magnitude():
    import torch

    from milguard.zoo import MODELS
    from milguard.zoo.planting import capture_input

    entry = MODELS["vit_block"]
    s = entry.scenario
    assert all(torch.equal(a, b) for a, b in zip(common.scaled_planted_inputs(entry, 1.0), entry.planted_inputs()))
    doubled = common.scaled_planted_inputs(entry, 2.0)
    reached = float(capture_input(entry.build(), s.where, doubled).abs().max())
    assert abs(reached - 2 * s.magnitude) < 1e-6 * s.magnitude


def test_growth_exponent_recovers_a_power_law():
    rows = [{"ops": n, "t": 1e-6 * n ** 1.5} for n in (1_000, 10_000, 100_000)]
    assert abs(passes.growth_exponent(rows, "t") - 1.5) < 1e-9


def _row(share, ort=None, strict=None, strict2=None, **extra):
    snr = {}
    if ort is not None:
        snr["ort"] = {"planted": ort, "2x": ort}
    if strict is not None:
        snr["strict"] = {"planted": strict, "2x": strict2}
    return {"flops_fp16_share": share, "snr_db": snr, "time_s": 1.0, **extra}


PEER_RESULT = {"models": [
    {"model": "llama_decoder", "methods": {
        "peer_ort": _row(1.0, ort=72.5, strict=8.9, strict2=3.0, search_s=0.1, flops_fp16_share_ort_runs=0.0),
        "peer_strict": {"error": "RuntimeTypeError: Input type mismatch", "search_s": 2.0, "time_s": 3.0},
        "coreml_fp16": _row(1.0, strict=8.9, strict2=3.0),
        "milguard": _row(0.9959, strict=67.4, strict2="-inf", time_s=1.5),
        "milguard_fp32": {"skipped": "MilguardError: unknown milguard options ['remedy']"}}},
    {"model": "vit_block", "methods": {
        "peer_ort": _row(1.0, ort=68.7, strict=9.7, strict2=2.0, search_s=0.3, flops_fp16_share_ort_runs=0.0),
        "peer_strict": _row(0.998, ort=72.7, strict=63.3, strict2=20.0, search_s=4.0),
        "coreml_fp16": _row(1.0, strict=9.7, strict2=2.0),
        "milguard": _row(0.9925, strict=67.3, strict2=66.0, time_s=2.5)}}]}


def test_peer_table_marks_accurate_cells_and_failures():
    table = peers.readme_table(PEER_RESULT)
    lines = table.splitlines()
    row = next(ln for ln in lines if ln.startswith("| llama_decoder | peer, ORT CPU"))
    assert "**72.5**" in row and "| 8.9 |" in row and "100.00%" in row
    failed = next(ln for ln in lines if ln.startswith("| llama_decoder | peer, strict"))
    assert "failed: RuntimeTypeError" in failed
    mg = next(ln for ln in lines if ln.startswith("| llama_decoder | milguard.pipeline() |"))
    assert "**67.4**" in mg and "inf/NaN" in mg and "99.59%" in mg
    assert not any('remedy="fp32"' in ln for ln in lines)          # a skipped option has no row


def test_peer_findings_are_computed_from_the_numbers():
    text = peers.findings(PEER_RESULT)
    assert "8.9 to 9.7 dB (0 of 2 accurate)" in text
    assert "produced a model on 1 of 2 models (failed: llama_decoder)" in text
    assert "milguard: 67.3 to 67.4 dB with 99.25% to 99.59% of FLOPs" in text and "1 of 2 stay accurate" in text
    assert "at twice the magnitude 0 of those 1 stay accurate" in text
    assert "+0.50 to +1.50 s over coremltools' own fp16 conversion" in text   # milguard - coreml_fp16 times


def test_peer_benchmark_names_the_missing_extra_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "_importable", lambda name: name != "onnxruntime")
    with pytest.raises(SystemExit, match=r"needs the peers extra \(missing onnxruntime\)"):
        peers.main(["--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
