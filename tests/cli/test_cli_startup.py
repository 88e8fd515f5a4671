"""Start-up: ``--help``, ``--version`` and argument errors import neither coremltools nor torch, and
``import milguard`` still registers every ``milguard::*`` pass with coremltools.

Each case runs in a fresh interpreter and reports the modules it imported (``sys.modules``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("coremltools", "torch")
PASSES = ("milguard::keep_fp32_layer_norm", "milguard::keep_fp32_rms_norm", "milguard::keep_fp32_softmax",
          "milguard::check_fp16_overflow", "milguard::annotate_placement")


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it sets ``result``; returns it with the heavy modules loaded."""
    wrapper = textwrap.dedent("""
        import json, sys
        result = {}
    """) + textwrap.dedent(code) + textwrap.dedent(f"""
        result["heavy"] = sorted(m for m in {HEAVY!r} if m in sys.modules)
        sys.__stdout__.write("\\n@@" + json.dumps(result) + "\\n")
    """)
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.rsplit("\n@@", 1)[1])


def _console_script(*argv: str) -> dict:
    """The installed ``milguard`` entry point, called as the console script calls it."""
    return _python(f"""
        import contextlib, io
        from importlib.metadata import entry_points
        (main,) = [e for e in entry_points(group="console_scripts") if e.name == "milguard"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result["code"] = main.load()({list(argv)!r})
        result["out"], result["err"] = out.getvalue(), err.getvalue()
    """)


def test_help_imports_nothing_heavy():
    got = _console_script("--help")
    assert got["code"] == 0 and got["heavy"] == []
    assert got["out"].startswith("usage: milguard") and "examples:" in got["out"]
    assert "milguard audit model.mlpackage" in got["out"] and "docs/audit.md" in got["out"]
    sub = _console_script("fix", "--help")
    assert sub["code"] == 0 and sub["heavy"] == [] and "-o OUT.mlpackage" in sub["out"]
    assert "--quiet" in sub["out"] and "docs/audit.md" in sub["out"]


def test_version_imports_nothing_heavy():
    import milguard

    got = _console_script("--version")
    assert got["code"] == 0 and got["heavy"] == [] and got["out"] == f"milguard {milguard.__version__}\n"


def test_argument_errors_import_nothing_heavy():
    got = _console_script("audit", "model.mlpackage", "--fail-on", "sometimes")
    assert got["code"] == 2 and got["heavy"] == [] and got["out"] == ""
    assert len(got["err"].splitlines()) == 1 and "invalid choice: 'sometimes'" in got["err"]


def test_import_milguard_is_light_and_registers_when_coremltools_arrives():
    got = _python(f"""
        import milguard
        result["after_import"] = sorted(m for m in {HEAVY!r} if m in sys.modules)
        from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
        result["registered"] = [name for name in {PASSES!r} if name in PASS_REGISTRY]
    """)
    assert got["after_import"] == []
    assert got["registered"] == list(PASSES)


@pytest.mark.parametrize("first", [
    "from milguard.mil import PASS_REGISTRY",         # milguard's own facade imports coremltools
    pytest.param("import coremltools; import milguard", marks=pytest.mark.slow),   # registered at once
    pytest.param("import milguard.report.audit", marks=pytest.mark.slow),
    pytest.param("import milguard.placement", marks=pytest.mark.slow),
    pytest.param("milguard.pipeline()", marks=pytest.mark.slow),
])
def test_passes_are_registered_whichever_module_imports_coremltools(first):
    got = _python(f"""
        import milguard
        {first}
        from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
        result["registered"] = [name for name in {PASSES!r} if name in PASS_REGISTRY]
        result["watching"] = [type(f).__name__ for f in sys.meta_path if "milguard" in type(f).__module__
                              and "editable" not in type(f).__module__]
    """)
    assert got["registered"] == list(PASSES)
    assert got["watching"] == []                      # the import watcher is gone once it is done


def test_commands_start_with_one_blas_thread_unless_the_user_chose():
    """Set before numpy is imported (the parser imports nothing heavy), so they take effect."""
    from milguard.cli import BLAS_THREADS

    got = _python("""
        import os
        from milguard.cli import main
        result["numpy_before"] = "numpy" in sys.modules
        result["code"] = main(["audit", "missing.mlpackage"])
        result["env"] = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                 "MKL_NUM_THREADS")}
    """)
    assert got["code"] == 2 and not got["numpy_before"]
    assert got["env"] == dict.fromkeys(BLAS_THREADS, "1")


def test_blas_threads_respect_the_user_and_a_loaded_numpy():
    from milguard.cli import BLAS_THREADS, blas_threads

    assert blas_threads({}, numpy_imported=False) == dict.fromkeys(BLAS_THREADS, "1")
    assert blas_threads({"OMP_NUM_THREADS": "4"}, numpy_imported=False) == {}
    assert blas_threads({}, numpy_imported=True) == {}                  # too late to matter
