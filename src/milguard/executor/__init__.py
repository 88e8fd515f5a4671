"""Reference execution of MIL programs in numpy with typed fp16/fp32 semantics (no Core ML needed).

``run(model, inputs)`` executes a pymil Program, an ML-program MLModel, a ``.mlpackage`` path or a
``milguard.mil.Loaded`` op by op and returns {output name: ndarray}; ``trace=True`` returns every
var. ``first_nonfinite(model, trace)`` names the first op whose output holds NaN while no input
does, or ±inf while every input is finite (constants such as a -inf mask are not ops here).

Typed semantics: each op computes in the dtype of its declared output var. fp16 results are
rounded once per op (round to nearest even; |x| > 65504 -> ±inf); NaN propagates; casts are
exact conversions. fp16 ops are evaluated in float32 and rounded, which is bit-identical to IEEE
half arithmetic for + - * / and sqrt (double rounding through float32 is innocuous for them).

Accumulation of reductions, matmul, linear, conv, and the sums inside softmax / norms:

* ``accumulate="fp32"`` (default): sums run in float32 and the result is rounded to the output
  dtype once — what a GPU or CPU with wide accumulators does.
* ``accumulate="fp16"``: the pessimistic hardware assumption. The summed axis is cut into blocks
  of 32 terms; each block's partial sum (of products, for matmul/conv) is formed in float32 and
  rounded to fp16, then the block partials are added in sequence with fp16 rounding after every
  addition; intermediate values of composite ops that sum (x - mean in the norms, exp(x - max)
  in softmax, ...) are rounded to fp16 after each step. A partial that rounds past 65504 becomes
  inf and stays inf. Elementwise activations are one rounding in both modes. Ops typed fp32 always
  accumulate in fp32.

State inputs of stateful models are bound from ``inputs`` like tensors; ``coreml_update_state``
stores the new value under the state's name, so ``trace=True`` shows the final state.

Every op's result is checked against the shape the program declares for it (where static); a
disagreement raises ``ExecutionError`` instead of flowing on.

``prepare(model)`` returns an ``Executor`` to call repeatedly (kernels resolved, fp16 constants
widened to float32 once, except those only gathered from). ``run(model, inputs)`` prepares on
every call: the price of a one-shot run is that preparation (mostly widening the weights) plus
one call. ``SUPPORTED_OPS`` lists every op type with a kernel; any other op raises
``UnsupportedOpError`` before anything runs.

Layout: ``semantics`` (dtype rules, accumulators), ``table`` (op type -> kernel), ``kernels_*``
(elementwise, reduce, linalg, conv, resize, shape, control), ``run`` (binding, execution, traces).
"""
from __future__ import annotations

from .run import ExecutionError, Executor, InputError, first_nonfinite, prepare, run
from .semantics import FP16_BLOCK
from .table import SUPPORTED_OPS

__all__ = ["ExecutionError", "Executor", "FP16_BLOCK", "InputError", "SUPPORTED_OPS", "first_nonfinite", "prepare", "run"]
