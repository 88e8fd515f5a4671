"""The command line's speed: start-up, and ``milguard audit`` of a 32-layer package against ``ct.convert``.

Start-up, each in a fresh interpreter (best of the repeats, wall seconds): ``milguard --help``,
``milguard --version`` and an argument error through the installed console script, and for
comparison ``import milguard``, ``import coremltools`` and the imports a command needs. Target,
stated before measuring: ``--help``, ``--version`` and argument errors under 1 s.

The model: ``common.llama_program`` with 32 layers (hidden 256, 4 heads, sequence 64, MLP 1024),
built fp32 with the MIL builder, converted by ``ct.convert`` (default fp16 pipeline, iOS17) and
saved as a package. Measured in one process once everything is imported (best of the repeats):
the private view the package is read through, ``load`` (view and parse), the analysis
(``milguard.audit`` of the loaded program; "cold" is the first run, which computes the weights'
spectral bounds), the JSON/HTML/text reports, and the whole ``milguard audit`` and ``milguard fix``
commands run in-process (``cli.main``): the audit's own time apart from imports, set against
``ct.convert``'s time for the same model. Also the console script end to end in a fresh process,
imports included, and the analysis and a calibration in fresh processes with the BLAS thread pool
as it comes and with one thread (what ``milguard`` commands start with), wall and CPU seconds.
Target: the analysis of the 2,400-op program under 2 s.

The private view's cost on every package of the zoo (``milguard.zoo``, default fp16 conversions):
the view (a copy of Manifest.json, a link to Data) against the whole load.

Run: ``python benchmarks/bench_cli.py [--quick]`` (8 layers, no zoo); writes results/cli.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from milguard.cli import blas_threads  # noqa: E402  (light: the command line's own setting)

NUMPY_FIRST = "numpy" in sys.modules          # run by run_all.py after other benchmarks: too late to set
os.environ.update(blas_threads(os.environ, numpy_imported=NUMPY_FIRST))   # as the commands run

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NAME = "cli"
LAYERS_FULL, LAYERS_QUICK = 32, 8
REPEATS = 3
HIDDEN, HEADS, SEQ, INTER = 256, 4, 64, 1024
PY = sys.executable
SCRIPT = str(Path(sys.executable).parent / "milguard")
STARTUP = {
    "milguard --help": [SCRIPT, "--help"],
    "milguard --version": [SCRIPT, "--version"],
    "argument error (milguard audit)": [SCRIPT, "audit"],
    "import milguard": [PY, "-c", "import milguard"],
    "import coremltools": [PY, "-c", "import coremltools"],
    "imports of a command": [PY, "-c", "import milguard.cli, milguard.mil, milguard.report.audit, "
                                       "milguard.actions.repair"],
}
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
LIGHT = ("milguard --help", "milguard --version", "argument error (milguard audit)")


def _run(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    seconds, proc = common.best_of(lambda: subprocess.run(argv, capture_output=True, env=env), 1)
    if proc.returncode not in (0, 1, 2):
        raise RuntimeError(f"{argv}: exit {proc.returncode}: {proc.stderr[-500:]}")
    return seconds


def startup(repeats: int) -> dict[str, float]:
    return {name: min(_run(argv) for _ in range(repeats)) for name, argv in STARTUP.items()}


def model(layers: int, folder: Path) -> tuple[Path, float, int]:
    """(saved package, ct.convert seconds, ops in the saved program, consts included)."""
    import coremltools as ct

    from milguard.mil import iter_ops, load

    prog = common.llama_program(layers, hidden=HIDDEN, heads=HEADS, seq=SEQ, inter=INTER, dtype="fp32")
    seconds, mlmodel = common.best_of(
        lambda: ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17), 1)
    path = folder / f"llama_{layers}.mlpackage"
    mlmodel.save(str(path))
    ops = sum(1 for _ in iter_ops(load(path).program.functions["main"]))
    return path, seconds, ops


def phases(path: Path, folder: Path, repeats: int) -> dict[str, float]:
    """Seconds of each part of an audit of ``path``, everything already imported."""
    from milguard import cli
    from milguard.analysis.norms import _spectral
    from milguard.mil import load
    from milguard.mil.package import private_view
    from milguard.report import text
    from milguard.report.audit import audit

    def view() -> None:
        with private_view(path):
            pass

    loaded = load(path)
    _spectral.cache_clear()
    t_cold, report = common.best_of(lambda: audit(loaded), 1)
    out: dict[str, float] = {
        "private_view_s": common.best_of(view, repeats)[0],
        "load_s": common.best_of(lambda: load(path), repeats)[0],
        "analysis_cold_s": t_cold,
        "analysis_s": common.best_of(lambda: audit(loaded), repeats)[0],
        "json_s": common.best_of(report.to_json, repeats)[0],
        "html_s": common.best_of(report.to_html, 1)[0],
        "text_s": common.best_of(lambda: text.render(report.to_dict()), repeats)[0],
    }
    argv = ["audit", str(path), "--json", str(folder / "a.json"), "--html", str(folder / "a.html"), "--quiet"]
    out["cli_audit_s"] = common.best_of(lambda: _main(cli, argv), repeats)[0]
    fixed = iter(folder / f"fixed_{i}.mlpackage" for i in range(repeats))
    try:
        out["cli_fix_s"] = common.best_of(lambda: _main(cli, ["fix", str(path), "-o", str(next(fixed)), "--quiet"]),
                                          repeats)[0]
    except RuntimeError as exc:         # recorded, not hidden: the table shows the failure
        out["cli_fix_error"] = str(exc)
    out["console_audit_s"] = min(_run([SCRIPT, "audit", str(path), "--quiet"]) for _ in range(2))
    return out


def fresh_process(path: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    """The analysis (cold, then warm) and a calibration (one sample, two executor runs) in fresh
    processes, with the BLAS thread pool as it comes and with one thread (what ``milguard``
    commands start with): [wall, CPU] seconds. On a busy machine the pool's contention, not the
    work, dominates the many small matmuls; the CPU time is the work, whatever the load."""
    code = f"""
import json, sys, time
import numpy as np
sys.path.insert(0, {str(HERE)!r})
import common
common.quiet()
from milguard.analysis.calibrate import calibrate
from milguard.mil import load
from milguard.report.audit import audit
loaded = load({str(path)!r})
def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return [time.perf_counter() - wall, time.process_time() - cpu]
sample = {{"x": np.random.default_rng(1).normal(0, 1, (1, {SEQ}, {HIDDEN})).astype(np.float16)}}
out = {{"analysis_cold": timed(lambda: audit(loaded))}}
out["analysis"] = min(timed(lambda: audit(loaded)) for _ in range({repeats}))
out["calibration"] = min(timed(lambda: calibrate(loaded.program, sample)) for _ in range({repeats}))
print(json.dumps(out))
"""
    base = {k: v for k, v in os.environ.items() if k not in BLAS_THREADS}
    runs = {}
    for name, env in (("default", base), ("one_thread", {**base, **dict.fromkeys(BLAS_THREADS, "1")})):
        proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True,
                              env={**env, "PYTHONWARNINGS": "ignore"})
        runs[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return runs


def _main(cli: Any, argv: list[str]) -> int:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    if code not in (0, 1):
        raise RuntimeError(f"exit {code}: {err.getvalue().strip()[:300]}")
    return code


def zoo_views(folder: Path, repeats: int) -> list[dict[str, Any]]:
    """The private view against the whole load, on every zoo model's default fp16 package."""
    from milguard.mil import load
    from milguard.mil.package import private_view
    from milguard.zoo import MODELS, convert

    rows = []
    for name, entry in MODELS.items():
        path = folder / f"{name}.mlpackage"
        convert(entry).save(str(path))

        def view() -> None:
            with private_view(path):
                pass

        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        rows.append({"model": name, "bytes": size, "private_view_s": common.best_of(view, repeats)[0],
                     "load_s": common.best_of(lambda: load(path), repeats)[0]})
    return rows


def _seconds(p: dict[str, Any], key: str) -> str:
    return f"{p[key + '_s']:.2f}" if key + "_s" in p else f"failed ({p[key + '_error']})"


def markdown(r: dict[str, Any]) -> str:
    s, p = r["startup"], r["phases"]
    out = ["# Command line: start-up, and an audit against ct.convert", "",
           f"Fresh interpreter per run, best of {r['repeats']}, wall seconds. Load average during the run "
           f"{r['load_average'][0]:.1f} -> {r['load_average'][1]:.1f} on {os.cpu_count()} cores (a shared "
           "machine: timings are upper bounds, ratios are the robust figures).", "",
           "| start-up | seconds |", "|---|---:|"]
    out += [f"| `{name}` | {seconds:.2f} |" for name, seconds in s.items()]
    verdict = "met" if max(s[n] for n in LIGHT) < 1.0 else "NOT met"
    out += ["", f"Target: `--help`, `--version` and argument errors under 1 s: {verdict} "
                f"(slowest {max(s[n] for n in LIGHT):.2f} s).", "",
            f"## `milguard audit` of a {r['layers']}-layer LLaMA-shaped package ({r['ops']} ops, consts included)",
            "", f"In this process, everything imported first, BLAS {r['blas_in_process']}; best of the "
                "repeats, seconds.", "",
            "| step | seconds |", "|---|---:|",
            f"| `ct.convert` of the same model (default fp16) | {r['convert_s']:.2f} |",
            f"| private view of the package (Manifest.json copied, Data linked) | {p['private_view_s']:.4f} |",
            f"| `load` (view, then coremltools parses the program) | {p['load_s']:.2f} |",
            f"| analysis, cold (`milguard.audit` of the loaded program, spectral bounds computed) | "
            f"{p['analysis_cold_s']:.2f} |",
            f"| analysis, warm | {p['analysis_s']:.2f} |",
            f"| JSON / HTML / text report | {p['json_s']:.2f} / {p['html_s']:.2f} / {p['text_s']:.2f} |",
            f"| **`milguard audit --json --html`, in-process** | **{p['cli_audit_s']:.2f}** |",
            f"| `milguard fix -o`, in-process (audit before and after, write, reload) | "
            f"{_seconds(p, 'cli_fix')} |",
            f"| `milguard audit` through the console script, imports included | {p['console_audit_s']:.2f} |", "",
            f"The audit's own time is {p['cli_audit_s'] / r['convert_s']:.0%} of `ct.convert`'s for the same "
            f"model; the imports are {s['imports of a command']:.1f} s of the console script's "
            f"{p['console_audit_s']:.1f} s.", "",
            "## BLAS threads: fresh processes, wall / CPU seconds", "",
            "| BLAS thread pool | analysis, cold | analysis, warm | calibration (1 sample) |", "|---|---:|---:|---:|"]
    for name, label in (("default", "as it comes"), ("one_thread", "one thread (what commands start with)")):
        t = r["blas_threads"][name]
        out.append(f"| {label} | " + " | ".join(f"{t[k][0]:.2f} / {t[k][1]:.2f}"
                                                 for k in ("analysis_cold", "analysis", "calibration")) + " |")
    one = r["blas_threads"]["one_thread"]
    cpu_ok, wall_ok = one["analysis_cold"][1] < 2.0, one["analysis_cold"][0] < 2.0
    out += ["", f"Target: the analysis of the {r['ops']}-op program under 2 s, as the commands run it (one "
                f"BLAS thread): {'met' if cpu_ok else 'NOT met'} in CPU time (cold {one['analysis_cold'][1]:.2f} s, "
                f"warm {one['analysis'][1]:.2f} s), {'met' if wall_ok else 'not met'} in wall time on this shared "
                f"machine (cold {one['analysis_cold'][0]:.2f} s, warm {one['analysis'][0]:.2f} s, with the load "
                "above)."]
    if r["zoo"]:
        out += ["", "## The private view on the zoo's packages", "",
                "| model | package size | private view (s) | load (s) | view / load |", "|---|---:|---:|---:|---:|"]
        out += [f"| {z['model']} | {z['bytes'] / 1e6:.2f} MB | {z['private_view_s']:.4f} | {z['load_s']:.3f} | "
                f"{z['private_view_s'] / z['load_s']:.1%} |" for z in r["zoo"]]
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 layers, no zoo")
    args = parser.parse_args(argv if argv is not None else [])
    common.quiet()
    load = [os.getloadavg()[0]]
    layers = LAYERS_QUICK if args.quick else LAYERS_FULL
    folder = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        s = startup(REPEATS)
        path, convert_s, ops = model(layers, folder)
        p = phases(path, folder, REPEATS)
        threads = fresh_process(path, REPEATS)
        try:
            zoo = [] if args.quick else zoo_views(folder, REPEATS)
        except ImportError:              # the zoo needs torch
            zoo = []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load.append(os.getloadavg()[0])
    result = {"name": NAME, "python": platform.python_version(), "machine": platform.machine(),
              "layers": layers, "ops": ops, "repeats": REPEATS, "load_average": load, "startup": s,
              "convert_s": convert_s, "phases": p, "blas_threads": threads, "zoo": zoo,
              "blas_in_process": ("thread pool as it comes (numpy was loaded before this script)" if NUMPY_FIRST
                                  else "on one thread, as the commands run")}
    common.save_results(RESULTS, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
