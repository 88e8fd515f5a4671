"""Run every benchmark script in this folder and write ``results/summary.md``.

Each ``bench_*.py`` here defines ``main()`` and writes its own results as ``results/<name>.json`` and
``results/<name>.md`` (``<name>`` with or without the ``bench_`` prefix). This script imports each
one by path, calls ``main`` with no arguments (an empty argv when it takes one; ``sys.argv`` holds
only the script's path meanwhile), records how long
it took and whether it raised, then writes
``results/summary.md``: a status table, the headline table of the precision-policy benchmark
(the one the README shows), and every script's markdown result.

    python benchmarks/run_all.py [--only a,b] [--skip a,b] [--summary-only] [--readme README.md]

``--readme`` replaces the text between ``<!-- benchmarks:begin -->`` and
``<!-- benchmarks:end -->`` in that file with the headline table, and the text between
``<!-- peers:begin -->`` and ``<!-- peers:end -->`` with the peer comparison of ``bench_peers.py``
(a pair of markers absent from the file is left alone). Exit code 1 when a benchmark failed.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))   # the shared benchmark helpers
from common import truncated_pct  # noqa: E402

RESULTS = HERE / "results"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
PEERS_BEGIN, PEERS_END = "<!-- peers:begin -->", "<!-- peers:end -->"
POLICY_COLUMNS = (("float32", "FLOAT32"), ("fp16", "default fp16"), ("seed_pow_sqrt", "seed pow→sqrt"),
                  ("autocast_list", "autocast list"), ("milguard", "milguard"), ("milguard_core", "milguard core"))


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def load_script(path: Path) -> Any:
    """Import the benchmark script at ``path`` as module ``benchmarks_<stem>``."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_one(path: Path) -> dict[str, Any]:
    """Import ``path`` as a module and call its ``main``; never raises."""
    status: dict[str, Any] = {"name": path.stem, "script": path.name}
    t0 = time.perf_counter()
    try:
        main = getattr(load_script(path), "main")
        params = inspect.signature(main).parameters
        saved_argv, sys.argv = sys.argv, [str(path)]     # scripts that read sys.argv see no options
        try:
            main([]) if params else main()
        finally:
            sys.argv = saved_argv
        status["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - SystemExit from argparse included
        if isinstance(exc, KeyboardInterrupt):
            raise
        status["ok"] = False
        status["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:500]
        status["traceback"] = traceback.format_exc()[-4000:]
    status["seconds"] = time.perf_counter() - t0
    return status


def headline(results_dir: Path = RESULTS) -> str:
    """The README table: per zoo model and policy, output SNR (dB) and the share of FLOPs left in fp16."""
    path = results_dir / "bench_policies.json"
    if not path.is_file():
        return "_No precision-policy results yet: run `python benchmarks/bench_policies.py`._\n"
    data = json.loads(path.read_text())
    head = "| model | " + " | ".join(label for _, label in POLICY_COLUMNS) + " |"
    lines = [f"Output SNR in dB against torch fp32 on inputs with planted activation magnitudes from the "
             f"literature (bold: finite and >= {data['verdicts']['accurate_db']:.0f} dB), and in parentheses the "
             "share of FLOPs still computed in fp16 (truncated, not rounded); see "
             "`benchmarks/results/bench_policies.md`.", "", head, "|---|" + "---:|" * len(POLICY_COLUMNS)]
    for m in data["models"]:
        cells = [_cell(m["policies"].get(key, {})) for key, _ in POLICY_COLUMNS]
        lines.append(f"| {m['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(row: dict) -> str:
    if not row or "error" in row:
        return "error"
    snr = row.get("snr_db")
    snr = float(snr) if isinstance(snr, str) else snr
    text = "inf/NaN" if snr == -math.inf else ("exact" if snr == math.inf else f"{snr:.1f}")
    text = f"**{text}**" if row.get("accurate") else text
    share = row.get("flops_fp16_share")
    return text if share is None else f"{text} ({truncated_pct(share)})"


def peers_headline(results_dir: Path = RESULTS) -> str:
    """The README's peer table and findings, formatted by ``bench_peers.readme_table`` from its results."""
    path = results_dir / "bench_peers.json"
    if not path.is_file():
        return "_No peer comparison yet: run `python benchmarks/bench_peers.py` (needs the `peers` extra)._\n"
    return load_script(HERE / "bench_peers.py").readme_table(json.loads(path.read_text()))


def summary(statuses: list[dict], results_dir: Path = RESULTS) -> str:
    """Status of every discovered script (a script run on its own shows as such), headline, results."""
    known = {s["name"]: s for s in statuses}
    lines = ["# Benchmark summary", "", "| script | status | seconds |", "|---|---|---:|"]
    for path in discover():
        s = known.get(path.stem)
        if s is None:
            state = "results from a separate run" if _result_files(path.stem, results_dir) else "not run"
            lines.append(f"| {path.name} | {state} | – |")
            continue
        state = "ok" if s["ok"] else f"failed: {s['error'].splitlines()[-1][:120]}"
        lines.append(f"| {s['script']} | {state} | {s['seconds']:.1f} |")
    lines += ["", "## Precision policies (headline)", "", headline(results_dir).rstrip(), ""]
    for path in sorted(results_dir.glob("*.md")):
        if path.name == "summary.md":
            continue
        body = path.read_text().strip().splitlines()
        lines += ["", f"## {path.stem}", ""] + [("##" + ln if ln.startswith("#") else ln) for ln in body]
    return "\n".join(lines) + "\n"


def _result_files(stem: str, results_dir: Path) -> list[Path]:
    """A script's result files: ``bench_x`` may write ``bench_x.json`` or ``x.json``."""
    names = {stem, stem.removeprefix("bench_")}
    return [p for n in sorted(names) for p in (results_dir / f"{n}.json", results_dir / f"{n}.md") if p.is_file()]


def update_readme(readme: Path, table: str, begin: str = BEGIN, end: str = END) -> bool:
    """Replace the text between the markers with ``table``; False when the markers are absent."""
    text = readme.read_text()
    if begin not in text or end not in text:
        return False
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{begin}\n{table}{end}{after}")
    return True


#: README sections refreshed by ``--readme``: (begin marker, end marker, table from the results)
README_TABLES = ((BEGIN, END, headline), (PEERS_BEGIN, PEERS_END, peers_headline))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated script names (bench_x) to run")
    ap.add_argument("--skip", default="", help="comma-separated script names to leave out")
    ap.add_argument("--summary-only", action="store_true", help="rebuild summary.md from existing results")
    ap.add_argument("--readme", type=Path, help="also refresh the table between the markers in this file")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    scripts = [p for p in discover() if (not only or p.stem in only) and p.stem not in skip]
    statuses = []
    status_file = RESULTS / "run_all.json"
    previous = {s["name"]: s for s in json.loads(status_file.read_text())} if status_file.is_file() else {}
    if args.summary_only:
        statuses = [previous[p.stem] for p in discover() if p.stem in previous]
    else:
        for path in scripts:
            print(f"== {path.name}", file=sys.stderr, flush=True)
            statuses.append(run_one(path))
            state = "ok" if statuses[-1]["ok"] else statuses[-1]["error"]
            print(f"== {path.name}: {state} ({statuses[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
        merged = {**previous, **{s["name"]: s for s in statuses}}
        statuses = [merged[p.stem] for p in discover() if p.stem in merged]
        RESULTS.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps([{k: v for k, v in s.items() if k != "traceback"} for s in statuses],
                                          indent=1) + "\n")
    (RESULTS / "summary.md").write_text(summary(statuses))
    for begin, end, table in README_TABLES if args.readme is not None else ():
        if not update_readme(args.readme, table(), begin, end):
            print(f"{args.readme}: no {begin} / {end} markers; that table left unchanged", file=sys.stderr)
    return 0 if all(s["ok"] for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
