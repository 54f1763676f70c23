"""Single-op and small-graph .espdl fixtures for the emulator's differential tests, exported by esp-ppq through
export/ppq.py for both chips and both widths, each with esp-ppq's test values embedded.

    python tests/op_fixtures.py            # rewrite tests/fixtures/ops/*.espdl (about 5 minutes on 2 cores)
    python tests/op_fixtures.py conv1d     # only the cases whose name contains "conv1d"

Every case is a small PyTorch module, exported to ONNX (opset 18), calibrated on seeded random inputs and
exported with one seeded test input. The choice of cases follows what ESP-DL's tools/ops_test configures (its
op_cfg.toml) for the modules an audio model uses. tests/test_emulator_ops.py runs the emulator on every file.
"""

from __future__ import annotations

import io
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

FIXTURES = Path(__file__).parent / "fixtures" / "ops"
TARGETS = ("esp32s3", "esp32p4")
BITS = (8, 16)
CALIBRATION_STEPS = 8


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]  # makes the module: its weights come from the case's seed
    shapes: tuple[tuple[int, ...], ...]  # PyTorch layout, batch 1
    bits: tuple[int, ...] = BITS
    positive: bool = False  # inputs > 0 (log, sqrt)
    outputs: int = 1
    seed: int = 0
    notes: dict = field(default_factory=dict)

    def file(self, target: str, bits: int) -> Path:
        return FIXTURES / f"{self.name}_{target}_s{bits}.espdl"


class Lambda(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, *x):
        return self.f(*x)


class Residual(nn.Module):
    """conv -> relu -> conv, plus the input: the TCN block in miniature."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(16, 16, 3, padding=2, dilation=1)
        self.b = nn.Conv1d(16, 16, 1)

    def forward(self, x):
        return x + self.b(F.relu(self.a(x)[..., :-2]))


class Recurrent(nn.Module):
    """[1, C, T] features through an LSTM/GRU as the project's encoders lay it out (states in and out, which is
    how esp-ppq quantizes a recurrence), one output per frame."""

    def __init__(self, cell, inputs: int, hidden: int):
        super().__init__()
        self.rnn = cell(inputs, hidden)

    def forward(self, x, *states):
        y, new = self.rnn(x.permute(2, 0, 1), states if len(states) > 1 else states[0])  # [T, 1, C]
        return (y.permute(1, 2, 0), *(new if isinstance(new, tuple) else (new,)))


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(16, 16, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


CASES = [
    # Conv: 1-D and 2-D, aligned and unaligned output channels, depthwise, dilation, stride, padding, ReLU
    Case("conv1d_k3_d2_relu", lambda: nn.Sequential(nn.Conv1d(8, 20, 3, dilation=2, padding=2), nn.ReLU()), ((1, 8, 12),)),
    Case("conv1d_pointwise", lambda: nn.Sequential(nn.Conv1d(32, 32, 1)), ((1, 32, 10),)),
    Case("conv1d_depthwise_k5", lambda: nn.Sequential(nn.Conv1d(20, 20, 5, groups=20, padding=4)), ((1, 20, 12),)),
    Case("conv1d_stride2", lambda: nn.Sequential(nn.Conv1d(16, 16, 4, stride=2)), ((1, 16, 14),)),
    Case("conv2d_k3_s2", lambda: nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU()), ((1, 3, 12, 12),)),
    Case("conv2d_depthwise_k3", lambda: nn.Sequential(nn.Conv2d(24, 24, 3, groups=24, padding=1)), ((1, 24, 8, 8),)),
    Case("gemm", lambda: nn.Sequential(nn.Linear(40, 24)), ((1, 40),)),
    Case("gemm_relu_unaligned", lambda: nn.Sequential(nn.Linear(31, 17), nn.ReLU()), ((1, 31),)),
    Case("matmul_weight", lambda: Lambda(lambda x, w=torch.randn(16, 24, generator=torch.Generator().manual_seed(3)) * 0.2: x @ w),
         ((1, 6, 16),)),
    # element-wise
    Case("add", lambda: Lambda(lambda a, b: a + b), ((1, 16, 8), (1, 16, 8))),
    Case("add_broadcast", lambda: Lambda(lambda a, b: a + b), ((1, 16, 8), (1, 16, 1))),
    Case("sub", lambda: Lambda(lambda a, b: a - b), ((1, 16, 8), (1, 16, 8))),
    Case("mul", lambda: Lambda(lambda a, b: a * b), ((1, 16, 8), (1, 16, 8))),
    Case("mul_short_rows", lambda: Lambda(lambda a, b: a * b), ((1, 4, 3), (1, 4, 3))),
    Case("div_constant", lambda: Lambda(lambda a: a / 3.0), ((1, 16, 8),)),
    # activations
    Case("relu", lambda: nn.Sequential(nn.ReLU()), ((1, 16, 8),)),
    Case("leaky_relu", lambda: nn.Sequential(nn.LeakyReLU(0.1)), ((1, 16, 8),)),
    Case("prelu", lambda: nn.Sequential(nn.Conv2d(8, 8, 1), nn.PReLU(8)), ((1, 8, 4, 4),)),
    Case("sigmoid", lambda: nn.Sequential(nn.Sigmoid()), ((1, 16, 8),)),
    Case("tanh", lambda: nn.Sequential(nn.Tanh()), ((1, 16, 8),)),
    Case("silu", lambda: nn.Sequential(nn.SiLU()), ((1, 16, 8),)),
    Case("hardsigmoid", lambda: nn.Sequential(nn.Hardsigmoid()), ((1, 16, 8),)),
    Case("hardswish", lambda: nn.Sequential(nn.Hardswish()), ((1, 16, 8),)),
    Case("elu", lambda: nn.Sequential(nn.ELU()), ((1, 16, 8),)),
    Case("gelu", lambda: nn.Sequential(nn.GELU()), ((1, 16, 8),)),
    Case("exp", lambda: Lambda(torch.exp), ((1, 16, 8),)),
    Case("log", lambda: Lambda(torch.log), ((1, 16, 8),), positive=True),
    Case("sqrt", lambda: Lambda(torch.sqrt), ((1, 16, 8),), positive=True),
    Case("clip", lambda: nn.Sequential(nn.Hardtanh(-0.5, 0.5)), ((1, 16, 8),)),
    Case("gate_small_graph", Gate, ((1, 16, 8),)),
    # pooling and reductions
    Case("avgpool1d", lambda: nn.Sequential(nn.AvgPool1d(3, stride=1, padding=1)), ((1, 16, 10),)),
    Case("maxpool1d", lambda: nn.Sequential(nn.MaxPool1d(3, stride=2, padding=1)), ((1, 16, 11),)),
    Case("maxpool2d", lambda: nn.Sequential(nn.MaxPool2d(2)), ((1, 16, 6, 6),)),
    Case("global_avgpool", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1)), ((1, 16, 5, 5),)),
    Case("reduce_mean_time", lambda: Lambda(lambda x: x.mean(dim=2, keepdim=True)), ((1, 16, 10),)),
    Case("reduce_sum", lambda: Lambda(lambda x: x.sum(dim=1, keepdim=True)), ((1, 16, 10),)),
    Case("reduce_max", lambda: Lambda(lambda x: x.amax(dim=2, keepdim=True)), ((1, 16, 10),)),
    # normalisation, softmax
    Case("layer_norm", lambda: nn.Sequential(nn.LayerNorm(16)), ((1, 10, 16),)),
    Case("softmax", lambda: nn.Sequential(nn.Softmax(dim=-1)), ((1, 10, 12),)),
    Case("log_softmax", lambda: nn.Sequential(nn.LogSoftmax(dim=-1)), ((1, 10, 12),)),
    # data movement
    Case("pad_constant", lambda: Lambda(lambda x: F.pad(x, (2, 1))), ((1, 16, 8),)),
    Case("pad_reflect", lambda: Lambda(lambda x: F.pad(x, (2, 2), mode="reflect")), ((1, 16, 8),)),
    Case("slice", lambda: Lambda(lambda x: x[:, :, 2:7]), ((1, 16, 10),)),
    Case("split_concat", lambda: Lambda(lambda x: torch.cat(torch.split(x, [6, 10], dim=1)[::-1], dim=1)), ((1, 16, 8),)),
    Case("concat_two", lambda: Lambda(lambda a, b: torch.cat([a, b], dim=1)), ((1, 8, 6), (1, 8, 6))),
    Case("transpose", lambda: Lambda(lambda x: x.permute(0, 2, 1)), ((1, 16, 8),)),
    Case("reshape_flatten", lambda: Lambda(lambda x: torch.flatten(x, 1)), ((1, 4, 6),)),
    Case("squeeze_unsqueeze", lambda: Lambda(lambda x: x.unsqueeze(1).squeeze(1)), ((1, 16, 8),)),
    Case("gather", lambda: Lambda(lambda x: x[:, torch.tensor([3, 0, 7])]), ((1, 16, 8),)),
    Case("resize_nearest", lambda: Lambda(lambda x: F.interpolate(x, scale_factor=2, mode="nearest")), ((1, 16, 4, 4),),
         bits=(8,)),
    Case("resize_linear", lambda: Lambda(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear")), ((1, 16, 4, 5),),
         bits=(8,)),
    Case("matmul_two_inputs", lambda: Lambda(lambda a, b: a @ b), ((1, 4, 16), (1, 16, 8))),
    # recurrent, and a residual block
    Case("lstm", lambda: Recurrent(nn.LSTM, 16, 16), ((1, 16, 6), (1, 1, 16), (1, 1, 16)), outputs=3),
    Case("gru", lambda: Recurrent(nn.GRU, 16, 16), ((1, 16, 6), (1, 1, 16)), outputs=2),
    Case("lstm_unaligned", lambda: Recurrent(nn.LSTM, 12, 12), ((1, 12, 5), (1, 1, 12), (1, 1, 12)), outputs=3),
    Case("gru_mixed_lengths", lambda: Recurrent(nn.GRU, 20, 24), ((1, 20, 5), (1, 1, 24)), outputs=2),
    Case("lstm_bidirectional", lambda: Recurrent(partial(nn.LSTM, bidirectional=True), 16, 8),
         ((1, 16, 4), (2, 1, 8), (2, 1, 8)), outputs=3),
    Case("residual_block", Residual, ((1, 16, 12),)),
]


def _inputs(case: Case, rng: np.random.Generator) -> list[torch.Tensor]:
    values = [rng.standard_normal(shape).astype(np.float32) for shape in case.shapes]
    if case.positive:
        values = [np.abs(v) + np.float32(0.1) for v in values]
    return [torch.from_numpy(v) for v in values]


def onnx_model(case: Case) -> tuple[onnx.ModelProto, list[str]]:
    torch.manual_seed(case.seed)
    module = case.build().eval()
    names = [f"in{i}" for i in range(len(case.shapes))]
    example = tuple(torch.zeros(shape) for shape in case.shapes)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buffer, opset_version=18, input_names=names,
                          output_names=["out"] + [f"out{i}" for i in range(1, case.outputs)], do_constant_folding=True,
                          dynamo=False)
    return onnx.load_from_string(buffer.getvalue()), names


def export_case(case: Case, target: str, bits: int, path: Path) -> None:
    from espdl_stream.export import ppq  # esp-ppq loads only when a fixture is made

    model, names = onnx_model(case)
    rng = np.random.default_rng(case.seed)
    calibration = [dict(zip(names, _inputs(case, rng))) for _ in range(CALIBRATION_STEPS)]
    test = dict(zip(names, _inputs(case, rng)))
    log = io.StringIO()
    quantized = ppq.quantize(model, calibration, target, bits, log)
    ppq.export_espdl(quantized, path, log, test_inputs=test, metadata={"target": target, "case": case.name})


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    wanted = argv[0] if argv else ""
    for case in CASES:
        if wanted not in case.name:
            continue
        for target in TARGETS:
            for bits in case.bits:
                export_case(case, target, bits, case.file(target, bits))
                print(f"{case.file(target, bits).name}: {case.file(target, bits).stat().st_size} bytes", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
