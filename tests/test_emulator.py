"""The ESP-DL emulator: layouts, rounding, every operator against a float reference, refusals."""

import numpy as np
import pytest

from espdl_stream.export import ppq
from espdl_stream.export.emulator import Emulator, EmulatorError, Rounding, unpack_conv_weight
from espdl_stream.export.ppq import EspdlFile, EspdlNode, EspdlTensor

INT8, INT16 = 3, 5
RNG = np.random.default_rng(0)


def _tensor(name, values=None, exponent=0, dtype=INT8, dims=None, exponents=None, layout=""):
    dims = list(values.shape) if values is not None else dims
    return EspdlTensor(name, dims, exponent, dtype, values, exponents or [exponent], layout)


def _file(nodes, inputs, outputs, values=(), initializers=()):
    """A one- or few-node .espdl as read_espdl returns it."""
    return EspdlFile(nodes, {t.name: t for t in inputs}, {t.name: t for t in outputs}, {t.name: t for t in values},
                     {}, {}, {t.name: t for t in initializers})


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("shape,group", [((64, 40, 3), 1), ((12, 64, 1), 1), ((64, 1, 5), 64), ((20, 1, 3), 20),
                                          ((16, 8, 3, 3), 1), ((24, 1, 3, 3), 24)])
def test_packed_layout_round_trip(bits, shape, group):
    dtype = np.int8 if bits == 8 else np.int16
    weight = RNG.integers(-100, 100, shape).astype(dtype)
    packed, layout = ppq.pack_conv_weight(weight, bits, group)
    unpacked = unpack_conv_weight(_tensor("w", packed, layout=layout), group)
    assert unpacked.shape == weight.shape and np.array_equal(unpacked, weight), layout


def test_rounding_follows_the_chip():
    ties = np.array([5, -5, 7, -7, 6])  # /2 -> 2.5, -2.5, 3.5, -3.5, 3
    assert Rounding(half_even=True).shift(ties, 1).tolist() == [2, -2, 4, -4, 3]  # ESP32-P4
    assert Rounding(half_even=False).shift(ties, 1).tolist() == [3, -2, 4, -3, 3]  # ESP32-S3: half up
    assert Rounding(half_even=True).round([0.5, 1.5, -0.5]).tolist() == [0, 2, 0]
    assert Rounding(half_even=False).round([0.5, 1.5, -0.5]).tolist() == [1, 2, 0]
    assert Rounding(True).shift(np.array([3]), -2).tolist() == [12]


def _conv_case(bits, group, dilation, stride, activation, per_channel, spatial=1):
    dtype = INT8 if bits == 8 else INT16
    top = 100 if bits == 8 else 20000
    c_in, n_out, k = (16, 16, 3) if group > 1 else (8, 20, 3)
    kernel = (k,) if spatial == 1 else (k, k)
    weight = RNG.integers(-top, top, (n_out, c_in // group, *kernel))
    packed, layout = ppq.pack_conv_weight(weight.astype(np.int8 if bits == 8 else np.int16), bits, group)
    w_exps = list(RNG.integers(-9, -6, n_out)) if per_channel else [-8]
    x = RNG.integers(-top, top, (1, *( (10,) if spatial == 1 else (6, 7)), c_in))
    bias = RNG.integers(-2000, 2000, n_out)
    pad = dilation * (k - 1)
    pads = [pad, 0] if spatial == 1 else [1, 1, 1, 1]
    node = EspdlNode("conv", "Conv", ["x", "w", "b"], ["y"], {
        "group": group, "dilations": [dilation] * spatial, "strides": [stride] * spatial, "pads": pads,
        "kernel_shape": list(kernel), "activation": activation})
    in_exp, out_exp = -5, -6
    f = _file([node], [_tensor("x", dims=list(x.shape), exponent=in_exp, dtype=dtype)],
              [_tensor("y", dims=[], exponent=out_exp, dtype=dtype)], (),
              [_tensor("w", packed, exponent=w_exps[0], dtype=dtype, exponents=[int(e) for e in w_exps], layout=layout),
               _tensor("b", bias.astype(np.int32), exponent=0, dtype=6)])
    return f, x, weight, w_exps, bias, in_exp, out_exp, pads, dilation, stride


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("group,dilation,stride,activation,per_channel,spatial", [
    (1, 1, 1, "Linear", False, 1), (16, 4, 1, "Relu", False, 1), (1, 2, 2, "Relu", True, 1), (16, 1, 1, "Linear", True, 1),
    (1, 1, 1, "Relu", False, 2), (16, 1, 1, "Linear", True, 2)])
def test_conv_matches_a_float_reference_within_one_step(bits, group, dilation, stride, activation, per_channel, spatial):
    import torch
    import torch.nn.functional as F

    f, x, weight, w_exps, bias, in_exp, out_exp, pads, dilation, stride = _conv_case(
        bits, group, dilation, stride, activation, per_channel, spatial)
    got = Emulator(f, "esp32p4").run({"x": x.astype(np.int8 if bits == 8 else np.int16)})["y"]
    scale = torch.tensor([2.0**int(e) for e in w_exps], dtype=torch.float64)
    w = torch.from_numpy(weight).double() * scale.reshape(-1, *[1] * (weight.ndim - 1))
    xf = torch.from_numpy(x).double() * 2.0**in_exp
    b = torch.from_numpy(bias).double() * torch.tensor([2.0 ** (in_exp + int(e)) for e in w_exps], dtype=torch.float64)
    if spatial == 1:
        ref = F.conv1d(F.pad(xf.permute(0, 2, 1), (pads[0], pads[1])), w, b, stride, 0, dilation, group).permute(0, 2, 1)
    else:
        ref = F.conv2d(xf.permute(0, 3, 1, 2), w, b, stride, 1, dilation, group).permute(0, 2, 3, 1)
    if activation == "Relu":
        ref = ref.clamp(min=0)
    low, high = (-128, 127) if bits == 8 else (-32768, 32767)
    ref_int = (ref / 2.0**out_exp).clamp(low, high).numpy()
    assert got.shape == ref_int.shape
    assert np.abs(got - ref_int).max() <= 0.5 + 1e-9  # correctly rounded: within half a step


def test_add_needs_one_exponent_and_saturates():
    node = EspdlNode("add", "Add", ["a", "b"], ["y"], {})
    f = _file([node], [_tensor("a", dims=[1, 4], exponent=-3), _tensor("b", dims=[1, 4], exponent=-3)],
              [_tensor("y", dims=[1, 4], exponent=-3)])
    out = Emulator(f, "esp32s3").run({"a": np.array([[100, -100, 5, 0]], np.int8), "b": np.array([[100, -100, -7, 1]], np.int8)})
    assert out["y"].tolist() == [[127, -128, -2, 1]]
    f.inputs["b"].exponent = -4
    with pytest.raises(EmulatorError, match="Add node 'add'.*exponents differ"):
        Emulator(f, "esp32s3").run({"a": np.zeros((1, 4), np.int8), "b": np.zeros((1, 4), np.int8)})


def test_relu_table_at_int8_and_direct_at_int16():
    table = np.array([max(i, 0) // 2 for i in range(-128, 128)], np.int8)  # relu, then one exponent coarser
    node = EspdlNode("relu", "Relu", ["x"], ["y"], {"lut": "t"})
    f = _file([node], [_tensor("x", dims=[1, 4], exponent=-4)], [_tensor("y", dims=[1, 4], exponent=-3)],
              initializers=[_tensor("t", table, exponent=-3)])
    assert Emulator(f, "esp32s3").run({"x": np.array([[-5, 7, 8, 127]], np.int8)})["y"].tolist() == [[0, 3, 4, 63]]
    f16 = _file([node], [_tensor("x", dims=[1, 4], exponent=-12, dtype=INT16)],
                [_tensor("y", dims=[1, 4], exponent=-11, dtype=INT16)], initializers=[_tensor("t", table, exponent=-11)])
    got = Emulator(f16, "esp32p4").run({"x": np.array([[-5, 7, 9, 30001]], np.int16)})["y"]
    assert got.tolist() == [[0, 4, 4, 15000]]  # ESP-DL ignores the table at int16; 3.5 and 4.5 round half to even


def test_requantize_rounds_as_the_chip():
    node = EspdlNode("rq", "RequantizeLinear", ["x"], ["y"], {})
    f = _file([node], [_tensor("x", dims=[1, 3], exponent=-10, dtype=INT16)], [_tensor("y", dims=[1, 3], exponent=-9, dtype=INT16)])
    x = np.array([[3, 5, -3]], np.int16)
    assert Emulator(f, "esp32s3").run({"x": x})["y"].tolist() == [[2, 3, -1]]
    assert Emulator(f, "esp32p4").run({"x": x})["y"].tolist() == [[2, 2, -2]]


def test_data_movement_keeps_values_and_refuses_an_exponent_change():
    x = RNG.integers(-100, 100, (1, 6, 4)).astype(np.int8)
    nodes = [EspdlNode("t", "Transpose", ["x"], ["xt"], {"perm": [1, 0, 2]}),
             EspdlNode("u", "Unsqueeze", ["xt", "ax"], ["xu"], {}),
             EspdlNode("s", "Squeeze", ["xu", "ax"], ["y"], {})]
    values = [_tensor(n, dims=[], exponent=-2) for n in ("xt", "xu")]
    f = _file(nodes, [_tensor("x", dims=list(x.shape), exponent=-2)], [_tensor("y", dims=[], exponent=-2)], values,
              [_tensor("ax", np.array([1], np.int64), dtype=7)])
    assert np.array_equal(Emulator(f, "esp32s3").run({"x": x})["y"], x.transpose(1, 0, 2))
    f.value_infos["xt"].exponent = -5
    with pytest.raises(EmulatorError, match="Transpose node 't': a data-movement op cannot change the exponent"):
        Emulator(f, "esp32s3").run({"x": x})


def test_streaming_cache_keeps_frames_across_runs_and_resets():
    node = EspdlNode("c", "StreamingCache", ["x"], ["y"], {"window_size": 3, "frame_axis": 1})
    f = _file([node], [_tensor("x", dims=[1, 2, 1])], [_tensor("y", dims=[])])
    emu = Emulator(f, "esp32s3")
    run = lambda a, b: emu.run({"x": np.array([[[a], [b]]], np.int8)})["y"].reshape(-1).tolist()  # noqa: E731
    assert run(1, 2) == [0, 0, 1, 2]
    assert run(3, 4) == [1, 2, 3, 4]
    emu.reset()
    assert run(5, 6) == [0, 0, 5, 6]


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
    node = EspdlNode("rnn", kind, ["x", "W", "R", "B", "", "h_in"] + (["c_in"] if kind == "LSTM" else []), outs,
                     {"hidden_size": hidden, "gate_exponent": -9, "linear_before_reset": 1})
    ins = [_tensor("x", dims=list(x.shape), exponent=x_exp, dtype=dtype), _tensor("h_in", dims=[1, 1, hidden], exponent=h_exp, dtype=dtype)]
    if kind == "LSTM":
        ins.append(_tensor("c_in", dims=[1, 1, hidden], exponent=-9, dtype=INT16))
    out_t = [_tensor("Y", dims=[], exponent=h_exp, dtype=dtype), _tensor("h_out", dims=[], exponent=h_exp, dtype=dtype)]
    if kind == "LSTM":
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


def test_unsupported_operator_is_named():
    f = _file([EspdlNode("m", "MatMulInteger", ["x"], ["y"], {})], [_tensor("x", dims=[1])], [_tensor("y", dims=[1])])
    with pytest.raises(EmulatorError, match="MatMulInteger node 'm' is not supported"):
        Emulator(f, "esp32s3")


def test_per_channel_weight_count_must_match():
    f, x, *_ = _conv_case(8, 1, 1, 1, "Linear", True)
    f.initializers["w"].exponents = [-8, -8, -8]
    with pytest.raises(EmulatorError, match="3 weight exponents for 20 output channels"):
        Emulator(f, "esp32p4").run({"x": x.astype(np.int8)})
