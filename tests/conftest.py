"""Setup for every test (two CPU threads at most) and the pytest fixtures shared across packages; plain helpers
live in tests/helpers.py."""
import os
from pathlib import Path

import pytest
import torch

from tests.helpers import FIXTURES, load_fixture

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def pp_fx() -> dict:
    """The official PixelPyramids test vectors (pixelpyramids_tiny.pt), loaded once per module."""
    return load_fixture("pixelpyramids_tiny.pt")


@pytest.fixture(scope="module")
def pp_model(pp_fx):
    """pp_fx's weights converted to our PixelPyramids (a fresh model per module)."""
    from pixelfolder.convert.pixelpyramids import from_official
    return from_official(pp_fx["state_dict"], pp_fx["config"])
