"""Helpers of the input- and output-safety tests: a digest of a whole folder tree, a package whose
manifest is compact JSON (what coremltools rewrites when it opens a package)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

MANIFEST = "Manifest.json"
MODEL_FILE = ("Data", "com.apple.CoreML", "model.mlmodel")


def tree_digest(root: Path) -> str:
    """sha256 over every entry under ``root`` (itself included): relative path, kind, bytes or link
    target, and modification time, so a rewrite with the same bytes counts too."""
    h = hashlib.sha256()
    entries = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
    for p in entries:
        st = p.lstat()
        h.update(str(p.relative_to(root) if p != root else ".").encode() + b"\0")
        if p.is_symlink():
            h.update(b"link:" + os.readlink(p).encode())
        elif p.is_file():
            h.update(b"file:" + p.read_bytes() + str(st.st_mtime_ns).encode())
        else:
            h.update(b"dir")
    return h.hexdigest()


def compact_copy(package: Path, dest: Path) -> Path:
    """A copy of ``package`` whose manifest is compact JSON (valid, and not as coremltools writes it)."""
    pkg = Path(shutil.copytree(package, dest))
    manifest = pkg / MANIFEST
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), separators=(",", ":")))
    return pkg


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, hidden ones included (a staging folder left behind shows here)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
