"""Fixtures shared across the test folders."""
from __future__ import annotations

import pytest

from programs import deep_chain


@pytest.fixture(scope="session")
def deep_program():
    """A 3,000-op chain (see ``programs.deep_chain``), built once: tests must not edit it."""
    return deep_chain(3000)


def _torch_modules():
    import torch

    class Mix(torch.nn.Module):
        def forward(self, x, y):
            return torch.softmax(x * 2, -1) + y.sum()

    class Accumulate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("acc", torch.zeros(1, 8))
            self.norm = torch.nn.LayerNorm(8)

        def forward(self, x):
            self.acc.add_(x)
            return torch.softmax(self.norm(self.acc * x), -1)

    return Mix, Accumulate


@pytest.fixture(scope="session")
def flexible(tmp_path_factory):
    """(MLModel, saved package) of a torch model whose x has a RangeDim(2, 32) and y EnumeratedShapes."""
    import coremltools as ct
    import torch

    traced = torch.jit.trace(_torch_modules()[0]().eval(), (torch.randn(1, 8, 16), torch.randn(2, 4)))
    mlmodel = ct.convert(traced, inputs=[
        ct.TensorType(name="x", shape=(1, ct.RangeDim(2, 32, default=8), 16)),
        ct.TensorType(name="y", shape=ct.EnumeratedShapes(shapes=[(2, 4), (3, 4)], default=(2, 4)))],
        minimum_deployment_target=ct.target.iOS17, skip_model_load=True)
    path = tmp_path_factory.mktemp("flexible") / "flexible.mlpackage"
    mlmodel.save(str(path))
    return mlmodel, path


@pytest.fixture(scope="session")
def stateful(tmp_path_factory):
    """(MLModel, saved package) of a torch model with a ct.StateType buffer 'acc' (1, 8)."""
    import coremltools as ct
    import torch

    traced = torch.jit.trace(_torch_modules()[1]().eval(), torch.randn(1, 8))
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 8))],
                         states=[ct.StateType(wrapped_type=ct.TensorType(shape=(1, 8)), name="acc")],
                         minimum_deployment_target=ct.target.iOS18, skip_model_load=True)
    path = tmp_path_factory.mktemp("stateful") / "stateful.mlpackage"
    mlmodel.save(str(path))
    return mlmodel, path
