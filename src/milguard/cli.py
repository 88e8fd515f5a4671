"""The ``milguard`` command: ``milguard audit MODEL`` and ``milguard fix MODEL -o OUT``.

Exit codes (:data:`EXIT`): 0 — done, no finding reaches ``--fail-on``; 1 — findings reach
``--fail-on`` (levels in :mod:`milguard.testing`); 2 — bad input (a model that cannot be read,
a bad option or argument, a calibration file that is not an npz, an op the executor cannot run,
an output that exists or would touch the input): one line on stderr, no traceback (``--debug``
shows it), nothing written; 3 — an internal error (a bug: please report it with the ``--debug``
traceback).

Options not given on the command line come from the ``[tool.milguard]`` table of the nearest
``pyproject.toml`` (:mod:`milguard.config`).

Every output (``-o``, ``--json``, ``--html``) is checked before any work and written through
:class:`milguard.outputs.Outputs`: staged privately, put in place together at the end, and not at
all when the command fails. The input is only read (``milguard.mil.io.load`` reads a package
through a private view). This module and its parser import nothing heavy: ``--help``,
``--version`` and argument errors answer without importing coremltools or torch.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, NoReturn, Sequence

from .catalogue import catalogue
from .choices import NATIVE, REMEDY_MODES, SCOPES
from .compute_units import COMPUTE_UNITS
from .config import FAIL_ON_LEVELS
from .errors import MilguardError, ModelError, one_line
from .outputs import Outputs
from .progress import Progress, quiet

EXIT = {"ok": 0, "findings": 1, "bad_input": 2, "internal": 3}
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CONFIG_NOTE = "Options not given here are read from [tool.milguard] in the nearest pyproject.toml."
DOCS = "docs/audit.md"
EXAMPLES = f"""\
examples:
  milguard audit model.mlpackage
  milguard audit model.mlpackage --input-range x=-30:30 --html audit.html
  milguard audit model.mlpackage --calibration batch0.npz --json audit.json --fail-on overflow
  milguard fix model.mlpackage -o fixed.mlpackage --calibration batch0.npz

exit codes: 0 ok, 1 findings reach --fail-on, 2 bad input, 3 internal error.
The input is never modified; a failing command writes nothing. Guide: {DOCS}
{CONFIG_NOTE}
"""
log = logging.getLogger("milguard")


class UsageError(MilguardError):
    """A bad command line: argparse's message, in one line."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    try:
        args = parser().parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT["bad_input"]
    except SystemExit as exc:            # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT["ok"]
    os.environ.update(blas_threads(os.environ, numpy_imported="numpy" in sys.modules))
    try:
        with quiet(not args.debug):       # coremltools' warnings and bars (--debug keeps them)
            return args.run(args)
    except (MilguardError, OSError) as exc:
        if args.debug:
            raise
        _error(one_line(exc))
        return EXIT["bad_input"]
    except Exception as exc:  # noqa: BLE001 - the CLI promises no traceback without --debug
        if args.debug:
            raise
        _error(f"internal error ({type(exc).__name__}: {one_line(exc)}); rerun with --debug for the traceback")
        return EXIT["internal"]


# ---- commands --------------------------------------------------------------------------------

def _audit(args: argparse.Namespace) -> int:
    settings = _settle(args)
    progress = _progress(args)
    model = _model_path(args.model)
    stdout: list[tuple[str, str]] = []
    with _outputs(args, model) as outputs:
        from .report import text

        loaded = _load(progress, model, args)
        fn = _function(loaded, model, args.function)
        ranges = _all_input_ranges(args, settings, fn)
        samples = _calibration(args.calibration, loaded, args.function)
        report = _run_audit(progress, loaded, model, ranges, samples, args)
        d = _write_reports(report, args, outputs, progress, stdout)
        if args.json != "-":
            stdout.append(("summary", text.render(d)))
    _print(stdout, args)
    return _gate(d, args.fail_on)


def _fix(args: argparse.Namespace) -> int:
    settings = _settle(args)
    progress = _progress(args)
    model = _model_path(args.model)
    out = Path(args.output)
    if out.suffix != ".mlpackage":
        raise ModelError(f"{out}: the output must end in .mlpackage")
    stdout: list[tuple[str, str]] = []
    with _outputs(args, model, package=out) as outputs:
        from .actions.options import Options
        from .actions.repair import METADATA_KEY, keep_fp32
        from .mil import load
        from .report import text

        options = _decision_options(args)
        Options.make(**options)                                    # reject bad options before any work
        loaded = _load(progress, model, args)
        fn = _function(loaded, model, args.function)
        ranges = _all_input_ranges(args, settings, fn)
        samples = _calibration(args.calibration, loaded, args.function)
        audited = _run_audit(progress, loaded, model, ranges, samples, args)
        before = audited.to_dict()
        with progress.step(f"applying the remedies and writing {out}"), _silenced(args.debug):
            fixed = keep_fp32(loaded, output=outputs.path("-o"), input_ranges=ranges or None,
                              calibration=samples, evidence=audited.evidence, **options)
        with _silenced(args.debug):
            written = dataclasses.replace(load(outputs.path("-o")), path=out)
        after = _write_reports(_run_audit(progress, written, out, ranges, samples, args), args, outputs,
                               progress, stdout)
        done = json.loads(fixed.user_defined_metadata.get(METADATA_KEY, "[]") or "[]")
        if args.json != "-":
            stdout.append(("summary", text.render(before, title="before") + "\n"
                           + text.render(after, title="after") + "\n" + text.compare(before, after) + "\n\n"
                           + f"wrote {out}: {text.remedies(done)}\n"))
    _print(stdout, args)
    return _gate(after, args.fail_on)


def _decision_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options that decide what each region gets (the same for audit and fix)."""
    return {"remedy": args.remedy, "compute_units": args.compute_units, "scope": args.scope,
            "families": _split(args.families), "exclude": _split(args.exclude), "keep_native": args.keep_native}


def _run_audit(progress: Progress, loaded: Any, model: Path, ranges: dict, samples: Any,
               args: argparse.Namespace) -> Any:
    from .report.audit import audit

    what = f"auditing {model}" + (f" (calibrating on {len(samples)} sample{'s' * (len(samples) != 1)})"
                                  if samples else "")
    try:
        with progress.step(what), _silenced(args.debug):
            options = {k: v for k, v in _decision_options(args).items() if k != "compute_units" and v is not None}
            return audit(loaded, ranges or None, samples, function=args.function,
                         ane_limits=args.ane_limits, compute_units=args.compute_units, ignore=args.ignore,
                         **options)
    except MilguardError as exc:         # e.g. the executor's unsupported op: name the model too
        if str(model) in str(exc):
            raise
        raise MilguardError(f"{model}: {one_line(exc)}") from exc


def _gate(d: dict, fail_on: str) -> int:
    from .testing import failing

    bad = failing(d["findings"], fail_on)
    if bad:
        verb = "finding reaches" if len(bad) == 1 else "findings reach"
        _error(f"{len(bad)} {verb} --fail-on {fail_on}", prefix="milguard")
        return EXIT["findings"]
    return EXIT["ok"]


def blas_threads(environ: Mapping[str, str], numpy_imported: bool) -> dict[str, str]:
    """The BLAS thread settings a command starts with: one thread, unless the user set any of
    :data:`BLAS_THREADS` (or numpy is loaded already, when it is too late). The analysis and the
    reference executor multiply many small matrices; on a busy machine a BLAS thread pool makes
    them several times slower (benchmarks/results/cli.md)."""
    if numpy_imported or any(name in environ for name in BLAS_THREADS):
        return {}
    return dict.fromkeys(BLAS_THREADS, "1")


# ---- inputs and outputs ----------------------------------------------------------------------

def _settle(args: argparse.Namespace) -> Any:
    """Fill what the command line left out from ``[tool.milguard]`` (the command line wins; ignore
    rules add up) and check the ignore rules before any work. Returns the settings."""
    from .analysis.findings import parse_ignore
    from .config import load_config

    settings = load_config()
    given = settings.values
    args.fail_on = args.fail_on or settings.fail_on or "never"
    args.compute_units = args.compute_units or given.get("compute-units") or "ALL"
    args.function = args.function or given.get("function") or "main"
    args.ane_limits = bool(args.ane_limits or given.get("ane-limits"))
    args.calibration = args.calibration or settings.calibration_paths() or None
    for rule in args.ignore or ():
        parse_ignore(rule, label="--ignore")
    args.ignore = [*settings.ignore, *(args.ignore or ())]
    return settings


def _all_input_ranges(args: argparse.Namespace, settings: Any, fn: Any) -> dict[str, tuple[float, float]]:
    """The file's input ranges, then the command line's (which replace them input by input)."""
    ranges = _input_ranges(settings.input_range, fn, f"input-range in {settings.path}")
    ranges.update(_input_ranges(args.input_range, fn))
    return ranges


def _model_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    return path


def _outputs(args: argparse.Namespace, model: Path, package: Path | None = None) -> Outputs:
    """Every file the command writes, checked against the inputs (model, calibration files) and
    against each other when the ``with`` block starts, before the model is read."""
    outputs = Outputs(inputs=[model, *(args.calibration or ())])
    if package is not None:
        outputs.add("-o", package, model=True)
    for kind in ("json", "html"):
        value = getattr(args, kind)
        if value is not None and not (kind == "json" and value == "-"):
            outputs.add(f"--{kind}", value)
    if args.html is not None:
        from .report.plot import require_matplotlib
        require_matplotlib()                     # before any work: the html extra may be missing
    return outputs


def _load(progress: Progress, model: Path, args: argparse.Namespace) -> Any:
    from .mil import load

    with progress.step(f"loading {model}"), _silenced(args.debug):
        return load(str(model))


def _function(loaded: Any, model: Path, function: str) -> Any:
    program = loaded.program
    if function not in program.functions:
        raise ModelError(f"{model}: no function '{function}' (has {', '.join(sorted(program.functions))})")
    return program.functions[function]


def _input_ranges(values: Sequence[str] | None, fn: Any,
                  label: str = "--input-range") -> dict[str, tuple[float, float]]:
    from .input_ranges import parse_input_ranges

    ranges: dict[str, tuple[float, float]] = {}
    for value in values or ():
        if "=" not in value or ":" not in value.partition("=")[2]:
            raise MilguardError(f"bad {label} '{value}': expected NAME=LO:HI, e.g. x=-30:30")
        for name, (lo, hi) in parse_input_ranges(value).items():
            if name not in fn.inputs:
                raise MilguardError(f"bad {label} '{value}': the model has no input '{name}' "
                                    f"(inputs: {', '.join(fn.inputs)})")
            ranges[name] = (lo, hi)
    return ranges


def _calibration(paths: Sequence[str] | None, loaded: Any, function: str) -> list[dict[str, Any]] | None:
    """Read every npz now and check it against the model's inputs (one-line errors before any work;
    :func:`milguard.executor.inputs.check_inputs`, as ``milguard.run`` and calibration do)."""
    from .analysis.calibrate import checked_samples

    return checked_samples(loaded, [str(p) for p in paths], function) if paths else None


def _write_reports(report: Any, args: argparse.Namespace, outputs: Outputs, progress: Progress,
                   stdout: list[tuple[str, str]]) -> dict:
    """Stage the JSON and HTML reports (``-`` for JSON: stdout); returns the report as a dict."""
    as_json = report.to_json()
    d = json.loads(as_json)
    for kind, render in (("json", lambda: as_json + "\n"), ("html", report.to_html)):
        target = getattr(args, kind)
        if target is None:
            continue
        if kind == "json" and target == "-":      # only JSON goes to stdout (_outputs stages every other "-")
            stdout.append((kind, render()))
            continue
        with progress.step(f"writing {target}"):
            outputs.path(f"--{kind}").write_text(render(), encoding="utf-8")
    return d


def _print(stdout: list[tuple[str, str]], args: argparse.Namespace) -> None:
    """Print the command's (kind, text) parts once every output is in place: the JSON report
    (``--json -``) always, the summary unless --quiet."""
    for kind, text in stdout:
        if kind == "json" or not args.quiet:
            sys.stdout.write(text)


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(enabled=False) if args.quiet else Progress(force=args.progress)


def _split(values: Sequence[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(s.strip() for v in values for s in v.split(",") if s.strip())


# ---- the parser: every option of every command is defined here ------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``milguard: error: <message> (...)``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def parser() -> argparse.ArgumentParser:
    """The command line (light: no import of coremltools, torch or milguard's analyses)."""
    formatter = argparse.RawDescriptionHelpFormatter
    ap = _Parser(prog="milguard", description="Audit and repair fp16 Core ML programs.", epilog=EXAMPLES,
                 formatter_class=formatter)
    ap.add_argument("--version", action="version", version=f"milguard {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{audit,fix}")
    families = catalogue()

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", metavar="MODEL", help="an ML program: .mlpackage or .mlmodel (only read)")
        p.add_argument("--input-range", action="append", metavar="NAME=LO:HI",
                       help="value range of an input for the static analysis; repeatable (defaults: -1:1 "
                            "for float inputs in the findings, unbounded in the decisions; 0:N-1 for "
                            "integer inputs read as gather indices of an axis of N, the dtype's full range "
                            "for other integers, 0:1 for bool)")
        p.add_argument("--calibration", action="append", metavar="FILE.npz",
                       help="one sample: an .npz with an array per input; repeatable")
        p.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout, no summary)")
        p.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML page")
        p.add_argument("--fail-on", choices=FAIL_ON_LEVELS, default=None,
                       help="exit 1 when findings reach this level: overflow = overflow/NaN findings of "
                            "severity error or warning; any = any error or warning (default: never). "
                            "Findings superseded by calibration or ignored never count")
        p.add_argument("--ignore", action="append", metavar="RULE",
                       help="leave matching findings out of the counts and --fail-on: a kind (overflow, "
                            "nan, nonfinite, underflow, accumulation, analysis), a glob of op names or "
                            "torch module paths, or KIND:GLOB; repeatable")
        p.add_argument("--ane-limits", action="store_true", default=None,
                       help="also check the Neural Engine's lower value limits (matmul 32752, ...)")
        p.add_argument("--compute-units", default=None, choices=COMPUTE_UNITS,
                       help="compute units the model targets: the expected placement, and which remedy "
                            "is cheapest (default ALL; CPU_AND_GPU and CPU_ONLY make fp32 islands cheap)")
        p.add_argument("--remedy", choices=REMEDY_MODES, default="auto",
                       help="auto: a region at risk gets the cheapest remedy (an fp16-safe rescale or an "
                            "fp32 island), a safe one stays fp16; rescale: rewrite every region that has "
                            "a rewrite; fp32: every decomposed region an fp32 island (default auto)")
        p.add_argument("--scope", choices=SCOPES, default="region",
                       help="an fp32 island holds the whole region, or only its overflow-prone core")
        p.add_argument("--families", action="append", metavar="F[,F]",
                       help="pattern families to act on, comma-separated (default all: "
                            f"{', '.join(e.name for e in families)})")
        p.add_argument("--exclude", action="append", metavar="GLOB",
                       help="leave regions whose op names or torch module match this glob as they are; repeatable")
        p.add_argument("--keep-native", choices=NATIVE, default="at_risk",
                       help="native layer_norm/softmax/... ops: decided like the others (at_risk, default), "
                            "never touched, or always fp32")
        p.add_argument("--function", default=None, help="the function to audit (default main)")
        shown = p.add_mutually_exclusive_group()
        shown.add_argument("--quiet", "-q", action="store_true",
                           help="print nothing but errors (and JSON with --json -); the exit code tells")
        shown.add_argument("--progress", action="store_true",
                           help="show progress on stderr even when it is not a terminal")
        p.add_argument("--debug", action="store_true", help="show tracebacks and coremltools' messages")

    legend = "pattern families:\n" + "".join(f"  {e.name}: {e.summary}\n" for e in families)
    audit = sub.add_parser("audit", help="report regions and their decisions, fp16 findings and placement",
                           description="Report the regions milguard knows (norms, softmax, masks) with "
                                       "their precision and the decision milguard fix makes for each, fp16 "
                                       "overflow/underflow findings and the expected placement of an ML "
                                       "program.",
                           epilog=legend + "\n" + EXAMPLES, formatter_class=formatter)
    common(audit)
    audit.set_defaults(run=_audit)

    fix = sub.add_parser("fix", help="write a new package with the remedies applied",
                         description="Decide per norm / softmax region of an fp16 ML program (leave it "
                                     "fp16, rewrite it fp16-safely, or keep it fp32) and write a new "
                                     "package; audit before and after.",
                         epilog=legend + "\n" + EXAMPLES, formatter_class=formatter)
    common(fix)
    fix.add_argument("-o", "--output", required=True, metavar="OUT.mlpackage",
                     help="the new package (must not exist, nor be inside the input)")
    fix.set_defaults(run=_fix)
    return ap


# ---- plumbing --------------------------------------------------------------------------------

def _version() -> str:
    """The installed distribution's version (the package itself is above this module's layer)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("milguard")
    except PackageNotFoundError:
        return "(not installed)"


@contextlib.contextmanager
def _silenced(debug: bool) -> Iterator[None]:
    """Swallow coremltools' pass-pipeline progress bars (written to stderr) unless ``debug``."""
    if debug:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def _error(message: str, prefix: str = "milguard: error") -> None:
    sys.stderr.write(f"{prefix}: {message}\n")
    sys.stderr.flush()
