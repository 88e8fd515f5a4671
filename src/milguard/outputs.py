"""Where a command writes: every output checked before any work, staged privately, committed together.

    outputs = Outputs(inputs=[model, *calibration_files])
    outputs.add("-o", "fixed.mlpackage", model=True)     # a model: must not exist
    outputs.add("--json", "report.json")                  # a report: replaced when it exists
    with outputs:                                         # all checks, then a staging folder per output
        keep_fp32(model, output=outputs.path("-o"))
        outputs.path("--json").write_text(report)
    # on a normal exit every output is in place (os.replace); on an exception none is

Refused, with one line naming the option and the path (``MilguardError``): an output that is,
contains or lies inside an input or another output (symbolic links resolved first, so a link to
the input is the input); a model output that exists (milguard never overwrites a model); a report
output that is a folder; an output whose folder is missing or not writable. Each output is staged
in a private folder next to its target (the same file system, so the commit is a rename), and an
exception naming a staging path names the user's path instead. A failing command leaves nothing:
outputs committed before a failing commit are taken back (a replaced report restored).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import MilguardError

STAGING_PREFIX = ".milguard-"


def real(path: str | os.PathLike) -> Path:
    """The path with every symbolic link resolved (also when it, or its end, does not exist)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def overlap(path: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """How ``path`` sits relative to ``other`` once links are resolved: "is", "is inside",
    "contains" or None. Existing paths are also compared as files (case-insensitive file systems)."""
    a, b = real(path), real(other)
    if _same(a, b):
        return "is"
    if any(_same(p, b) for p in a.parents):
        return "is inside"
    if any(_same(p, a) for p in b.parents):
        return "contains"
    return None


def refuse_input(option: str, path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Raise when the output ``path`` is, contains or lies inside one of ``inputs``."""
    for source in inputs:
        how = overlap(path, source)
        if how:
            raise MilguardError(f"{_named(option, path)}: {how} the input {source}; "
                                "milguard never writes over its input")


@dataclass
class _Output:
    option: str
    path: Path                         # as given
    model: bool                        # a model package: must not exist
    target: Path = field(init=False)   # links resolved: where the output goes
    staging: Path | None = None
    backup: Path | None = None         # the report this output replaced, until the command ends
    committed: bool = False

    def __post_init__(self) -> None:
        self.target = real(self.path)

    @property
    def staged(self) -> Path:
        assert self.staging is not None, "outputs are staged when the `with` block starts"
        return self.staging / self.target.name


class Outputs:
    """The outputs of one command (see the module docstring); a context manager, used once."""

    def __init__(self, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.inputs = [Path(p) for p in inputs]
        self._outputs: dict[str, _Output] = {}

    def add(self, option: str, path: str | os.PathLike, *, model: bool = False) -> None:
        self._outputs[option] = _Output(option, Path(path), model)

    def path(self, option: str) -> Path:
        """Where to write the output of ``option`` inside the ``with`` block."""
        return self._outputs[option].staged

    def __enter__(self) -> "Outputs":
        self.check()
        try:
            for out in self._outputs.values():
                out.staging = _staging_folder(out)
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        renames = self._renames()
        try:
            if exc is None:
                self._commit()
        except BaseException as error:
            self._rollback()
            _rename_in(error, renames)
            raise
        finally:
            self._discard()
        if exc is not None:
            _rename_in(exc, renames)
        return False

    # ---- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        """Every refusal of the module docstring, before any work."""
        outputs = list(self._outputs.values())
        for i, out in enumerate(outputs):
            refuse_input(out.option, out.path, self.inputs)
            for other in outputs[:i]:
                how = overlap(out.path, other.path)
                if how:
                    what = "is also" if how == "is" else how
                    raise MilguardError(f"{_named(out.option, out.path)}: {what} the {other.option} output "
                                        f"{other.path}; each output needs its own path")
        for out in outputs:
            _check_target(out)

    # ---- commit and clean-up ----------------------------------------------------------------

    def _commit(self) -> None:
        for out in self._outputs.values():
            if out.model and os.path.lexists(out.target):
                raise MilguardError(f"{out.path}: already exists; milguard never overwrites a model")
            if not out.model and os.path.isfile(out.target):
                out.backup = _keep_aside(out.target, out.staging / f"{out.target.name}.previous")
            os.replace(out.staged, out.target)
            out.committed = True

    def _rollback(self) -> None:
        for out in reversed(list(self._outputs.values())):
            if not out.committed:
                continue
            with contextlib.suppress(OSError):
                if out.backup is not None:
                    os.replace(out.backup, out.target)
                elif out.target.is_dir() and not out.target.is_symlink():
                    shutil.rmtree(out.target)
                else:
                    out.target.unlink()

    def _discard(self) -> None:
        for out in self._outputs.values():
            if out.staging is not None:
                shutil.rmtree(out.staging, ignore_errors=True)
                out.staging = None

    def _renames(self) -> list[tuple[str, str]]:
        """(staging path, the user's path) pairs, the most specific first."""
        staged = [o for o in self._outputs.values() if o.staging is not None]
        return ([(str(o.staged), str(o.path)) for o in staged]
                + [(str(o.staging), str(o.path.parent)) for o in staged])


def _named(option: str, path: str | os.PathLike) -> str:
    return f"{option} {path}" if option else str(path)


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_target(out: _Output) -> None:
    if out.model and os.path.lexists(out.path):
        link = " (a symbolic link)" if os.path.islink(out.path) else ""
        raise MilguardError(f"{out.path}: already exists{link}; milguard never overwrites a model")
    if not out.model and out.target.is_dir():
        raise MilguardError(f"{out.path}: is a folder; {out.option} takes a file name")
    if not out.target.parent.is_dir():
        raise MilguardError(f"{out.path}: the folder {out.path.parent} does not exist")


def _staging_folder(out: _Output) -> Path:
    folder = out.target.parent
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    except OSError as exc:
        raise MilguardError(f"{out.path}: cannot write in {out.path.parent or '.'} "
                            f"({exc.strerror or type(exc).__name__})") from None
    return staging


def _keep_aside(path: Path, backup: Path) -> Path:
    """A second name (or, where links are not possible, a copy) of the report about to be replaced."""
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    return backup


def _rename_in(exc: BaseException, pairs: list[tuple[str, str]]) -> None:
    """Name the user's paths instead of the staging paths in ``exc`` (in place)."""
    def swap(text):
        if not isinstance(text, str):
            return text
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    if isinstance(exc, OSError):
        exc.filename, exc.filename2 = swap(exc.filename), swap(exc.filename2)
        if exc.strerror is not None:
            exc.strerror = swap(exc.strerror)
            return
    exc.args = tuple(swap(a) for a in exc.args)
