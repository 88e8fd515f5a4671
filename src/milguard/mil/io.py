"""Loading ML programs (MLModel, .mlpackage, .mlmodel, Program) into pymil and saving them back, on Linux."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import coremltools as ct
from coremltools.converters.mil import Program
from coremltools.converters.mil.converter import mil_convert
from coremltools.converters.mil.frontend.milproto.load import load as _milproto_load

from ..errors import ModelError, one_line
from ..outputs import Outputs, real, refuse_input
from .package import check_package, private_view


@dataclass
class Loaded:
    """A program and what is needed to write it back: the spec's description and version."""

    program: Program
    spec: Any = None                 # Model_pb2.Model, None for a bare Program
    path: Path | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def specification_version(self) -> int:
        if self.spec is not None:
            return self.spec.specificationVersion
        fn = next(iter(self.program.functions.values()))
        return int(fn.opset_version.value) if fn.opset_version is not None else int(ct.target.iOS15.value)


def converted_program(mlmodel: Any) -> Program | None:
    """The program ``ct.convert`` ran its passes on, still held by the MLModel it returned (its
    ops keep their torch scopes; what the passes recorded in ``program_state`` is keyed by it).
    None for a model read from disk, and for anything that is not an MLModel."""
    if not isinstance(mlmodel, ct.models.MLModel):
        return None
    return getattr(mlmodel, "_mil_program", None)


def load(model: Any) -> Loaded:
    """Program | MLModel | path to .mlpackage/.mlmodel (| Loaded, returned as is) -> Loaded.

    Raises ModelError with one line. A package is read through a private view (``private_view``):
    coremltools rewrites the manifest of the package it opens, and the user's stays as it was.
    """
    if isinstance(model, Loaded):
        return model
    if isinstance(model, Program):
        return Loaded(program=model)
    if isinstance(model, ct.models.MLModel):
        # fresh from ct.convert, the model still holds its program, with the torch scopes
        return _from_mlmodel(model, None, converted_program(model))
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ModelError(f"{path}: no such file or directory")
        if path.suffix not in (".mlpackage", ".mlmodel"):
            raise ModelError(f"{path}: not a Core ML model (expected a .mlpackage or .mlmodel)")
        if path.suffix == ".mlmodel":
            return _from_mlmodel(_open(path, path), path)
        check_package(path)
        with private_view(path) as view:
            return _from_mlmodel(_open(view, path), path, renames=((str(view), str(path)),))
    raise ModelError(f"cannot load a {type(model).__name__}: expected a Program, an MLModel or a path")


def _open(location: Path, path: Path) -> "ct.models.MLModel":
    try:
        return ct.models.MLModel(str(location), skip_model_load=True)
    except Exception as exc:  # noqa: BLE001 - coremltools raises many kinds here
        raise ModelError(f"{path}: cannot read model ({_line(exc, ((str(location), str(path)),))})") from None


def _from_mlmodel(mlmodel: "ct.models.MLModel", path: Path | None, program: Program | None = None,
                  renames: tuple[tuple[str, str], ...] = ()) -> Loaded:
    where = str(path) if path else "model"
    try:
        spec = mlmodel.get_spec()
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{where}: cannot read the model spec ({_line(exc, renames)})") from None
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ModelError(f"{where}: a '{kind}' model, not an ML program; milguard reads ML programs only")
    meta = dict(spec.description.metadata.userDefined)
    if program is not None:
        return Loaded(program=program, spec=spec, path=path, metadata=meta)
    weights_dir = mlmodel.weights_dir or ""
    if _needs_weights(spec) and not (weights_dir and Path(weights_dir).is_dir()):
        raise ModelError(f"{where}: the package has no weights folder but the program references weight files")
    try:
        program = _milproto_load(spec, specification_version=spec.specificationVersion,
                                 file_weights_dir=weights_dir)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{where}: corrupt ML program ({_line(exc, renames)})") from None
    return Loaded(program=program, spec=spec, path=path, metadata=meta)


def _line(exc: BaseException, renames: tuple[tuple[str, str], ...] = ()) -> str:
    """``one_line(exc, 200)``, naming the user's paths where coremltools named the private view's."""
    text = one_line(exc, 10_000)
    for old, new in renames:
        text = text.replace(old, new)
    return text if len(text) <= 200 else text[:197] + "..."


def _needs_weights(spec: Any) -> bool:
    return b"@model_path/weights" in spec.mlProgram.SerializeToString()


def save(loaded: Loaded, program: Program | None = None, path: str | os.PathLike | None = None,
         metadata: dict[str, str] | None = None) -> "ct.models.MLModel":
    """Serialize a program as an ML program keeping the original I/O description and metadata.

    With ``path`` the package is written atomically: to a temporary sibling, then renamed.
    An existing ``path`` is never overwritten, and a path that is, contains or lies inside the
    package ``loaded`` was read from is refused.
    """
    program = program if program is not None else loaded.program
    kwargs: dict[str, Any] = {}
    if loaded.spec is not None:
        kwargs["model_description"] = loaded.spec.description
    mlmodel = mil_convert(program, convert_from="milinternal", convert_to="mlprogram",
                          specification_version=loaded.specification_version,
                          compute_units=ct.ComputeUnit.ALL, skip_model_load=True,
                          main_pipeline=ct.PassPipeline.EMPTY, **kwargs)
    for key, value in {**loaded.metadata, **(metadata or {})}.items():
        mlmodel.user_defined_metadata[key] = value
    if path is not None:
        write_package(mlmodel, path, inputs=[loaded.path] if loaded.path is not None else ())
    return mlmodel


def write_package(mlmodel: "ct.models.MLModel", path: str | os.PathLike,
                  inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Save ``mlmodel`` at ``path`` atomically (``milguard.outputs``), creating missing folders;
    refuses an existing path and a path that is, contains or lies inside one of ``inputs``."""
    target = Path(path)
    if target.suffix != ".mlpackage":
        raise ModelError(f"{target}: the output must end in .mlpackage")
    inputs = list(inputs)
    refuse_input("", target, inputs)
    if os.path.lexists(target):
        raise ModelError(f"{target}: already exists; milguard never overwrites a model")
    real(target).parent.mkdir(parents=True, exist_ok=True)
    outputs = Outputs(inputs)
    outputs.add("", target, model=True)
    with outputs:
        mlmodel.save(str(outputs.path("")))
    return target
