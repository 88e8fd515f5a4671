"""Regenerate ``docs/audit-report.png``: a real audit of the bundled example, rendered by Chromium.

    python docs/render_screenshot.py [--out docs/audit-report.png] [--html report.html]

Converts ``milguard.zoo.EXAMPLE`` (the LLaMA-style decoder layer) with coremltools' default fp16,
saves the package, writes its planted inputs (massive activations of LLaMA2-7B's size) as an
``.npz``, runs ``milguard audit MODEL --calibration planted.npz --html report.html`` in-process,
and screenshots the page with headless Chromium (Debian's ``chromium`` package; no network
access is needed: the page is self-contained). The PNG is reduced to a 256-colour palette to
stay small. Needs torch (the zoo) and Pillow.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
WINDOW = (1400, 2000)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def audit_page(work: Path) -> Path:
    """Convert the example, save it and its planted inputs in ``work``, audit it to HTML."""
    import numpy as np

    from milguard import zoo
    from milguard.cli import main
    from milguard.mil import write_package

    entry = zoo.MODELS[zoo.EXAMPLE]
    with _cwd(work):                         # relative names: the page shows no local paths
        write_package(zoo.convert(entry), f"{entry.name}.mlpackage")
        np.savez("planted.npz", **{n: t.numpy() for n, t in zip(entry.input_names, entry.planted_inputs(0))})
        code = main(["audit", f"{entry.name}.mlpackage", "--calibration", "planted.npz",
                     "--html", "report.html"])
    if code not in (0, 1):
        raise SystemExit(f"milguard audit failed with exit code {code}")
    return work / "report.html"


def screenshot(page: Path, png: Path, chromium: str) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)


def shrink(src: Path, dst: Path) -> None:
    from PIL import Image

    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=256).save(dst, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "audit-report.png", help="the PNG to write")
    ap.add_argument("--html", type=Path, help="also keep the HTML page here")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"),
                    help="the Chromium binary (default: chromium on PATH)")
    args = ap.parse_args(argv)
    if not args.chromium:
        sys.exit("chromium not found: install Debian's chromium package (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        page = audit_page(work)
        raw = work / "raw.png"
        screenshot(page, raw, args.chromium)
        shrink(raw, args.out)
        if args.html:
            shutil.copyfile(page, args.html)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
