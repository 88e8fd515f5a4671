"""Structural checks of a ``.mlpackage`` folder before coremltools reads it.

coremltools reports a package whose ``Manifest.json`` names an item that is gone (the weights
folder deleted, the model file removed) as "Item does not exist for identifier: <uuid>".
``check_package`` names the missing item instead, in one line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ModelError

MANIFEST = "Manifest.json"


def check_package(path: str | os.PathLike) -> None:
    """Raise ``ModelError`` when the package's manifest is unreadable or names a missing item."""
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
        item = root / "Data" / rel
        if item.exists():
            if item.is_file() and item.stat().st_size == 0:
                raise ModelError(f"{root}: corrupt package ({rel} is empty)")
            continue
        if name == "weights":
            raise ModelError(f"{root}: the package has no weights folder ({rel} is listed in {MANIFEST} "
                             f"but missing)")
        raise ModelError(f"{root}: corrupt package ({rel} is listed in {MANIFEST} but missing)")
