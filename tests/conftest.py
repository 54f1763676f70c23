import numpy as np
import pytest
import torch

from espdl_stream.calibration import synthetic_features


@pytest.fixture(scope="session")
def features() -> np.ndarray:
    """40 speech-like clips of 96 frames: calibration and verification for the export tests."""
    return synthetic_features(40, 96, seed=0)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
