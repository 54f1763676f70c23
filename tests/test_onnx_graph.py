"""Cache plans read from the ONNX graph, refusals of what cannot stream, and the float streaming twin."""

import numpy as np
import pytest
import torch.nn.functional as F
from torch import nn

from espdl_stream.export import onnx_graph, verify
from espdl_stream.export.errors import UnstreamableModel
from espdl_stream.models import CausalConv1d, CausalTCN, TCNConfig, build_model, streaming_rules


def test_plan_matches_the_models_own_rules():
    model = build_model("tcn")
    plan = onnx_graph.find_cache_sites(onnx_graph.model_to_onnx(model, 40, 96))
    assert [(s.window, s.stride) for s in plan.sites] == [(r.window, r.stride) for r in streaming_rules(model)]
    assert plan.total_stride == 1
    assert plan.pooling_rewrites == ("/pool/AveragePool",)  # exported as a depthwise Conv
    # every cache is bound to its own consumer op, never to a shared variable
    assert len({s.consumer for s in plan.sites}) == len(plan.sites)


def test_strided_model_twin_streams_like_offline_in_onnx_runtime():
    model = CausalTCN(TCNConfig(input_stride=2)).eval()
    proto = onnx_graph.model_to_onnx(model, 40, 96)
    plan = onnx_graph.find_cache_sites(proto)
    assert plan.total_stride == 2 and plan.sites[0].stride == 2
    check = _float_streaming_check(proto, plan, chunk=8)
    assert check.passed, check.detail
    assert len(check.per_chunk) == 12


def _float_streaming_check(proto, plan, chunk):
    clip = np.random.default_rng(0).standard_normal((40, 96)).astype(np.float32)
    references = verify.chunk_references(verify.onnx_offline_runner(proto, plan), clip, chunk, plan)
    streamed = verify.run_streaming_onnx(onnx_graph.streaming_twin(proto, plan, chunk), plan, clip, chunk)
    return verify.check_float_streaming([references], [streamed])


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_recurrent_plan_pairs_every_state_and_streams_in_onnx_runtime(rnn):
    model = build_model(rnn)
    proto = onnx_graph.model_to_onnx(model, 40, 96)
    plan = onnx_graph.find_cache_sites(proto)
    names = model.recurrent_state_names()
    assert plan.state_pairs == tuple((f"{n}_out", f"{n}_in") for n in names)
    assert plan.cell_states == (tuple(f"c{i}_out" for i in range(3)) if rnn == "lstm" else ())
    assert plan.total_stride == 4 and [s.stride for s in plan.sites] == [2, 2]
    check = _float_streaming_check(proto, plan, chunk=8)
    assert check.passed, check.detail
    assert "y and %d states" % len(names) in check.detail


def test_a_wrong_cache_window_cannot_pass_the_float_check():
    model = build_model("tcn")
    proto = onnx_graph.model_to_onnx(model, 40, 96)
    plan = onnx_graph.find_cache_sites(proto)
    site = plan.sites[2]
    broken = onnx_graph.StreamingPlan(
        plan.sites[:2] + (onnx_graph.CacheSite(site.variable, site.consumer, site.window - 1, 1, site.channels, 1),) + plan.sites[3:],
        1, (),
    )
    # one frame short, the dilated conv yields fewer frames than its residual partner: ONNX Runtime stops there
    with pytest.raises(Exception, match=r"Node \(/blocks/blocks.2/Add\).*Incompatible dimensions"):  # noqa: B017
        verify.run_streaming_onnx(onnx_graph.streaming_twin(proto, broken, 8), broken, np.zeros((40, 96), np.float32), 8)


@pytest.mark.parametrize("chunk,frames,message", [(3, 96, "multiple of the model's total time stride 2"),
                                                   (8, 100, "not a whole number of 8-frame chunks"),
                                                   (0, 96, "at least 1 frame")])
def test_bad_chunks_are_refused(chunk, frames, message):
    plan = onnx_graph.find_cache_sites(onnx_graph.model_to_onnx(CausalTCN(TCNConfig(input_stride=2)), 40, 96))
    with pytest.raises(UnstreamableModel, match=message):
        plan.check_chunk(chunk, frames)


class _SymmetricConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(40, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class _LinearOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(40 * 96, 12)

    def forward(self, x):
        return self.fc(x.flatten(1)).unsqueeze(-1)


class _MeanOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(40, 8, 1)

    def forward(self, x):
        return self.conv(x).mean(dim=2, keepdim=True)


class _MaxPool(nn.Module):
    def forward(self, x):
        return F.max_pool1d(x, 3, 1)


class _PaddedMaxPool(nn.Module):
    def forward(self, x):
        return F.max_pool1d(F.pad(x, (2, 0)), 3, 1)


class _LSTMWithoutStates(nn.Module):
    def __init__(self, bidirectional=False):
        super().__init__()
        self.rnn = nn.LSTM(40, 16, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x.permute(2, 0, 1))[0].permute(1, 2, 0)


class _TwoConvsOneInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = CausalConv1d(40, 8, 3)
        self.b = CausalConv1d(40, 8, 5)

    def forward(self, x):
        return self.a(x) + self.b(x)


@pytest.mark.parametrize(
    "model,message",
    [
        (_SymmetricConv(), r"Conv node '/conv/Conv' pads 1 frame\(s\) on the right"),
        (_LinearOverTime(), "node .* cannot stream"),
        (_MeanOverTime(), "ReduceMean node .* cannot stream"),
        (_MaxPool(), "MaxPool node .* not a zero-padded causal pool"),
        (_PaddedMaxPool(), "Pad node '/Pad' pads outside a time layer"),
        (_TwoConvsOneInput(), "feeds 2 time-mixing nodes"),
        (_LSTMWithoutStates(), "needs its initial states as graph inputs"),
        (_LSTMWithoutStates(bidirectional=True), "only a forward recurrence streams"),
    ],
)
def test_models_that_cannot_stream_are_refused_naming_the_node(model, message):
    with pytest.raises(UnstreamableModel, match=message):
        onnx_graph.find_cache_sites(onnx_graph.model_to_onnx(model.eval(), 40, 96))
