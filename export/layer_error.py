"""Where quantization loses: every quantized layer's output against the float model, on the verification clips.

Both measures run the written offline file in the ESP-DL emulator, so they are what the chip computes:
- graphwise: the file run as it is; a layer's output carries the error of every layer before it;
- layerwise: every tensor the float model also has is replaced, before the next node reads it, by the float
  model's value quantized to the file's exponent (teacher forcing), so each layer sees float inputs and only its
  own integer arithmetic (and the rounding of its inputs) is measured.
Each is an SNR in dB against the float ONNX model's tensor of the same name, over all verification clips.

esp-ppq's own error report is not used: its LSTM and GRU forward quantize the gates and the cell state at a fixed
exponent even when the op is switched to float for the reference (so the reference is partly quantized), and
compute exact sigmoid/tanh where ESP-DL reads tables clamped at +-6.3/+-3.5 (so the quantized side is not the
chip's); it also measures only an op's first output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import onnxruntime as ort

from .emulator import Emulator
from .ppq import to_file_layout
from .emulator.core import saturate
from .verify import snr_db

# Nodes that only move, cache or rescale values: their error is their producer's.
NOT_LAYERS = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Concat", "RequantizeLinear", "StreamingCache"}
WIDTHS = {3: 8, 5: 16}  # ONNX type codes of int8, int16


@dataclass
class LayerError:
    layer: str  # the node's name in the file (the ONNX node's)
    op_type: str
    output: str
    bits: int
    graphwise_snr_db: float
    layerwise_snr_db: float

    def to_dict(self) -> dict:
        return asdict(self)


def float_tensors(model: onnx.ModelProto, names: list[str], inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The float model's value of every named tensor, one dict per input set (ONNX Runtime)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
                              if n not in existing)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [dict(zip(names, session.run(names, feed))) for feed in inputs]


@dataclass
class LayerErrors:
    rows: list[LayerError]  # one per layer of the file whose output the float model also has
    graphwise_snr_db: dict[str, float]  # every tensor both have (graph outputs and states included)


def per_layer_errors(emulator: Emulator, float_model: onnx.ModelProto, layouts: dict[str, tuple[int, ...]],
                     float_inputs: list[dict[str, np.ndarray]], file_inputs: list[dict[str, np.ndarray]]) -> LayerErrors:
    """Graphwise and layerwise SNR of every layer of the file whose output the float model also has.

    layouts: how the file lays out each tensor (ppq.export_espdl's answer); float_inputs: the float model's graph
    inputs per clip; file_inputs: the same clips as the file's integer inputs. A tensor is compared only where
    the float one, laid out as the file lays it, has the shape the file computes.
    """
    graph_names = {v for node in float_model.graph.node for v in node.output} | {o.name for o in float_model.graph.output}
    shared = [name for node in emulator.file.nodes for name in node.outputs
              if name in graph_names and name in layouts and name in emulator.file.value_infos | emulator.file.outputs]
    reference = float_tensors(float_model, shared, float_inputs)
    shared = [name for name in shared if all(len(layouts[name]) == r[name].ndim for r in reference)]
    floats = {name: np.stack([to_file_layout(r[name], layouts[name]) for r in reference]).astype(np.float64) for name in shared}
    runs = {name: np.stack([f[name] for f in file_inputs]) for name in file_inputs[0]}
    emulator.reset()
    plain = emulator.run_batch(runs, keep_all=True)
    shared = [name for name in shared if floats[name].shape == plain[name].shape]
    exponents = {name: emulator.file.tensor(name).exponent for name in shared}
    forced = {name: saturate(emulator.rounding.round((floats[name] * 2.0 ** -exponents[name]).astype(np.float32)),
                             emulator.file.tensor(name).dtype) for name in shared}
    emulator.reset()
    teacher = emulator.run_batch(runs, keep_all=True, forced=forced)

    def snr(name: str, computed: np.ndarray) -> float:
        return snr_db(floats[name].ravel(), computed.astype(np.float64).ravel() * 2.0 ** exponents[name])

    graph_snr = {name: snr(name, plain[name]) for name in shared}
    rows = [LayerError(node.name, node.op_type, node.outputs[0], WIDTHS.get(emulator.file.tensor(node.outputs[0]).dtype, 0),
                       graph_snr[node.outputs[0]], snr(node.outputs[0], teacher[node.outputs[0]]))
            for node in emulator.file.nodes
            if node.op_type not in NOT_LAYERS and node.outputs and node.outputs[0] in graph_snr]
    return LayerErrors(rows, graph_snr)
