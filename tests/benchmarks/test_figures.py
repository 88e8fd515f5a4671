"""The figures quoted in the documents are what the committed results render (no benchmark runs)."""
from __future__ import annotations

import json

import pytest
from bench_modules import load_bench_module

figures = load_bench_module("figures")


def test_every_committed_figure_block_matches_the_committed_results():
    stale = figures.stale()
    assert stale == [], "re-render with `python benchmarks/figures.py` (or rerun the benchmarks): " + ", ".join(stale)


def test_every_document_block_has_a_renderer_and_every_renderer_is_used():
    used = set()
    for path in figures.DOCUMENTS:
        used |= {m.group(1) for m in figures.MARKER.finditer(path.read_text())}
    assert used <= set(figures.BLOCKS)
    assert set(figures.BLOCKS) - used == set()


def test_a_stale_or_unknown_block_is_reported(tmp_path):
    doc = tmp_path / "DOC.md"
    doc.write_text("intro\n<!-- find-patterns-speed:begin -->\nfind_patterns is instant\n<!-- find-patterns-speed:end -->\n")
    assert figures.stale([doc]) == [f"{doc}: find-patterns-speed"]
    assert figures.refresh([doc]) == [doc] and figures.stale([doc]) == []
    assert doc.read_text().startswith("intro\n<!-- find-patterns-speed:begin -->\n`find_patterns` takes ")
    doc.write_text("<!-- no-such-block:begin -->\nx\n<!-- no-such-block:end -->\n")
    with pytest.raises(figures.FiguresError, match="unknown figures block 'no-such-block'"):
        figures.stale([doc])


def test_missing_results_name_the_file(tmp_path):
    doc = tmp_path / "DOC.md"
    doc.write_text("<!-- pass-cost:begin -->\n<!-- pass-cost:end -->\n")
    with pytest.raises(figures.FiguresError, match="bench_passes.json: no such results file"):
        figures.refresh([doc], results_dir=tmp_path)
    assert doc.read_text() == "<!-- pass-cost:begin -->\n<!-- pass-cost:end -->\n"          # nothing written


def _policies(fp16_snr: float, nonfinite: int = 0) -> dict:
    def row(snr, share, ok, **extra):
        return {"snr_db": snr, "snr_db_fp16_accumulate": snr - 1, "flops_fp16_share": share, "accurate": ok,
                "nonfinite": 0, "fp32_ops": 1, "transitions": 0, "relative_cost": 10.0, "rescaled": 0,
                "islands": 0, **extra}
    models = []
    for name in ("a", "b"):
        p = {"float32": row(120.0, 0.0, True), "fp16": row(fp16_snr, 1.0, fp16_snr >= 40, nonfinite=nonfinite),
             "seed_pow_sqrt": row(60.0, 0.0, True), "autocast_list": row(9.0, 0.995, False),
             "milguard": row(62.0, 1.0, True, rescaled=2, relative_cost=10.5),
             "milguard_calibrated": row(62.0, 1.0, True, rescaled=1),
             "milguard_fp32": row(61.0, 0.9951, True, islands=2, transitions=4, relative_cost=30.0)}
        models.append({"model": name, "fp16_floor_db": 60.0, "policies": p})
    per_model = [{"model": m["model"], "within_floor": True, "cost_ratio": 1.05, "cost_within": True}
                 for m in models]
    return {"models": models, "verdicts": {"accurate_db": 40.0, "floor_margin_db": 3.0, "cost_ratio_limit": 1.1,
                                           "models_without_extra_transitions": 2, "per_model": per_model},
            "revision": "abc", "dirty": False}


def test_prose_follows_the_numbers(tmp_path):
    """The interpretation is rendered from the same numbers: it changes when they do."""
    (tmp_path / "bench_policies.json").write_text(json.dumps(_policies(8.0)))
    text = figures.policies_summary(figures.Results(tmp_path))
    assert text.startswith("Default fp16 is not accurate on all 2 models (8.0 dB), always silently")
    assert "is accurate on all 2 of them (62.0 dB)" in text and "4 regions rescaled fp16-safely, 0 kept fp32" in text
    assert "costs 1.05x default fp16's relative cost (within 1.10x on 2 of 2)" in text
    findings = figures.policies_findings(figures.Results(tmp_path))
    assert "fp32 islands for every region" in findings and "3.00x default fp16's relative cost" in findings
    (tmp_path / "bench_policies.json").write_text(json.dumps(_policies(50.0)))
    assert figures.policies_summary(figures.Results(tmp_path)).startswith("Default fp16 is accurate on all 2 models")
    (tmp_path / "bench_policies.json").write_text(json.dumps({**_policies(8.0, nonfinite=3), "dirty": True}))
    text = figures.policies_summary(figures.Results(tmp_path))
    assert "silently" not in text and "uncommitted changes (revision abc)" in text


def test_headline_marks_accurate_cells_and_follows_the_policies(tmp_path):
    (tmp_path / "bench_policies.json").write_text(json.dumps(_policies(8.0)))
    table = figures.headline(figures.Results(tmp_path))
    assert "| model | FLOAT32 | default fp16 | seed pow→sqrt | autocast list | milguard | milguard calibrated |" in table
    row = next(ln for ln in table.splitlines() if ln.startswith("| a |"))
    assert "**120.0** (0.00%)" in row and "| 8.0 (100.00%) |" in row and "**61.0** (99.51%)" in row


def test_placement_agreement_says_not_validated_without_held_out_observations():
    data = {"held_out": {"observations": 0, "observations_agreeing": 0, "verbatim": 0, "compared": 0, "correct": 0,
                         "accuracy": None}, "fitted": {"observations": 11}}
    assert "**not validated**" in figures.agreement_sentence(data)
    data["held_out"] = {"observations": 2, "observations_agreeing": 1, "verbatim": 1, "compared": 4, "correct": 3,
                        "accuracy": 0.75}
    sentence = figures.agreement_sentence(data)
    assert sentence.startswith("Placement prediction agrees with 3 of 4 ops (75%) in 2 published")
    assert "11 observations its thresholds were fitted on are not counted" in sentence
