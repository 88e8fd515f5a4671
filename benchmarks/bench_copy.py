"""Copying a program: ``milguard.mil.copy_program`` against ``copy.deepcopy`` and a milproto round trip.

``keep_fp32`` copies the program it repairs (the caller's model is never modified). Three ways:

* ``copy.deepcopy`` — recursive along the graph: here run in a thread with a 1 GiB stack and a
  raised recursion limit, since at the default limit it fails from about 200 chained ops on;
* ``copy_program`` — graph objects collected by a worklist, each object's state deep-copied with
  the graph already in the memo (no recursion that grows with depth);
* milproto round trip — serialize with coremltools' MIL backend (weights to a temporary folder)
  and load back with its milproto frontend.

Each copy is checked against the original (names, types, values, scopes, consumers, function
inputs and outputs); the round trip is exact only where the row says so.

    python benchmarks/bench_copy.py [--quick]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the shared benchmark helpers
import common  # noqa: E402

NAME = "copy"
RESULTS = Path(__file__).resolve().parent / "results"
LAYERS_FULL = ("zoo llama_decoder", 1, 10, 100)
LAYERS_QUICK = ("zoo llama_decoder", 1, 10)


def fingerprint(program: Any) -> list:
    """Everything a copy must keep, as plain data."""
    from milguard.mil import iter_ops

    out: list = [program.default_function_name]
    for name, fn in program.functions.items():
        out.append((name, str(fn.opset_version), [(k, v.name, str(v.sym_type)) for k, v in fn.inputs.items()],
                    [(v.name, str(v.sym_type)) for v in fn.outputs]))
        for op in iter_ops(fn):
            out.append((op.name, op.op_type, repr(op.scopes), [v.name for _, v in _inputs(op)],
                        [(v.name, str(v.sym_type), _bytes(v.val), [c.name for c in v.child_ops])
                         for v in op.outputs]))
    return out


def _inputs(op: Any) -> list:
    from milguard.mil import op_inputs
    return op_inputs(op)


def _bytes(val: Any) -> bytes | None:
    return None if val is None else np.asarray(val).tobytes()


def proto_round_trip(program: Any) -> Any:
    from coremltools.converters.mil.backend.mil.load import load as to_proto
    from coremltools.converters.mil.frontend.milproto.load import load as from_proto

    with tempfile.TemporaryDirectory() as weights:
        spec = to_proto(program, weights, specification_version=8)
        return from_proto(spec, specification_version=8, file_weights_dir=weights)


def deep_stack(fn: Any) -> Any:
    """``fn()`` in a thread with room for deepcopy's recursion."""
    out: dict[str, Any] = {}
    limit = sys.getrecursionlimit()
    threading.stack_size(1 << 30)
    sys.setrecursionlimit(1_000_000)
    try:
        t = threading.Thread(target=lambda: out.setdefault("r", fn()))
        t.start()
        t.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(0)
    return out["r"]


def converted_llama() -> Any:
    """The zoo's LLaMA decoder layer through ct.convert: a program whose ops carry torch scopes."""
    from milguard.zoo import registry
    from milguard.mil import converted_program

    return converted_program(registry.convert("llama_decoder"))


def measure(layers: int | str, repeats: int) -> dict[str, Any]:
    from milguard.mil import copy_program, iter_ops, module_path

    program = converted_llama() if layers == "zoo llama_decoder" else \
        common.llama_program(layers, hidden=64, heads=4, seq=16, inter=128)
    want = fingerprint(program)
    ops = list(iter_ops(program.functions["main"]))
    row: dict[str, Any] = {"layers": layers, "ops": len(ops),
                           "with_module_path": sum(1 for op in ops if module_path(op))}
    ways = {"copy_program": lambda: copy_program(program),
            "deepcopy": lambda: deep_stack(lambda: copy.deepcopy(program)),
            "milproto": lambda: proto_round_trip(program)}
    try:
        copy.deepcopy(program)
        row["deepcopy_default_limit"] = "ok"
    except RecursionError:
        row["deepcopy_default_limit"] = "RecursionError"
    for way, fn in ways.items():
        seconds, copied = common.best_of(fn, repeats)
        row[f"{way}_s"] = round(seconds, 4)
        row[f"{way}_exact"] = fingerprint(copied) == want
        row[f"{way}_module_paths"] = sum(1 for op in iter_ops(copied.functions["main"]) if module_path(op))
    return row


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Copying a program", "",
             "The zoo's LLaMA decoder layer as ct.convert leaves it (ops carry torch scopes), and synthetic "
             "LLaMA-shaped programs built with the MIL builder (hidden 64, 4 heads, 16 tokens; no scopes). "
             "Best of the repeats, seconds; exact = names, types, values, scopes, consumers and function I/O "
             "equal to the original; module paths = ops whose torch module path survives the copy.", "",
             "| program | ops | module paths | copy_program (s) | deepcopy (s) | milproto round trip (s) "
             "| exact (copy_program / deepcopy / milproto) | module paths after milproto "
             "| deepcopy at the default recursion limit |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in result["rows"]:
        exact = " / ".join("yes" if r[f"{w}_exact"] else "no" for w in ("copy_program", "deepcopy", "milproto"))
        name = r["layers"] if isinstance(r["layers"], str) else f"{r['layers']} layers"
        lines.append(f"| {name} | {r['ops']} | {r['with_module_path']} | {r['copy_program_s']:.3f} | "
                     f"{r['deepcopy_s']:.3f} | {r['milproto_s']:.3f} | {exact} | {r['milproto_module_paths']} | "
                     f"{r['deepcopy_default_limit']} |")
    lines += ["", "The deepcopy timings ran with a raised recursion limit and a 1 GiB thread stack."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    common.quiet()
    rows = []
    for layers in (LAYERS_QUICK if args.quick else LAYERS_FULL):
        rows.append(measure(layers, repeats=1 if layers == 100 else 3))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"name": NAME, "quick": args.quick, "machine": platform.platform(), "rows": rows}
    common.save_results(args.out, NAME, result, markdown(result))
    return result


if __name__ == "__main__":
    main()
