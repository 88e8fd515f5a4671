"""Ground truth: published MLComputePlan observations against predict(), and the dump format.

The observations live in ``milguard.placement.published`` (fitted / held out); the tests here
check their labels, keep the fitted ones agreeing (a regression check on the training set, not a
measure of accuracy) and the committed held-out figures equal to what the code computes now.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from milguard.errors import ModelError
from milguard.placement import Placement
from milguard.placement import ground_truth as gt
from milguard.placement import published as pub

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "placement_agreement.json"
FITTED = [p for p in pub.plans() if p.split == "fitted"]


@pytest.fixture(scope="module")
def report():
    """Every observation evaluated once (the held-out programs go through ct.convert)."""
    return pub.agreement_report()


def test_every_observation_is_labelled_and_rebuildable():
    assert {p.split for p in pub.plans()} == set(pub.SPLITS)
    for plan in pub.plans():
        assert plan.meta["source"].startswith("https://github.com/"), plan.name
        assert plan.meta["provenance"] in pub.PROVENANCE, plan.name
        assert plan.meta["note"] and plan.meta["program"] in pub.PROGRAMS, plan.name
        assert any(op.preferred for op in plan.truth.ops()), plan.name


@pytest.mark.parametrize("plan", pub.plans(), ids=lambda p: p.name)
def test_held_out_means_no_rule_cites_the_source(plan):
    """A rule or threshold set from a source makes every observation of that source training data."""
    cited_by = pub.citing_rules(pub.source_key(plan.meta["source"]))
    assert (plan.split == "held_out") == (not cited_by), (plan.name, cited_by)


@pytest.mark.parametrize("plan", FITTED, ids=lambda p: p.name)
def test_fitted_observations_still_agree(plan, report):
    """The rules were set from these observations: a disagreement here is a regression."""
    row = next(r for r in report["plans"] if r["name"] == plan.name)
    assert row["unmatched"] == []
    assert row["compared"] == sum(1 for op in plan.truth.ops() if op.preferred is not None)
    assert row["accuracy"] == 1.0 and row["segment_count_error"] == 0


def test_every_observation_joins_its_rebuilt_program_op_by_op(report):
    for row in report["plans"]:
        assert row["unmatched"] == [] and row["compared"] > 0, row["name"]


def test_committed_held_out_agreement_is_what_the_code_computes(report):
    """benchmarks/results/placement_agreement.json (quoted in the READMEs) against a fresh evaluation."""
    committed = json.loads(RESULTS.read_text())
    fresh = report
    assert committed["held_out"] == fresh["held_out"]
    assert [(r["name"], r["split"], r["compared"], r["correct"]) for r in committed["plans"]] == \
        [(r["name"], r["split"], r["compared"], r["correct"]) for r in fresh["plans"]]


def test_citations_expand_issue_lists_and_attach_numbers_to_their_repository():
    assert pub.citations("vx-lang/Vx#435, #436 (CPU at 384^3; ANE at 512^3); ask-meridian.uk") == {
        "vx-lang/Vx", "vx-lang/Vx#435", "vx-lang/Vx#436"}
    assert pub.citations("apple/coremltools#1780 (Apple), #337; ANEForge catalogue") == {
        "apple/coremltools", "apple/coremltools#1780", "apple/coremltools#337"}
    assert pub.citations("smpanaro NOTES (Apr 4 2023); #12") == set()
    assert "0seba/VoxCPMANE#15" in pub.citations(pub.RULES[0].source)


def test_source_key_of_issues_pulls_and_files():
    assert pub.source_key("https://github.com/vx-lang/Vx/issues/437 (table)") == "vx-lang/Vx#437"
    assert pub.source_key("https://github.com/roboflow/rf-detr/pull/1495") == "roboflow/rf-detr#1495"
    assert pub.source_key("https://github.com/a-b/c.d/blob/0123/x.md") == "a-b/c.d"
    with pytest.raises(ValueError, match="not a GitHub source"):
        pub.source_key("https://example.org/blog")


def test_rfdetr_observation_counts_and_confusion():
    plan = next(p for p in pub.plans() if p.name == "rfdetr1495_topk_chain")
    agreement = plan.evaluate()
    assert agreement.confusion["cpu"]["cpu"] == 7 and agreement.confusion["ane"]["ane"] == 11
    assert agreement.truth_segments == agreement.predicted_segments == 3


def test_voxcpm_const_entries_are_unreported_and_skipped():
    truth = next(p for p in pub.plans() if p.name == "voxcpmane15_rmsnorm_conv").truth
    consts = [op for op in truth.ops() if op.operator == "const"]
    assert consts and all(op.preferred is None and op.supported == () for op in consts)
    assert {op.preferred for op in truth.ops() if op.operator != "const"} == {"ane"}


def _truth(*devices, costs=None):
    ops = [{"outputs": [f"v{i}"], "operator": "relu", "preferred": d,
            "cost": None if costs is None else costs[i]} for i, d in enumerate(devices)]
    return gt.parse({"format": gt.FORMAT, "functions": {"main": ops}})


def test_compare_reports_mismatches_confusion_segments_and_cost_share():
    truth = _truth("ane", "cpu", "ane", "ane", costs=[0.4, 0.1, 0.3, 0.2])
    predicted = {f"v{i}": Placement(d, "X", "M") for i, d in enumerate(["ane", "ane", "cpu", "ane"])}
    predicted["v9"] = Placement("cpu", "X", "M")                      # not in the dump: ignored
    a = gt.compare(predicted, truth)
    assert (a.compared, a.correct, a.accuracy) == (4, 2, 0.5)
    assert a.mismatches == (("v1", "cpu", "ane"), ("v2", "ane", "cpu"))
    assert (a.truth_segments, a.predicted_segments, a.segment_count_error) == (3, 3, 0)
    assert a.confusion["cpu"]["ane"] == 1 and a.confusion["ane"]["cpu"] == 1
    assert a.truth_ane_cost_share == pytest.approx(0.9)
    assert a.predicted_ane_cost_share == pytest.approx(0.7)
    assert json.loads(json.dumps(a.to_dict()))["accuracy"] == 0.5


def test_compare_lists_unmatched_ops_and_handles_no_costs():
    a = gt.compare({"v0": Placement("ane", "X", "M")}, _truth("ane", "gpu"))
    assert a.unmatched == ("v1",) and a.accuracy == 1.0
    assert a.truth_ane_cost_share is None
    assert gt.compare({}, _truth("ane")).accuracy is None


def test_load_rejects_bad_dumps(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"format": "other", "functions": {}}))
    with pytest.raises(ModelError, match="not a milguard compute-plan dump"):
        gt.load(bad)
    bad.write_text(json.dumps({"format": gt.FORMAT, "functions": {"main": [
        {"outputs": ["x"], "operator": "relu", "preferred": "TPU"}]}}))
    with pytest.raises(ModelError, match="unknown device 'TPU'"):
        gt.load(bad)
    with pytest.raises(ModelError, match="cannot read"):
        gt.load(tmp_path / "missing.json")


def test_record_from_plan_follows_the_coremltools_api():
    """A stand-in with the attribute names of ct.models.compute_plan (MLComputePlan needs macOS)."""
    class MLNeuralEngineComputeDevice:
        pass

    class MLCPUComputeDevice:
        pass
    ops = [SimpleNamespace(operator_name="const", outputs=[SimpleNamespace(name="w")]),
           SimpleNamespace(operator_name="ios18.linear", outputs=[SimpleNamespace(name="y")])]
    usage = {"y": SimpleNamespace(preferred_compute_device=MLNeuralEngineComputeDevice(),
                                  supported_compute_devices=[MLCPUComputeDevice(),
                                                             MLNeuralEngineComputeDevice()])}
    plan = SimpleNamespace(
        model_structure=SimpleNamespace(program=SimpleNamespace(functions={
            "main": SimpleNamespace(block=SimpleNamespace(operations=ops))})),
        get_compute_device_usage_for_mlprogram_operation=lambda op: usage.get(op.outputs[0].name),
        get_estimated_cost_for_mlprogram_operation=lambda op: (
            SimpleNamespace(weight=1.0) if op.outputs[0].name == "y" else None))
    record = gt.record_from_plan(plan, compute_units="CPU_AND_NE", device="Apple M3")
    truth = gt.parse(json.loads(json.dumps(record)))
    assert truth.compute_units == "CPU_AND_NE" and truth.meta["device"] == "Apple M3"
    const, linear = truth.ops()
    assert (const.preferred, const.cost) == (None, None)
    assert (linear.preferred, linear.supported, linear.cost) == ("ane", ("cpu", "ane"), 1.0)


def test_evaluate_predicts_with_the_dump_compute_units():
    dump = pub.PLANS / "fitted" / "vx437_sdpa_1x32x1024x128_fp32.json"
    prog = pub.vx_sdpa((1, 32, 1024, 128), "fp32")
    agreement = gt.evaluate(prog, dump, chip="M4")
    assert (agreement.compared, agreement.accuracy) == (1, 1.0)     # CPU_AND_NE: fp32 -> CPU
    under_all = gt.evaluate(prog, dump, chip="M4", compute_units="ALL")
    assert under_all.mismatches == (("attn", "cpu", "gpu"),)         # 1.7e10 FLOPs: a GPU region
