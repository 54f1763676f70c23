"""The one module that imports esp-ppq 1.3.12, and where its quirks are guarded.

- quantize once (it overwrites the ONNX file it is given, so it gets a private copy);
- every export is isolated: the singletons StreamingTable, ExporterPatternInfo and the
  FlatBuffers builder are dropped before and after, so a failed export cannot poison the next;
- exports are byte-identical across processes: esp-ppq orders tensors by dict order that
  depends on Python's hash seed, so the graph's variables are put in topological order first;
- esp-ppq reports many fatal conditions only as logged errors: they are raised here;
- its executor has no StreamingCache: one is registered that runs the emulator's StreamingCache, so the host
  simulation and the emulator share one statement of ESP-DL's semantics.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
import torch

with contextlib.redirect_stdout(io.StringIO()):  # esp-ppq prints a banner on import
    import esp_ppq.lib as ppq_lib
    from esp_ppq.api.espdl_interface import (
        espdl_quantize_onnx,
        generate_test_value,
        get_target_platform,
    )
    from esp_ppq.api.setting import QuantizationSetting, QuantizationSettingFactory
    from esp_ppq.core import TargetPlatform
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.executor.base import OPERATION_FORWARD_TABLE, register_operation_handler
    from esp_ppq.executor.op import ESPDL_QUANT_BACKEND_TABLE
    from esp_ppq.executor.op.torch.default import DEFAULT_BACKEND_TABLE
    from esp_ppq.IR import BaseGraph
    from esp_ppq.IR.quantize import QuantableOperation
    from esp_ppq.log import logger as ppq_logger
    from esp_ppq.parser.espdl import helper as espdl_helper
    from esp_ppq.parser.espdl.espdl_streaming import StreamingTable, insert_streaming_cache_op
    from esp_ppq.parser.espdl.espdl_typedef import EspQuantType, ExporterPatternInfo
    from esp_ppq.parser.espdl.export_patterns import ResetParamLayoutPattern
    from esp_ppq.quantization.qfunction.linear import PPQLinearQuant_toInt

from .emulator import streaming_cache_step
from .errors import ExportError
from .intake import INPUT_NAME
from .plan import CacheSite, without_time_padding

ESP_PPQ_VERSION = version("esp-ppq")


# ---------------------------------------------------------------- esp-ppq's log and singletons
@contextlib.contextmanager
def captured_ppq_log(log: io.TextIOBase) -> Iterator[list[str]]:
    """Send esp-ppq's printing and progress bars to `log`, and collect the errors it only logs."""
    errors: list[str] = []
    loggers = list(ppq_logger.initialized_loggers.values())
    saved = [(lg, lg.error, [(h, h._fd) for h in lg._handlers.values()]) for lg in loggers]
    for lg in loggers:
        original = lg.error

        def error(msg, _original=original):
            errors.append(str(msg))
            _original(msg)

        lg.error = error
        for h in lg._handlers.values():
            h._fd = log
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield errors
    finally:
        for lg, original, handlers in saved:
            lg.error = original
            for h, fd in handlers:
                h._fd = fd


def reset_export_state() -> None:
    """Clear esp-ppq's exporter singletons in place: after a failed export they keep stale tables and exponents.

    In place, not by dropping the instances: esp-ppq code that already holds an instance would
    then write into one object while the exporter reads another (it writes float weights).
    StreamingTable.reset() forgets the input frame axis and count, so those go back to the defaults too.
    """
    ExporterPatternInfo().reset()
    table = StreamingTable()
    table.reset()
    for stale in ("_input_frame_axis", "_input_frame_num", "_graph"):
        table.__dict__.pop(stale, None)
    espdl_helper.reset_global_fbs_builder()


def canonical_variable_order(graph: BaseGraph) -> None:
    """Order inputs, outputs and variables deterministically, so the file does not follow the hash seed.

    Graph inputs and outputs go by name, the order in which ESP-DL's std::map hands them over;
    the other variables by first use in topological order.
    """
    graph._graph_inputs = {name: graph.inputs[name] for name in sorted(graph.inputs)}
    graph._graph_outputs = {name: graph.outputs[name] for name in sorted(graph.outputs)}
    order: dict[str, None] = dict.fromkeys(graph.inputs)
    for op in graph.topological_sort():
        for var in op.inputs + op.outputs:
            order.setdefault(var.name, None)
    for name in sorted(graph.variables):
        order.setdefault(name, None)
    graph._variables = {name: graph.variables[name] for name in order}


# ---------------------------------------------------------------- quantize once, export twice
CALIBRATION_ALGORITHMS = ("kl", "minmax", "percentile", "mse")


@dataclass(frozen=True)
class QuantOptions:
    """How esp-ppq calibrates: each choice is an esp-ppq setting; the defaults are the ones measured best
    (README, "What quantization costs")."""

    calibration: str = "default"  # activation observer: esp-ppq's per width (kl at 8 bits, minmax at 16) or one named
    equalization: bool = False  # layerwise weight equalization across each conv pair
    bias_correction: bool = False  # re-estimate every bias from the calibration set's quantization error
    int16_layers: tuple[str, ...] = ()  # ops raised to 16 bits in an 8-bit graph (mixed precision)

    def describe(self, bits: int) -> str:
        calibration = self.calibration if self.calibration != "default" else ("kl" if bits == 8 else "minmax")
        parts = [f"{calibration} calibration"]
        parts += ["equalization"] if self.equalization else []
        parts += ["bias correction"] if self.bias_correction else []
        return ", ".join(parts)


@dataclass
class Quantized:
    graph: BaseGraph
    platform: TargetPlatform
    target: str
    bits: int  # the graph's width; with int16_layers, the width of the others
    options: QuantOptions = field(default_factory=QuantOptions)

    @property
    def widths(self) -> dict[str, int]:
        """Integer width of every quantized op, by name."""
        return {op.name: op.config.output_quantization_config[0].num_of_bits for op in self.graph.operations.values()
                if isinstance(op, QuantableOperation) and op.config.output_quantization_config}


# Ops that only move values: ESP-DL copies their integers without rescaling, so a width change must happen before them.
DATA_MOVEMENT_OPS = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten"}


def int16_unit(q: Quantized, layer: str, output: str) -> tuple[str, ...]:
    """The esp-ppq ops to raise so that the file's `layer` (writing `output`) really computes at 16 bits.

    The op itself; every other op whose output shares one exponent with the layer's output in esp-ppq's graph (its
    `dominated_by` master): the activation fused into it, the Add it feeds and the Add's other aligned inputs, the
    activation after that Add; and, before each of these, the data-movement ops between it and its producer (esp-ppq
    would otherwise give a Transpose a new exponent, which ESP-DL's Transpose cannot apply). Raised apart, esp-ppq
    gives the 8-bit ones of them the 16-bit exponent and they saturate (measured: one Add alone cost 59 points; an
    Add raised without the Transpose before its aligned projection cost 45.7). Data-movement ops after the layer stay
    as they are: the RequantizeLinear goes before them.
    """
    graph = q.graph
    writer = graph.variables[output].source_op if output in graph.variables else graph.operations[layer]
    computing = [layer, writer.name]
    if isinstance(writer, QuantableOperation):
        master = writer.output_quant_config[0].dominated_by
        computing += [op.name for op in graph.topological_sort() if isinstance(op, QuantableOperation)
                      and op.type not in DATA_MOVEMENT_OPS  # after the layer they stay: the width changes before them
                      and any(config.dominated_by is master for config in op.output_quant_config)]
    return tuple(dict.fromkeys(name for op in dict.fromkeys(computing) for name in (op, *_moving_inputs(graph, op))))


def _moving_inputs(graph: BaseGraph, op: str) -> list[str]:
    """The data-movement ops that feed `op` alone, back to the op that computes its input."""
    names = []
    for var in graph.operations[op].inputs:
        source = var.source_op
        while source is not None and source.type in DATA_MOVEMENT_OPS and len(source.outputs[0].dest_ops) == 1:
            names.append(source.name)
            source = source.inputs[0].source_op
    return names


def platform_for(target: str, bits: int) -> TargetPlatform:
    # 16 bits: esp-ppq's double-precision simulation, the one that matches ESP-DL's int16 kernels.
    return get_target_platform(target, bits, debug=(bits == 16))


# esp-ppq's bias correction fails on LSTM/GRU (their forward returns None for a missing output), on them and in any
# block of ops that holds one: convolutions only, one per block (block size 1, as its own docs recommend).
BIAS_CORRECTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def quantization_setting(target: str, bits: int, options: QuantOptions, onnx_model: onnx.ModelProto) -> QuantizationSetting:
    """esp-ppq's ESP-DL setting with the options applied."""
    if options.calibration not in ("default", *CALIBRATION_ALGORITHMS):
        raise ExportError(f"calibration {options.calibration!r} is not one of {', '.join(CALIBRATION_ALGORITHMS)}")
    if options.int16_layers and bits != 8:
        raise ExportError("layers can be raised to 16 bits only in an 8-bit graph")
    setting = QuantizationSettingFactory.espdl_setting(num_of_bits=bits)
    if options.calibration != "default":
        setting.quantize_activation_setting.calib_algorithm = options.calibration
    setting.equalization = options.equalization
    setting.bias_correct = options.bias_correction
    setting.bias_correct_setting.interested_layers = [n.name for n in onnx_model.graph.node if n.op_type in BIAS_CORRECTED_OPS]
    setting.bias_correct_setting.block_size = 1
    for name in options.int16_layers:
        setting.dispatching_table.append(name, platform_for(target, 16))
        # esp-ppq's 16-bit calibration (minmax, as its espdl_setting does for 16 bits): its kl at 16 bits clips,
        # e.g. a depthwise conv got exponent -11 (range +-16, saturating at 11 dB) where 8 bits had -2
        setting.quantize_activation_setting.calib_algorithm_per_layer[name] = "minmax"
        setting.quantize_parameter_setting.calib_algorithm_per_layer[name] = "minmax"
    return setting


def quantize(onnx_model: onnx.ModelProto, calibration: list[dict[str, torch.Tensor]], target: str, bits: int, log,
             options: QuantOptions = QuantOptions()) -> Quantized:
    """Calibrate once on `calibration` (one dict of graph inputs per step); both exports use this graph."""
    setting = quantization_setting(target, bits, options, onnx_model)
    names = [i.name for i in onnx_model.graph.input]
    batches = [[sample[name] for name in names] for sample in calibration]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")  # espdl_quantize_onnx overwrites it: a private copy
        onnx.save(onnx_model, onnx_path)
        try:
            with captured_ppq_log(log) as errors:
                graph = espdl_quantize_onnx(
                    onnx_import_file=onnx_path,
                    espdl_export_file=os.path.join(tmp, "unused.espdl"),
                    calib_dataloader=batches,
                    calib_steps=len(batches),
                    input_shape=[list(t.shape) for t in batches[0]],
                    inputs=batches[0],
                    target=target,
                    num_of_bits=bits,
                    debug=(bits == 16),
                    setting=setting,
                    skip_export=True,
                    error_report=False,  # its graphwise error is wrong for LSTMs; the pipeline measures its own
                    device="cpu",
                )
        except Exception as e:  # esp-ppq raises bare TypeErrors and asserts from deep inside its passes
            raise ExportError(f"esp-ppq failed to quantize ({options.describe(bits)}): "
                              f"{type(e).__name__}: {e}") from e
    if errors:
        raise ExportError(f"esp-ppq reported an error while quantizing: {errors[0]}")
    unknown = sorted(set(options.int16_layers) - set(graph.operations))
    if unknown:
        raise ExportError(f"no quantized layer named {unknown[0]!r} to raise to 16 bits")
    return Quantized(graph, platform_for(target, bits), target, bits, options)


@dataclass(frozen=True)
class StreamingExport:
    """What turns the offline graph into the streaming one: the planned caches and the input per chunk.

    `esp_ppq_table` leaves the caches to esp-ppq's own table and auto streaming instead (the tests use it
    to show what those get wrong).
    """

    sites: tuple[CacheSite, ...]
    input_shape: list[int]  # the input x per chunk, [1, n_mels, chunk]
    esp_ppq_table: dict | None = None


def _place_caches(sites: tuple[CacheSite, ...]):
    """The custom streaming pass: one StreamingCache in front of each planned consumer, its time padding removed.

    Inserted per consumer, not through esp-ppq's table, which keys caches by variable (two convs reading one
    tensor would share one window). esp-ppq's own streaming gives every cache the model input's frame axis
    (1), wrong for a 2-D input with time on the width; here it is the plan's, checked against the layout
    esp-ppq gave the tensor the consumer reads (channel-last for a conv) before it is written.
    """

    def place(graph: BaseGraph) -> None:
        info = ExporterPatternInfo()
        for site in sites:
            consumer = graph.operations[site.consumer]
            read = consumer.inputs[0]
            perm = info.get_var_permute(read.name) or list(range(len(read.shape)))
            in_file = [read.shape[p] for p in perm]
            expected = [site.shape[0], *site.shape[2:], site.shape[1]]  # N(H)WC, as esp-ppq feeds a conv
            frames_at = site.time_axis - 1
            in_file[frames_at] = expected[frames_at] = -1  # a chunk on the model input, the clip elsewhere
            if in_file != expected:
                raise ExportError(f"esp-ppq lays the input of '{site.consumer}' out as {in_file}, not {expected}")
            if site.frame_axis != frames_at:
                raise ExportError(f"the cache of '{site.consumer}' would copy frames on axis {site.frame_axis}, but "
                                  f"esp-ppq lays them out on axis {frames_at}")
            consumer.attributes["pads"] = without_time_padding(consumer.attributes["pads"], site.time_axis - 2)
            insert_streaming_cache_op(graph, read.name,
                                      {"window_size": site.window, "op_name": consumer.name, "frame_axis": site.frame_axis})

    return place


def export_espdl(
    q: Quantized,
    path: Path,
    log,
    test_inputs: dict[str, torch.Tensor] | None = None,
    streaming: StreamingExport | None = None,
    metadata: dict[str, str] | None = None,
    test_outputs: dict[str, torch.Tensor] | None = None,
) -> dict[str, tuple[int, ...]]:
    """Write one .espdl from the shared quantized graph (esp-ppq's exporter works on its own copy).

    test_outputs, in the graph's layout, replace the outputs esp-ppq would simulate for `test_inputs`.
    Returns the layout esp-ppq gave each graph input and output and every tensor it recorded one for: the
    permutation from the graph's axes to the file's (a conv's [1, C, T] is [1, T, C] in the file; other tensors
    may stay as they are).

    Streaming: a custom pass places every planned cache and removes its consumer's time padding.
    esp-ppq's auto_streaming is not used: it shares one cache among a variable's consumers, logs an error
    for the Transpose its own layout pass puts before each LSTM, and adds a cache of the full kernel to a
    conv whose kernel equals its stride (which needs none).
    """
    graph = q.graph
    canonical_variable_order(graph)
    values_for_test = generate_test_value(graph, "cpu", test_inputs) if test_inputs is not None else None
    if values_for_test is not None and test_outputs is not None:  # the caller knows better what the chip computes
        values_for_test["outputs"] = dict(test_outputs)
    layouts: dict[str, tuple[int, ...]] = {}

    def record_layouts(g: BaseGraph) -> None:  # a streaming pass runs after esp-ppq's layout pass
        info = ExporterPatternInfo()
        for name in [*g.inputs, *g.outputs]:
            layouts[name] = tuple(info.get_var_permute(name) or range(len(g.variables[name].shape)))
        for name, var in g.variables.items():  # inside the graph, only what esp-ppq recorded (a guess can be wrong)
            if not var.is_parameter and info.get_var_permute(name):
                layouts.setdefault(name, tuple(info.get_var_permute(name)))

    options = {"streaming_custom_passes": [record_layouts]}
    if streaming is not None:
        esp_ppq_own = streaming.esp_ppq_table is not None
        options = {"streaming_table": streaming.esp_ppq_table or {}, "auto_streaming": esp_ppq_own,
                   "streaming_input_shape": {INPUT_NAME: streaming.input_shape},
                   "streaming_custom_passes": [record_layouts] + ([] if esp_ppq_own else [_place_caches(streaming.sites)])}
    reset_export_state()
    try:
        with captured_ppq_log(log) as errors:
            ppq_lib.Exporter(platform=q.platform).export(
                file_path=str(path),
                graph=graph,
                values_for_test=values_for_test,
                export_config=False,
                metadata_props=metadata,
                **options,
            )
    except Exception as e:  # esp-ppq raises bare KeyErrors and asserts from deep inside
        raise ExportError(f"esp-ppq failed to export {Path(path).name}: {type(e).__name__}: {e}") from e
    finally:
        reset_export_state()
    if errors:
        raise ExportError(f"esp-ppq reported an error while exporting {path.name}: {errors[0]}")
    return layouts


def to_file_layout(array: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    """A graph tensor in the layout esp-ppq wrote it in (export_espdl says which)."""
    return np.ascontiguousarray(array.transpose(perm))


def from_file_layout(array: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(np.argsort(perm)))


# ---------------------------------------------------------------- host simulation
_SIM_CACHES: dict[str, np.ndarray] = {}


def _streaming_cache_forward(op, values, ctx=None, **kwargs):
    """ESP-DL's StreamingCache, as the emulator runs it: each clip of the batch is one run, its tensor put in
    ESP-DL's layout (frames right after the batch-1 axis) so the cache is the frames ESP-DL keeps."""
    (x,) = values
    axis = op.attributes["frame_axis"]
    runs = np.moveaxis(x.detach().cpu().numpy(), axis, 1)[:, None]  # [clips, 1, frames, rest...]
    out, _SIM_CACHES[op.name] = streaming_cache_step(_SIM_CACHES.get(op.name), runs, op.attributes["window_size"], 1)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out[:, 0], 1, axis))).to(x.device)


# esp-ppq 1.3.12 maps every ESP-DL platform to its quantized backends except ESPDL_H_PRE_INT16
# (esp32p4, int16, double precision): there LSTM and GRU ran as float recurrences instead of
# ESP-DL's, which quantizes h and c at every step, so offline and streaming differed and the
# embedded test values were not what the chip computes. Map it like its S3 and C siblings.
OPERATION_FORWARD_TABLE[TargetPlatform.ESPDL_H_PRE_INT16] = ESPDL_QUANT_BACKEND_TABLE

for _platform in TargetPlatform:
    register_operation_handler(_streaming_cache_forward, "StreamingCache", _platform)


def _float_until_quantized(op_type: str):
    """esp-ppq's quantized LSTM/GRU forward needs the op's quantization config. In an 8-bit graph with a recurrence
    raised to 16 bits, its tracing runs that forward before the op is quantized and fails ('Operation' object has no
    attribute 'config'): until then the float forward runs, as it does for every other op."""
    quantized_forward = ESPDL_QUANT_BACKEND_TABLE[op_type]

    @functools.wraps(quantized_forward)
    def forward(op, values, ctx=None, **kwargs):
        handler = quantized_forward if isinstance(op, QuantableOperation) else DEFAULT_BACKEND_TABLE[op_type]
        return handler(op, values, ctx, **kwargs)

    return forward


for _op_type in ("LSTM", "GRU"):
    ESPDL_QUANT_BACKEND_TABLE[_op_type] = _float_until_quantized(_op_type)


def output_config(graph: BaseGraph, name: str):
    var = graph.variables[name]
    op = var.source_op
    if not isinstance(op, QuantableOperation):
        raise ExportError(f"output '{name}' is produced by an unquantized op {op.name}")
    return op.output_quant_config[op.outputs.index(var)]


def input_config(graph: BaseGraph, name: str):
    var = graph.variables[name]
    op = var.dest_ops[0]
    return op.input_quant_config[op.inputs.index(var)]


def exponent_of(config) -> int:
    return int(round(math.log2(float(config.scale.flatten()[0]))))


def to_int(graph: BaseGraph, name: str, value: torch.Tensor) -> np.ndarray:
    """Integers of a graph input or output as ESP-DL holds them (value = integer * 2**exponent)."""
    config = input_config(graph, name) if name in graph.inputs else output_config(graph, name)
    return PPQLinearQuant_toInt(value, config).numpy()


@torch.no_grad()
def _run(executor: TorchExecutor, graph: BaseGraph, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = list(graph.outputs)
    return dict(zip(names, executor.forward(inputs, output_names=names)))


def simulate_offline(q: Quantized, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Integer outputs of the offline quantized graph."""
    outputs = _run(TorchExecutor(q.graph, device="cpu"), q.graph, inputs)
    return {name: to_int(q.graph, name, value) for name, value in outputs.items()}


def dequantized_offline(q: Quantized, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    outputs = _run(TorchExecutor(q.graph, device="cpu"), q.graph, inputs)
    return {name: value.numpy() for name, value in outputs.items()}


def streaming_graph(q: Quantized, sites: tuple[CacheSite, ...]) -> BaseGraph:
    """The quantized graph as it streams: a StreamingCache before each site's consumer, its padding removed."""
    graph = q.graph.copy()
    for k, site in enumerate(sites):
        consumer = graph.operations[site.consumer]
        cache = graph.create_operation(
            op_type="StreamingCache",
            name=f"sim_cache{k}",
            attributes={"window_size": site.window, "frame_axis": site.time_axis},
            platform=consumer.platform,
        )
        graph.insert_op_before(A=cache, B=consumer, input_idx=consumer.inputs.index(graph.variables[site.variable]))
        consumer.attributes["pads"] = without_time_padding(consumer.attributes["pads"], site.time_axis - 2)
    return graph


def simulate_streaming(
    q: Quantized,
    sites: tuple[CacheSite, ...],
    chunks: list[torch.Tensor],
    state_pairs: tuple[tuple[str, str], ...] = (),
    initial_states: dict[str, torch.Tensor] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Integer outputs of every chunk: caches start at zero, each state output is fed back as its input.

    A state goes back as the quantized value it left as: the integers the firmware copies, as a value.
    """
    graph = streaming_graph(q, sites)
    executor = TorchExecutor(graph, device="cpu")
    states = dict(initial_states or {})
    _SIM_CACHES.clear()
    try:
        results = []
        for chunk in chunks:
            outputs = _run(executor, graph, {INPUT_NAME: chunk, **states})
            results.append({name: to_int(q.graph, name, value) for name, value in outputs.items()})
            states = {state_in: outputs[state_out] for state_out, state_in in state_pairs}
        return results
    finally:
        _SIM_CACHES.clear()


def pack_conv_weight(weight: np.ndarray, bits: int, group: int) -> tuple[np.ndarray, str]:
    """esp-ppq's own packing of a Conv weight [out, in/group, kernel...] for ESP32-S3/P4: (values, layout)."""
    packed, layout = ResetParamLayoutPattern().reset_conv_filter_layout(
        torch.from_numpy(np.ascontiguousarray(weight)), EspQuantType.S8 if bits == 8 else EspQuantType.S16, group,
        platform_for("esp32p4", bits),
    )
    return packed.numpy(), str(getattr(layout, "value", layout))
