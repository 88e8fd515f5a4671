"""Saved packages and calibration files for the CLI tests, built from ``mb`` programs (fast)."""
from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import pytest

from milguard.cli import main
from milguard.mil import Loaded, mb, save, types

SHAPE = (2, 64)


def rms_program(eps: float = 1e-5):
    """fp16 RMSNorm: x * rsqrt(mean(x²) + eps) * w, then relu. x² overflows fp16 once |x| > 256."""
    w = np.linspace(0.5, 1.5, SHAPE[-1]).astype(np.float16)

    def body(x):
        p = mb.pow(x=x, y=np.float16(2.0), name="pow")
        m = mb.reduce_mean(x=p, axes=[-1], keep_dims=True, name="variance")
        r = mb.rsqrt(x=mb.add(x=m, y=np.float16(eps), name="add_eps"), name="rsqrt")
        return mb.relu(x=mb.mul(x=mb.mul(x=x, y=r, name="normed"), y=w, name="scaled"), name="out")

    return mb.program(input_specs=[mb.TensorSpec(shape=SHAPE, dtype=types.fp16)],
                      opset_version=ct.target.iOS17)(body)


UNSUPPORTED = {  # ops the reference executor may lack, each with a builder for a (1, 4, 8, 8) input
    "crop": lambda x: mb.crop(x=x, crop_height=[1, 1], crop_width=[1, 1], name="unsupported"),
    "sliding_windows": lambda x: mb.sliding_windows(x=x, axis=3, size=2, stride=2, name="unsupported"),
    "space_to_batch": lambda x: mb.space_to_batch(x=x, block_shape=[2, 2], paddings=[[0, 0], [0, 0]],
                                                  name="unsupported"),
    "batch_to_space": lambda x: mb.batch_to_space(x=x, block_shape=[1, 1], crops=[[0, 0], [0, 0]],
                                                  name="unsupported"),
}


def unsupported_op() -> str:
    from milguard.executor import SUPPORTED_OPS

    missing = [op for op in UNSUPPORTED if op not in SUPPORTED_OPS]
    assert missing, "the executor now runs every candidate op: add another one to UNSUPPORTED"
    return missing[0]


def crop_program():
    """An op the reference executor has no kernel for: calibration must fail cleanly."""
    build = UNSUPPORTED[unsupported_op()]
    return mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8), dtype=types.fp16)],
                      opset_version=ct.target.iOS17)(lambda x: mb.relu(x=build(x), name="out"))


def saved(program, path: Path) -> Path:
    save(Loaded(program=program), path=path)
    return path


def planted_x() -> np.ndarray:
    x = np.random.default_rng(0).normal(0, 1, SHAPE).astype(np.float16)
    x[0, 5] = 300.0                                  # 300² = 90000 > 65504
    return x


@pytest.fixture(scope="session")
def rms():
    """The builder of the fp16 RMSNorm program (``rms(eps=...)``)."""
    return rms_program


@pytest.fixture(scope="session")
def planted() -> dict[str, np.ndarray]:
    """A calibration sample with one value of 300 in the RMSNorm's input."""
    return {"x": planted_x()}


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> dict[str, Path]:
    """rms: overflows under calibration; eps: only an underflowing epsilon (1e-7); clean: eps 1e-3."""
    root = tmp_path_factory.mktemp("packages")
    out = {"rms": saved(rms_program(), root / "rms.mlpackage"),
           "eps": saved(rms_program(eps=1e-7), root / "eps.mlpackage"),
           "clean": saved(rms_program(eps=1e-3), root / "clean.mlpackage"),
           "crop": saved(crop_program(), root / "crop.mlpackage")}
    x = planted_x()
    np.savez(root / "planted.npz", x=x)
    np.savez(root / "tame.npz", x=np.clip(x, -2, 2))
    np.savez(root / "crop.npz", x=np.ones((1, 4, 8, 8), np.float16))
    out.update(planted=root / "planted.npz", tame=root / "tame.npz", crop_npz=root / "crop.npz",
               unsupported_op=unsupported_op())
    return out


@pytest.fixture
def cli(capsys):
    """Run ``milguard`` in-process: returns (exit code, stdout, stderr)."""
    def run(*argv: str):
        code = main([str(a) for a in argv])
        got = capsys.readouterr()
        return code, got.out, got.err
    return run
