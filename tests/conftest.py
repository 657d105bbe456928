import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def load_fixture(name: str) -> dict:
    path = FIXTURES / name
    assert path.is_file(), f"missing test fixture {path}"
    return torch.load(path, map_location="cpu", weights_only=True)
