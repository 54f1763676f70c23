"""The ESP-DL emulator: layouts, rounding, operators against float references, refusals by name, and anchors:
values worked out by hand from ESP-DL's C++ (not by the emulator) for the LUT clamp, table entries, the LSTM/GRU
step order and the dot-product branches, at both widths and on both chips."""

import math

import numpy as np
import pytest

from espdl_stream.export import ppq
from espdl_stream.export.emulator import Emulator, EmulatorError, Rounding, exponent_mismatches
from espdl_stream.export.emulator.conv import unpack_weight
from espdl_stream.export.emulator.core import Context, rounding_for
from espdl_stream.export.emulator.recurrent import GateTable, mat_vec_dotprod
from espdl_stream.export.espdl_file import EspdlFile, EspdlNode, EspdlTensor

INT8, INT16, INT32, INT64 = 3, 5, 6, 7
RNG = np.random.default_rng(0)


def _tensor(name, values=None, exponent=0, dtype=INT8, dims=None, exponents=None, layout="UNK"):
    dims = list(values.shape) if values is not None else dims
    return EspdlTensor(name, dims, exponent, dtype, values, exponents or [exponent], layout)


def _node(name, op_type, inputs, outputs, bits=8, **attributes):
    return EspdlNode(name, op_type, inputs, outputs, {"quant_type": f"S{bits}", **attributes})


def _file(nodes, inputs, outputs, values=(), initializers=()):
    """A one- or few-node .espdl as read_espdl returns it."""
    return EspdlFile(nodes, {t.name: t for t in inputs}, {t.name: t for t in outputs}, {t.name: t for t in values},
                     {}, {}, {t.name: t for t in initializers})


# ---------------------------------------------------------------- layouts
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape,group", [((64, 40, 3), 1), ((12, 64, 1), 1), ((64, 1, 5), 64), ((20, 1, 3), 20),
                                          ((16, 8, 3, 3), 1), ((24, 1, 3, 3), 24)])
def test_packed_layout_round_trip(bits, shape, group):
    """esp-ppq's own packing (through export/ppq.py) unpacks to the weights it packed."""
    weight = RNG.integers(-100, 100, shape).astype(np.int8 if bits == 8 else np.int16)
    packed, layout = ppq.pack_conv_weight(weight, bits, group)
    unpacked = unpack_weight(_tensor("w", packed, layout=layout), bits, group != 1)  # [N, H, W, C]
    nhwc = np.moveaxis(weight, 1, -1).reshape(weight.shape[0], *([1] * (4 - weight.ndim)), *weight.shape[2:], weight.shape[1])
    assert np.array_equal(unpacked, nhwc), layout


def test_layouts_esp_dl_does_not_read_are_refused_by_name():
    weight = RNG.integers(-100, 100, (20, 8, 3)).astype(np.int8)
    packed, layout = ppq.pack_conv_weight(weight, 8, 1)
    assert layout == "(N/16)WC16_UNALIGNED"
    older = unpack_weight(_tensor("w", packed, layout="N16WC16_UNALIGNED"), 8, False)  # esp-ppq's earlier name
    assert np.array_equal(older, unpack_weight(_tensor("w", packed, layout=layout), 8, False))
    for wrong in ("NHWC", "NWC", "(N/8)WC8_UNALIGNED", "(N/16)WC16", "UNK", ""):  # never unpacked as (N/16) blocks
        with pytest.raises(EmulatorError, match="is stored in layout .*refused rather than unpacked"):
            unpack_weight(_tensor("w", packed, layout=wrong), 8, False)


# ---------------------------------------------------------------- rounding
def test_rounding_follows_the_chip():
    ties = np.array([5, -5, 7, -7, 6])  # /2 -> 2.5, -2.5, 3.5, -3.5, 3
    assert Rounding(half_even=True).shift(ties, 1).tolist() == [2, -2, 4, -4, 3]  # ESP32-P4
    assert Rounding(half_even=False).shift(ties, 1).tolist() == [3, -2, 4, -3, 3]  # ESP32-S3: half up
    assert Rounding(half_even=True).round([0.5, 1.5, -0.5]).tolist() == [0, 2, 0]
    assert Rounding(half_even=False).round([0.5, 1.5, -0.5]).tolist() == [1, 2, 0]
    assert Rounding(True).shift(np.array([3]), -2).tolist() == [12]
    # tool::round(double) on the P4: round_half_even(double), half away from zero, then an odd tie steps back
    assert Rounding(True).round_double([2.5, 3.5, -2.5, 2.4999999]).tolist() == [2, 4, -2, 2]


# ---------------------------------------------------------------- Conv
def _conv_case(bits, group, dilation, stride, activation, per_channel, spatial=1):
    dtype = INT8 if bits == 8 else INT16
    top = 100 if bits == 8 else 20000
    c_in, n_out, k = (16, 16, 3) if group > 1 else (8, 20, 3)
    kernel = (k,) if spatial == 1 else (k, k)
    weight = RNG.integers(-top, top, (n_out, c_in // group, *kernel))
    packed, layout = ppq.pack_conv_weight(weight.astype(np.int8 if bits == 8 else np.int16), bits, group)
    w_exps = list(RNG.integers(-9, -6, n_out)) if per_channel else [-8]
    x = RNG.integers(-top, top, (1, *((10,) if spatial == 1 else (6, 7)), c_in))
    bias = RNG.integers(-2000, 2000, n_out)
    pads = [dilation * (k - 1), 0] if spatial == 1 else [1, 1, 1, 1]
    node = _node("conv", "Conv", ["x", "w", "b"], ["y"], bits, group=group, dilations=[dilation] * spatial,
                 strides=[stride] * spatial, pads=pads, kernel_shape=list(kernel), activation=activation)
    in_exp, out_exp = -5, -6
    f = _file([node], [_tensor("x", dims=list(x.shape), exponent=in_exp, dtype=dtype)],
              [_tensor("y", dims=[], exponent=out_exp, dtype=dtype)], (),
              [_tensor("w", packed, exponent=w_exps[0], dtype=dtype, exponents=[int(e) for e in w_exps], layout=layout),
               _tensor("b", bias.astype(np.int32), exponent=0, dtype=INT32)])
    return f, x, weight, w_exps, bias, in_exp, out_exp, pads


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("group,dilation,stride,activation,per_channel,spatial", [
    (1, 1, 1, "Linear", False, 1), (16, 4, 1, "Relu", False, 1), (1, 2, 2, "Relu", True, 1), (16, 1, 1, "Linear", True, 1),
    (1, 1, 1, "Relu", False, 2), (16, 1, 1, "Linear", True, 2)])
def test_conv_matches_a_float_reference_within_half_a_step(bits, group, dilation, stride, activation, per_channel, spatial):
    import torch
    import torch.nn.functional as F

    f, x, weight, w_exps, bias, in_exp, out_exp, pads = _conv_case(bits, group, dilation, stride, activation, per_channel, spatial)
    got = Emulator(f, "esp32p4").run({"x": x.astype(np.int8 if bits == 8 else np.int16)})["y"]
    scale = torch.tensor([2.0 ** int(e) for e in w_exps], dtype=torch.float64)
    w = torch.from_numpy(weight).double() * scale.reshape(-1, *[1] * (weight.ndim - 1))
    xf = torch.from_numpy(x).double() * 2.0**in_exp
    b = torch.from_numpy(bias).double() * torch.tensor([2.0 ** (in_exp + int(e)) for e in w_exps], dtype=torch.float64)
    if spatial == 1:
        ref = F.conv1d(F.pad(xf.permute(0, 2, 1), (pads[0], pads[1])), w, b, stride, 0, dilation, group).permute(0, 2, 1)
    else:
        ref = F.conv2d(xf.permute(0, 3, 1, 2), w, b, stride, 1, dilation, group).permute(0, 2, 3, 1)
    ref = ref.clamp(min=0) if activation == "Relu" else ref
    low, high = (-128, 127) if bits == 8 else (-32768, 32767)
    ref_int = (ref / 2.0**out_exp).clamp(low, high).numpy()
    assert got.shape == ref_int.shape
    assert np.abs(got - ref_int).max() <= 0.5 + 1e-9  # correctly rounded


def test_per_channel_exponents_only_on_esp32p4():
    f, x, *_ = _conv_case(8, 1, 1, 1, "Linear", True)
    with pytest.raises(EmulatorError, match="per-channel exponents, which ESP-DL applies only on esp32p4"):
        Emulator(f, "esp32s3")
    f.initializers["w"].exponents = [-8, -8, -8]
    with pytest.raises(EmulatorError, match="3 weight exponents for 20 output channels"):
        Emulator(f, "esp32p4").run({"x": x.astype(np.int8)})


def test_esp32s3_int8_bias_keeps_20_bits():
    """reset_bias_layout keeps `bias & 0xfffff` for the 16-channel blocks (QACC's 20-bit lanes); the channel after
    them keeps 64 bits. With zero weights the output is the bias shifted by mac_shift = 0, saturated."""
    weight = np.zeros((17, 1, 1), np.int8)
    packed, layout = ppq.pack_conv_weight(weight, 8, 1)
    bias = np.full(17, 2**19 + 5, np.int32)  # 0x80005: bit 19 set, read back as 2**19 + 5 - 2**20 = -524283
    node = _node("conv", "Conv", ["x", "w", "b"], ["y"], group=1, pads=[0, 0], strides=[1], dilations=[1])
    f = _file([node], [_tensor("x", dims=[1, 2, 1])], [_tensor("y", dims=[])], (),
              [_tensor("w", packed, layout=layout), _tensor("b", bias, dtype=INT32)])
    x = np.zeros((1, 2, 1), np.int8)
    assert Emulator(f, "esp32s3").run({"x": x})["y"][0, 0].tolist() == [-128] * 16 + [127]
    assert Emulator(f, "esp32p4").run({"x": x})["y"][0, 0].tolist() == [127] * 17


# ---------------------------------------------------------------- element-wise, tables, movement
def test_add_saturates_and_a_mixed_exponent_is_reported_not_rescaled():
    node = _node("add", "Add", ["a", "b"], ["y"])
    f = _file([node], [_tensor("a", dims=[1, 4], exponent=-3), _tensor("b", dims=[1, 4], exponent=-3)],
              [_tensor("y", dims=[1, 4], exponent=-3)])
    a, b = np.array([[100, -100, 5, 0]], np.int8), np.array([[100, -100, -7, 1]], np.int8)
    assert Emulator(f, "esp32s3").run({"a": a, "b": b})["y"].tolist() == [[127, -128, -2, 1]]
    assert exponent_mismatches(f) == []
    f.inputs["b"].exponent = -4  # ESP-DL adds the integers as they are: the same result, and a finding
    assert Emulator(f, "esp32s3").run({"a": a, "b": b})["y"].tolist() == [[127, -128, -2, 1]]
    assert exponent_mismatches(f) == ["Add 'add' (a: -3, b: -4, y: -3)"]


def test_relu_table_at_int8_and_direct_at_int16():
    table = np.array([max(i, 0) // 2 for i in range(-128, 128)], np.int8)  # relu, then one exponent coarser
    node = _node("relu", "Relu", ["x"], ["y"], lut="t")
    f = _file([node], [_tensor("x", dims=[1, 4], exponent=-4)], [_tensor("y", dims=[1, 4], exponent=-3)],
              initializers=[_tensor("t", table, exponent=-3)])
    assert Emulator(f, "esp32s3").run({"x": np.array([[-5, 7, 8, 127]], np.int8)})["y"].tolist() == [[0, 3, 4, 63]]
    node16 = _node("relu", "Relu", ["x"], ["y"], 16, lut="t")
    f16 = _file([node16], [_tensor("x", dims=[1, 4], exponent=-12, dtype=INT16)],
                [_tensor("y", dims=[1, 4], exponent=-11, dtype=INT16)], initializers=[_tensor("t", table, exponent=-11)])
    got = Emulator(f16, "esp32p4").run({"x": np.array([[-5, 7, 9, 30001]], np.int16)})["y"]
    assert got.tolist() == [[0, 4, 4, 15000]]  # ESP-DL ignores the table at int16; 3.5 and 4.5 round half to even


@pytest.mark.parametrize("target,expected", [("esp32s3", [1, 1, 1, 2]), ("esp32p4", [0, 1, 1, 2])])
def test_int16_lookup_table_reads_the_nearest_entry_as_the_chip_rounds(target, expected):
    """lut_index: (x + 32768) / step, a remainder of exactly half rounds up on the S3 (`remainder >= half`) and
    to even on the P4. step 32 (2049 entries), table[i] = i: x = -32752 is index 0.5 (S3 1, P4 0), -32720 is 1.5
    (both 2)."""
    table = np.arange(2049, dtype=np.int16)
    node = _node("lut", "LUT", ["x"], ["y"], 16, lut="t")
    f = _file([node], [_tensor("x", dims=[1, 4], dtype=INT16)], [_tensor("y", dims=[1, 4], dtype=INT16)],
              initializers=[_tensor("t", table, dtype=INT16)])
    x = np.array([[-32752, -32736, -32737, -32720]], np.int16)  # 0.5, 1.0, 0.97, 1.5 steps
    assert Emulator(f, target).run({"x": x})["y"][0].tolist() == expected


def test_requantize_rounds_as_the_chip():
    node = _node("rq", "RequantizeLinear", ["x"], ["y"], 16)
    f = _file([node], [_tensor("x", dims=[1, 3], exponent=-10, dtype=INT16)], [_tensor("y", dims=[1, 3], exponent=-9, dtype=INT16)])
    x = np.array([[3, 5, -3]], np.int16)
    assert Emulator(f, "esp32s3").run({"x": x})["y"].tolist() == [[2, 3, -1]]
    assert Emulator(f, "esp32p4").run({"x": x})["y"].tolist() == [[2, 2, -2]]


def test_data_movement_copies_integers_and_exponent_changes_are_reported():
    x = RNG.integers(-100, 100, (1, 6, 4)).astype(np.int8)
    nodes = [_node("t", "Transpose", ["x"], ["xt"], perm=[1, 0, 2]), _node("u", "Unsqueeze", ["xt", "ax"], ["xu"]),
             _node("s", "Squeeze", ["xu", "ax"], ["y"])]
    values = [_tensor(n, dims=[], exponent=-2) for n in ("xt", "xu")]
    f = _file(nodes, [_tensor("x", dims=list(x.shape), exponent=-2)], [_tensor("y", dims=[], exponent=-2)], values,
              [_tensor("ax", np.array([1], np.int64), dtype=INT64)])
    assert np.array_equal(Emulator(f, "esp32s3").run({"x": x})["y"], x.transpose(1, 0, 2))
    f.value_infos["xt"].exponent = -5  # what esp-ppq once wrote after an LSTM: the chip reads the integers 8x too large
    assert np.array_equal(Emulator(f, "esp32s3").run({"x": x})["y"], x.transpose(1, 0, 2))
    assert exponent_mismatches(f) == ["Transpose 't' (x: -2, xt: -5)", "Unsqueeze 'u' (xt: -5, xu: -2)"]


def test_streaming_cache_keeps_frames_across_runs_and_resets():
    node = _node("c", "StreamingCache", ["x"], ["y"], window_size=3, frame_axis=1)
    f = _file([node], [_tensor("x", dims=[1, 2, 1])], [_tensor("y", dims=[])])
    emu = Emulator(f, "esp32s3")

    def run(a, b):
        return emu.run({"x": np.array([[[a], [b]]], np.int8)})["y"].reshape(-1).tolist()

    assert run(1, 2) == [0, 0, 1, 2]
    assert run(3, 4) == [1, 2, 3, 4]
    emu.reset()
    assert run(5, 6) == [0, 0, 5, 6]


def test_streaming_cache_copies_bytes_on_any_frame_axis():
    """ESP-DL copies cache bytes ++ input bytes: on a frame axis after a longer axis that is not a concatenation
    along it. Input [2, 2] (frame axis 1), window 2: the cache holds the last 2 of the 6 output values."""
    node = _node("c", "StreamingCache", ["x"], ["y"], window_size=2, frame_axis=1)
    f = _file([node], [_tensor("x", dims=[2, 2])], [_tensor("y", dims=[])])
    emu = Emulator(f, "esp32p4")
    first = emu.run({"x": np.array([[1, 2], [3, 4]], np.int8)})["y"]
    second = emu.run({"x": np.array([[5, 6], [7, 8]], np.int8)})["y"]
    assert first.tolist() == [[0, 0, 1], [2, 3, 4]]  # bytes 0 0 | 1 2 3 4, shaped [2, 3]
    assert second.tolist() == [[3, 4, 5], [6, 7, 8]]  # the last two bytes, 3 4, carried over


# ---------------------------------------------------------------- recurrences against a float reference
def _recurrent_file(kind, bits, hidden=8, inputs=6, steps=5):
    gates = 4 if kind == "LSTM" else 3
    dtype, npt = (INT8, np.int8) if bits == 8 else (INT16, np.int16)
    top = 60 if bits == 8 else 8000
    w = RNG.integers(-top, top, (1, gates * hidden, inputs)).astype(npt)
    r = RNG.integers(-top, top, (1, gates * hidden, hidden)).astype(npt)
    b = RNG.integers(-200, 200, (1, 2 * gates * hidden)).astype(np.int16)
    x = RNG.integers(-top, top, (steps, 1, inputs)).astype(npt)
    h_exp = -7 if bits == 8 else -15
    x_exp, w_exp = (-5, -8) if bits == 8 else (-12, -15)
    outs = ["Y", "h_out"] + (["c_out"] if kind == "LSTM" else [])
    node = _node("rnn", kind, ["x", "W", "R", "B", "", "h_in"] + (["c_in"] if kind == "LSTM" else []), outs, bits,
                 hidden_size=hidden, gate_exponent=-9, linear_before_reset=1)
    ins = [_tensor("x", dims=list(x.shape), exponent=x_exp, dtype=dtype), _tensor("h_in", dims=[1, 1, hidden], exponent=h_exp, dtype=dtype)]
    out_t = [_tensor("Y", dims=[], exponent=h_exp, dtype=dtype), _tensor("h_out", dims=[], exponent=h_exp, dtype=dtype)]
    if kind == "LSTM":
        ins.append(_tensor("c_in", dims=[1, 1, hidden], exponent=-9, dtype=INT16))
        out_t.append(_tensor("c_out", dims=[], exponent=-9, dtype=INT16))
    params = [_tensor("W", w, w_exp, dtype), _tensor("R", r, w_exp, dtype), _tensor("B", b, -9, INT16)]
    return _file([node], ins, out_t, initializers=params), x, w, r, b, x_exp, w_exp, h_exp


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("bits", [8, 16])
def test_recurrences_match_a_float_reference(kind, bits):
    import torch

    f, x, w, r, b, x_exp, w_exp, h_exp = _recurrent_file(kind, bits)
    hidden, inputs = 8, x.shape[-1]
    zeros = {"h_in": np.zeros((1, 1, hidden), x.dtype)}
    if kind == "LSTM":
        zeros["c_in"] = np.zeros((1, 1, hidden), np.int16)
    got = Emulator(f, "esp32s3").run({"x": x, **zeros})
    module = (torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU)(inputs, hidden).double()
    gates = 4 if kind == "LSTM" else 3
    order = [0, 2, 3, 1] if kind == "LSTM" else [1, 0, 2]  # ONNX i,o,f,c -> torch i,f,g,o ; ONNX z,r,h -> torch r,z,n

    def torch_order(m):
        blocks = np.split(m, gates, axis=0)
        return np.concatenate([blocks[i] for i in order], axis=0)

    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(torch_order(w[0] * 2.0**w_exp)))
        module.weight_hh_l0.copy_(torch.from_numpy(torch_order(r[0] * 2.0**w_exp)))
        bias = b[0] * 2.0**-9
        module.bias_ih_l0.copy_(torch.from_numpy(torch_order(bias[: gates * hidden])))
        module.bias_hh_l0.copy_(torch.from_numpy(torch_order(bias[gates * hidden :])))
        ref, _ = module(torch.from_numpy(x * 2.0**x_exp).double())
    ref_int = ref.numpy() / 2.0**h_exp
    error = np.abs(got["Y"].reshape(ref_int.shape) - ref_int).max()
    # int8: within a step; int16: the gates are computed at the 2^-9 gate exponent, far coarser than h
    assert error <= (1.0 if bits == 8 else 2.0 ** (-9 - h_exp) * 2), error


# ---------------------------------------------------------------- anchors, worked out from ESP-DL's C++
def test_gate_tables_as_esp_dl_builds_them():
    """SigmoidLUT(-8, -6.3, 6.3): quant_max = (int)(6.3f / 2**-8) + 1 = 1612 + 1 = 1613; TanhLUT(-8, -3.5, 3.5):
    (int)(3.5 / 2**-8) + 1 = 897. Entries: sigmoid(i * 2**-8) = 1 / (1 + e^-x); tanh = 2 sigmoid(2x) - 1. Beyond
    quant_max every index reads the last entry; a negative index reads 1 - entry (sigmoid) or -entry (tanh)."""
    sigmoid, tanh = GateTable(-8, 6.3, "sigmoid"), GateTable(-8, 3.5, "tanh")
    assert (sigmoid.q_max, tanh.q_max) == (1613, 897)
    at_bound = 1 / (1 + math.exp(-1613 / 256))  # 0.998167...
    assert sigmoid.get([256])[0] == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-7)
    assert sigmoid.get([1613, 5000, 32767])[0:3].tolist() == pytest.approx([at_bound] * 3, abs=1e-7)
    assert sigmoid.get([-5000])[0] == pytest.approx(1 - at_bound, abs=1e-7)
    assert tanh.get([128])[0] == pytest.approx(math.tanh(0.5), abs=1e-7)
    assert tanh.get([897, 2000, -2000]).tolist() == pytest.approx([math.tanh(897 / 256)] * 2 + [-math.tanh(897 / 256)],
                                                                   abs=1e-7)


def _anchor_file(kind, bits, w, r, bias):
    """hidden 1, input 1; x at 2**-4, W at 2**-4, h at 2**-7, R at 2**-1: both dot products land on the gate
    exponent 2**-8 with shift 0, so the pre-activations are the integer products themselves."""
    gates = 4 if kind == "LSTM" else 3
    dtype, npt = (INT8, np.int8) if bits == 8 else (INT16, np.int16)
    outs = ["Y", "h_out"] + (["c_out"] if kind == "LSTM" else [])
    node = _node("rnn", kind, ["x", "W", "R", "B"], outs, bits, hidden_size=1, gate_exponent=-8, linear_before_reset=1)
    out_t = [_tensor("Y", dims=[], exponent=-7, dtype=dtype), _tensor("h_out", dims=[], exponent=-7, dtype=dtype)]
    if kind == "LSTM":
        out_t.append(_tensor("c_out", dims=[], exponent=-8, dtype=INT16))
    params = [_tensor("W", np.array(w, npt).reshape(1, gates, 1), -4, dtype),
              _tensor("R", np.array(r, npt).reshape(1, gates, 1), -1, dtype),
              _tensor("B", np.array(bias, np.int16).reshape(1, 2 * gates), -8, INT16)]
    return _file([node], [_tensor("x", dims=[3, 1, 1], exponent=-4, dtype=dtype)], out_t, initializers=params), npt


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
@pytest.mark.parametrize("bits", [8, 16])
def test_lstm_anchor(target, bits):
    """Three steps of dl_module_lstm.hpp by hand. Gate order i, o, f, c; c = round(f*c + i*g*2**8);
    h = round(o * tanh_lut(c) * 2**7). W = [-34, -23, -53, 41], R = [6, 8, -1, -2], x = -31, -36, -37:
    step 1 pre-activations [1054, 713, 1643, -1271]: f (1643) and g (-1271) lie past the tables' ends 1613 and
    897, so f = sigmoid(1613/256) = 0.99817 (not 0.99837), g = -tanh(897/256) = -0.99819 (not -0.99990);
    c = round(0.98397 * -0.99819 * 256) = round(-251.44) = -251, h = round(0.94187 * tanh(-251/256) * 128)
    = round(-90.81) = -91. Steps 2 and 3 carry h and c: (h, c) = (-73, -489), then (-94, -734). Lifting either clamp, swapping two gates or running
    the steps in another order changes these integers (worked out in the same way), and every product is at
    least 0.05 from a rounding tie, so both chips round alike."""
    f, npt = _anchor_file("LSTM", bits, [-34, -23, -53, 41], [6, 8, -1, -2], [0] * 8)
    out = Emulator(f, target).run({"x": np.array([-31, -36, -37], npt).reshape(3, 1, 1)})
    assert out["Y"].reshape(-1).tolist() == [-91, -73, -94]
    assert out["c_out"].reshape(-1).tolist() == [-734]


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])
@pytest.mark.parametrize("bits", [8, 16])
def test_gru_anchor(target, bits):
    """Three steps of dl_module_gru.hpp by hand. z = sigmoid(Wz x + bz + Rz h), r = sigmoid(Wr x + Rr h),
    n = tanh_lut(round(Wh x + r * Rh h)), h = round((1 - z) * n * 2**7 + z * h). W = [-28, 53, -49],
    R = [-7, 7, -6], input bias of z -1800, x = 8, -40, -35: step 1 z = sigmoid_lut(-2024) reads the table's end
    (-1613): 0.00183, r = sigmoid(424/256) = 0.83973, n = tanh_lut(-392) = -0.91064, h = round(0.99817 * -0.91064
    * 128) = round(-116.35) = -116; then -25 and 116 (r at the clamp, n past tanh's end). Lifting either clamp,
    swapping z and r or the step order changes these integers."""
    f, npt = _anchor_file("GRU", bits, [-28, 53, -49], [-7, 7, -6], [-1800, 0, 0, 0, 0, 0])
    out = Emulator(f, target).run({"x": np.array([8, -40, -35], npt).reshape(3, 1, 1)})
    assert out["Y"].reshape(-1).tolist() == [-116, -25, 116]


@pytest.mark.parametrize("target,length,expected", [
    ("esp32s3", 8, 16384),  # SIMD: (16777727 + 2**9) >> 10 = 16384 (the sum is exact, plus half, shifted)
    ("esp32s3", 7, 16385),  # dotprod_c: (float)16777727 = 16777728; * 2**-10 = 16384.5; floorf(x + 0.5) = 16385
    ("esp32p4", 8, 16385),  # SIMD, half to even: 16778751 / 1024 = 16385.499 -> 16385
    ("esp32p4", 7, 16386),  # dotprod_c: (float)16778751 = 16778752 -> 16385.5 -> half to even 16386
])
def test_dot_product_branches(target, length, expected):
    """base::dotprod at int16: lengths that are a multiple of 8 take the SIMD kernel (exact sum, one rounding
    shift), others dotprod_c (the sum through float32, which cannot hold these sums exactly)."""
    tail = 1023 if target == "esp32s3" else 2047  # the sums: 32767 * 512 + tail = 16777727 / 16778751
    matrix = np.zeros((1, length), np.int16)
    vector = np.zeros((1, length), np.int16)
    matrix[0, :2], vector[0, :2] = [32767, tail], [512, 1]
    node = _node("rnn", "LSTM", [], [], 16)
    ctx = Context(EspdlFile([node], {}, {}, {}, {}, {}, {}), node, target, rounding_for(target))
    assert mat_vec_dotprod(ctx, matrix, vector, 10).tolist() == [[expected]]


# ---------------------------------------------------------------- refusals, batches
def test_anything_outside_the_registry_or_esp_dl_is_refused_by_name():
    f = _file([_node("m", "MatMulInteger", ["x"], ["y"])], [_tensor("x", dims=[1])], [_tensor("y", dims=[1])])
    with pytest.raises(EmulatorError, match="MatMulInteger node 'm': MatMulInteger is not in the emulator's registry"):
        Emulator(f, "esp32s3")
    f, *_ = _recurrent_file("GRU", 8)
    f.nodes[0].attributes["direction"] = "reverse"
    with pytest.raises(EmulatorError, match="direction 'reverse': ESP-DL runs every direction but bidirectional forwards"):
        Emulator(f, "esp32s3")
    f.nodes[0].attributes.update(direction="forward", quant_type="W8A16")
    with pytest.raises(EmulatorError, match="quant_type 'W8A16' is not emulated for GRU"):
        Emulator(f, "esp32s3")
    with pytest.raises(EmulatorError, match="target 'esp32' is not emulated"):
        Emulator(f, "esp32")


def test_a_batch_of_runs_equals_the_runs_one_by_one():
    f, x, *_ = _recurrent_file("LSTM", 16)
    emu = Emulator(f, "esp32p4")
    xs = RNG.integers(-8000, 8000, (5, *x.shape)).astype(np.int16)
    h = RNG.integers(-3000, 3000, (5, 1, 1, 8)).astype(np.int16)
    c = RNG.integers(-300, 300, (5, 1, 1, 8)).astype(np.int16)
    batch = emu.run_batch({"x": xs, "h_in": h, "c_in": c})
    for k in range(5):
        single = emu.run({"x": xs[k], "h_in": h[k], "c_in": c[k]})
        assert all(np.array_equal(batch[name][k], single[name]) for name in single)


def test_the_readme_table_is_the_registry():
    """The README's supported-ops table is printed from the registry, not kept by hand."""
    from pathlib import Path

    from espdl_stream.export.emulator import supported_ops_table

    assert supported_ops_table() in (Path(__file__).parent.parent / "README.md").read_text()
