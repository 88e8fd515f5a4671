"""Structural checks of a ``.mlpackage`` folder before coremltools reads it, and the private view
coremltools reads it through.

coremltools reports a package whose ``Manifest.json`` names an item that is gone (the weights
folder deleted, the model file removed) as "Item does not exist for identifier: <uuid>", and an
item path that leaves the package (``../../..``) as a corrupt protobuf. ``check_package`` names
the problem instead, in one line.

coremltools also writes the package it opens: every open re-serialises ``Manifest.json`` (a
compact manifest comes back indented, and the file is rewritten even when its bytes stay the
same). ``private_view`` gives coremltools a folder of its own to open: a copy of the manifest
(a few hundred bytes) and a symbolic link to the package's ``Data`` folder, which coremltools only
reads, so nothing of the user's package is written and the weights are not copied.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import ModelError

MANIFEST = "Manifest.json"
DATA = "Data"


def check_package(path: str | os.PathLike) -> None:
    """Raise ``ModelError`` when the package's manifest is unreadable, names an item outside the
    package, or names a missing or empty item."""
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ModelError(f"{root}: corrupt package ({MANIFEST} missing)")
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["itemInfoEntries"]
        items = [(str(e["name"]), str(e["path"])) for e in entries.values()]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise ModelError(f"{root}: corrupt package ({MANIFEST} is not a package manifest)") from None
    for name, rel in items:
        if _escapes(rel):
            raise ModelError(f"{root}: corrupt package (the item path '{rel}' in {MANIFEST} leads out of "
                             "the package)")
        item = root / DATA / rel
        if item.exists():
            if item.is_file() and item.stat().st_size == 0:
                raise ModelError(f"{root}: corrupt package ({rel} is empty)")
            continue
        if name == "weights":
            raise ModelError(f"{root}: the package has no weights folder ({rel} is listed in {MANIFEST} "
                             f"but missing)")
        raise ModelError(f"{root}: corrupt package ({rel} is listed in {MANIFEST} but missing)")


def _escapes(rel: str) -> bool:
    """An item path that is absolute or climbs out of ``Data`` with ``..``."""
    norm = os.path.normpath(rel)
    return os.path.isabs(rel) or norm == os.pardir or norm.startswith(os.pardir + os.sep)


@contextmanager
def private_view(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary package that reads as ``path`` (see the module docstring); removed on exit."""
    root = Path(path)
    folder = Path(tempfile.mkdtemp(prefix="milguard-view-"))
    try:
        view = folder / (root.name if root.name.endswith(".mlpackage") else "model.mlpackage")
        view.mkdir()
        shutil.copyfile(root / MANIFEST, view / MANIFEST)
        data = Path(os.path.realpath(root / DATA))
        try:
            os.symlink(data, view / DATA, target_is_directory=True)
        except OSError:                          # no symbolic links here: a plain copy
            shutil.copytree(data, view / DATA)
        yield view
    finally:
        shutil.rmtree(folder, ignore_errors=True)
