"""Fixtures shared across the test folders."""
from __future__ import annotations

import pytest

from programs import deep_chain


@pytest.fixture(scope="session")
def deep_program():
    """A 3,000-op chain (see ``programs.deep_chain``), built once: tests must not edit it."""
    return deep_chain(3000)
