"""Run every benchmark script in this folder, write ``results/summary.md`` and refresh the documents.

Each ``bench_*.py`` here defines ``main()`` and writes its own results as ``results/<name>.json`` and
``results/<name>.md`` (``<name>`` with or without the ``bench_`` prefix), stamped with the revision
measured and whether the tree had uncommitted changes. This script imports each one by path,
calls ``main`` with no arguments (an empty argv when it takes one; ``sys.argv`` holds only the
script's path meanwhile), records how long it took and whether it raised, then writes
``results/summary.md`` (a status table, the headline table of the precision-policy benchmark and
every script's markdown result) and re-renders every figure block of the documents
(``figures.py``: README.md, benchmarks/README.md, docs/placement.md) from the results.

    python benchmarks/run_all.py [--only a,b] [--skip a,b] [--summary-only] [--allow-dirty] [--no-docs]

Benchmarks measure the code of a revision: with uncommitted changes outside ``benchmarks/results/``
the script refuses to run (exit 2) unless ``--allow-dirty``, and the results then say so. Exit
code 1 when a benchmark failed.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))     # common.py and figures.py beside this script
import common  # noqa: E402
import figures  # noqa: E402

RESULTS = HERE / "results"


def discover() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def run_one(path: Path) -> dict[str, Any]:
    """Import ``path`` as a module and call its ``main``; never raises."""
    status: dict[str, Any] = {"name": path.stem, "script": path.name}
    t0 = time.perf_counter()
    try:
        main = getattr(figures.load_script(path), "main")
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
    lines += ["", "Revision measured: " + "; ".join(_stamps(results_dir)) + "."]
    try:
        table = figures.headline(figures.Results(results_dir)).rstrip()
    except figures.FiguresError as exc:
        table = f"_{exc}_"
    lines += ["", "## Precision policies (headline)", "", table, ""]
    for path in sorted(results_dir.glob("*.md")):
        if path.name == "summary.md":
            continue
        body = path.read_text().strip().splitlines()
        lines += ["", f"## {path.stem}", ""] + [("##" + ln if ln.startswith("#") else ln) for ln in body]
    return "\n".join(lines) + "\n"


def _stamps(results_dir: Path) -> list[str]:
    """'name: revision (clean | uncommitted changes)' for every JSON result."""
    out = []
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "revision" in data:
            state = {True: "uncommitted changes", False: "clean"}.get(data.get("dirty"), "unknown")
            out.append(f"{path.stem} {data['revision']} ({state})")
    return out or ["none recorded"]


def _result_files(stem: str, results_dir: Path) -> list[Path]:
    """A script's result files: ``bench_x`` may write ``bench_x.json`` or ``x.json``."""
    names = {stem, stem.removeprefix("bench_")}
    return [p for n in sorted(names) for p in (results_dir / f"{n}.json", results_dir / f"{n}.md") if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated script names (bench_x) to run")
    ap.add_argument("--skip", default="", help="comma-separated script names to leave out")
    ap.add_argument("--summary-only", action="store_true", help="rebuild summary.md and the documents from existing results")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="measure even with uncommitted changes (the results record it)")
    ap.add_argument("--no-docs", action="store_true", help="leave the figure blocks of the documents alone")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}
    scripts = [p for p in discover() if (not only or p.stem in only) and p.stem not in skip]
    status_file = RESULTS / "run_all.json"
    previous = {s["name"]: s for s in _statuses(status_file)}
    if args.summary_only:
        statuses = [previous[p.stem] for p in discover() if p.stem in previous]
    else:
        state = common.source_state()
        if state["dirty"] and not args.allow_dirty:
            print(f"run_all: the tree has uncommitted changes outside {common.RESULTS_DIR}/ (git status --porcelain); "
                  "commit them, or pass --allow-dirty to measure anyway", file=sys.stderr)
            return 2
        statuses = []
        for path in scripts:
            print(f"== {path.name}", file=sys.stderr, flush=True)
            statuses.append(run_one(path))
            outcome = "ok" if statuses[-1]["ok"] else statuses[-1]["error"]
            print(f"== {path.name}: {outcome} ({statuses[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
        merged = {**previous, **{s["name"]: s for s in statuses}}
        statuses = [merged[p.stem] for p in discover() if p.stem in merged]
        RESULTS.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps({**state, "scripts": [{k: v for k, v in s.items() if k != "traceback"}
                                                                 for s in statuses]}, indent=1) + "\n")
    (RESULTS / "summary.md").write_text(summary(statuses))
    if not args.no_docs:
        try:
            for path in figures.refresh():
                print(f"updated {path}", file=sys.stderr)
        except figures.FiguresError as exc:
            print(f"run_all: {exc}", file=sys.stderr)
            return 1
    return 0 if all(s["ok"] for s in statuses) else 1


def _statuses(status_file: Path) -> list[dict[str, Any]]:
    """The per-script statuses of the last run (a list in files written before the revision stamp)."""
    if not status_file.is_file():
        return []
    data = json.loads(status_file.read_text())
    return data if isinstance(data, list) else data.get("scripts", [])


if __name__ == "__main__":
    sys.exit(main())
