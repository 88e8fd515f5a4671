"""The milguard::annotate_placement pass, attach() into metadata, and reading a saved package back."""
from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest

from milguard.errors import MilguardError, ModelError
from milguard.mil import PASS_REGISTRY, load, mb, program_state, types
from milguard.placement import METADATA_KEY, annotations, attach, predict
from milguard.placement.predict import placed_ops

S, D = 512, 512                         # two linears: 5.4e8 FLOPs, above the S1 floor


def _w(*shape):
    return np.random.default_rng(2).standard_normal(shape).astype(np.float32)


def block_program():
    """fp32 program: linear → layer_norm → gelu → linear, with dotted (torch-like) op names."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, S, D), dtype=types.fp32)],
                opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.linear(x=x, weight=_w(D, D), name="blk.fc1")
        y = mb.layer_norm(x=y, axes=[-1], gamma=np.ones(D, np.float32), beta=np.zeros(D, np.float32),
                          name="blk.ln")
        y = mb.gelu(x=y, name="blk.act")
        return mb.linear(x=y, weight=_w(D, D), name="blk.fc2")
    return prog


def convert(keep_fp32=(), **options):
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.append_pass("milguard::annotate_placement")
    if options:
        pipeline.set_options("milguard::annotate_placement", options)
    precision = ct.transform.FP16ComputePrecision(op_selector=lambda op: op.op_type not in keep_fp32)
    return ct.convert(block_program(), convert_to="mlprogram", skip_model_load=True,
                      minimum_deployment_target=ct.target.iOS17, pass_pipeline=pipeline,
                      compute_precision=precision)


def test_pass_is_registered():
    assert "milguard::annotate_placement" in PASS_REGISTRY


def test_pass_annotates_every_non_const_op_on_the_program():
    mlmodel = convert(keep_fp32=("layer_norm",), compute_units="CPU_AND_NE", chip="M3")
    prog = mlmodel._mil_program
    recorded = annotations(prog)
    record = program_state(prog)["placement"]
    assert not [a for a in vars(prog) if "milguard" in a]                # nothing pinned on the Program
    assert record["options"] == {"compute_units": "CPU_AND_NE", "chip": "M3"}
    assert "blk.ln" in record["by_name"]                                  # names the pass saw
    assert "blk_ln" in recorded and "blk.ln" not in recorded             # names after sanitizing
    assert recorded["blk_fc1_cast_fp16"].device == "ane"
    assert (recorded["blk_ln"].device, recorded["blk_ln"].rule) == ("cpu", "D1.fp32")
    assert set(recorded) == {op.name for op, _ in placed_ops(prog.functions["main"])}
    assert sum(p.rule == "O17.cast_boundary" for p in recorded.values()) == 2
    assert sum(p.rule == "O17.io_cast" for p in recorded.values()) == 2


def test_attach_save_reload_names_match_the_saved_program(tmp_path):
    mlmodel = convert(keep_fp32=("layer_norm",), compute_units="CPU_AND_NE")
    attached = attach(mlmodel)
    path = tmp_path / "block.mlpackage"
    mlmodel.save(str(path))

    saved_ops = {op.name: op for op, _ in placed_ops(load(path).program.functions["main"])}
    read_back = annotations(path)
    assert read_back == attached
    assert set(read_back) == set(saved_ops)
    assert "blk_ln" in read_back and "blk.ln" not in read_back         # final (sanitized) names
    assert read_back["blk_ln"].rule == "D1.fp32"
    # the pass's in-memory record, read under the final names, is what was persisted
    assert annotations(mlmodel._mil_program) == read_back
    record = json.loads(load(path).metadata[METADATA_KEY])
    assert record["compute_units"] == "CPU_AND_NE" and record["chip"] == "M1"
    assert record["functions"]["main"]["blk_ln"]["op_type"] == "layer_norm"
    # predicting on the reloaded package agrees with the persisted annotations
    assert predict(path, compute_units="CPU_AND_NE") == read_back


def test_attach_without_the_pass_uses_defaults_and_in_memory_reads(tmp_path):
    mlmodel = ct.convert(block_program(), convert_to="mlprogram", skip_model_load=True,
                         minimum_deployment_target=ct.target.iOS17)
    assert annotations(mlmodel) == {}
    placements = attach(mlmodel, chip="M4")
    assert annotations(mlmodel) == placements
    assert json.loads(mlmodel.user_defined_metadata[METADATA_KEY])["compute_units"] == "ALL"
    assert annotations(mlmodel, function="main") == placements
    with pytest.raises(MilguardError, match="no function 'decode'"):
        annotations(mlmodel, function="decode")


def test_bad_inputs_give_one_line_errors(tmp_path):
    with pytest.raises(MilguardError, match="attach needs an MLModel"):
        attach(block_program())
    with pytest.raises(ModelError, match="no such file"):
        annotations(tmp_path / "missing.mlpackage")
    mlmodel = ct.convert(block_program(), convert_to="mlprogram", skip_model_load=True,
                         minimum_deployment_target=ct.target.iOS17)
    mlmodel.user_defined_metadata[METADATA_KEY] = "{not json"
    with pytest.raises(ModelError, match="corrupt 'milguard.placement' metadata"):
        annotations(mlmodel)
    with pytest.raises(MilguardError, match="unknown compute units"):
        convert(compute_units="GPU_ONLY")


def test_ops_removed_after_the_pass_drop_out_of_the_annotations():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, S, D), dtype=types.fp16)],
                opset_version=ct.target.iOS17)
    def prog(x):
        mb.relu(x=x, name="dead")                                        # consumed by nothing
        return mb.linear(x=x, weight=_w(D, D).astype(np.float16), name="lin")
    PASS_REGISTRY["milguard::annotate_placement"](prog)
    assert set(annotations(prog)) == {"dead", "lin"}
    PASS_REGISTRY["common::dead_code_elimination"](prog)
    assert set(annotations(prog)) == {"lin"}
    assert set(program_state(prog)["placement"]["by_name"]) == {"dead", "lin"}   # the raw record stays


def test_an_audit_of_the_saved_package_reads_the_annotations_back(tmp_path):
    """Annotated under CPU_ONLY, audited with the default ALL: the audit shows what was saved."""
    import milguard

    mlmodel = convert(keep_fp32=("layer_norm",), compute_units="CPU_ONLY")
    attach(mlmodel)
    mlmodel.save(str(tmp_path / "block.mlpackage"))
    placement = milguard.audit(tmp_path / "block.mlpackage").to_dict()["placement"]
    assert placement["source"] == "saved"
    saved = annotations(tmp_path / "block.mlpackage")
    assert {p["device"] for p in placement["ops"].values()} == {"cpu"}
    assert {op: p["device"] for op, p in placement["ops"].items()} == {op: p.device for op, p in saved.items()}
    assert predict(tmp_path / "block.mlpackage", compute_units="ALL") != saved     # so it is not recomputed
    plain = tmp_path / "plain.mlpackage"
    convert(keep_fp32=("layer_norm",)).save(str(plain))
    assert milguard.audit(plain).to_dict()["placement"]["source"] == "predicted"
