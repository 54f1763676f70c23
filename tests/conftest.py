import os

# One thread: OpenMP workers spin while waiting, which on a busy 2-core machine costs more than they give.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from espdl_stream.calibration import synthetic_features  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def features() -> np.ndarray:
    """40 speech-like clips of 96 frames: calibration and verification for the export tests."""
    return synthetic_features(40, 96, seed=0)



@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # models/train.py sets 2 for the rest of the process: every later esp-ppq run slowed 5-16x
