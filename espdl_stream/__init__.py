"""espdl-stream: streaming audio models from PyTorch to ESP-DL, proven equal to their offline twins.

The repository's rooms are installed as subpackages: `espdl_stream.models` (models/),
`espdl_stream.calibration` (calibration/) and `espdl_stream.export` (export/).
"""

__version__ = "0.1.0"
