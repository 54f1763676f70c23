"""Every causal layer and model: streaming with internal state equals offline, exactly."""

import pytest
import torch

from espdl_stream.models import (
    CausalAvgPool1d,
    CausalConv1d,
    CausalTCN,
    TCNConfig,
    build_model,
    receptive_window,
    stream_in_chunks,
    streaming_rules,
    total_stride,
)


@pytest.mark.parametrize(
    "kernel,dilation,stride,groups,chunk",
    [(3, 1, 1, 1, 1), (3, 4, 1, 8, 5), (5, 2, 1, 1, 7), (2, 1, 2, 1, 4), (4, 3, 2, 8, 6), (1, 1, 1, 1, 3)],
)
def test_causal_conv_streams_exactly(kernel, dilation, stride, groups, chunk):
    layer = CausalConv1d(8, 16, kernel, dilation=dilation, stride=stride, groups=groups).eval()
    x = torch.randn(2, 8, chunk * 6)
    with torch.no_grad():
        offline = layer(x)
    streamed = torch.cat(stream_in_chunks(layer, x, chunk), dim=-1)
    assert streamed.shape == offline.shape
    assert torch.equal(streamed, offline)
    assert layer.window == receptive_window(kernel, dilation) == dilation * (kernel - 1) + 1


@pytest.mark.parametrize("kernel,stride,chunk", [(4, 1, 1), (3, 1, 8), (2, 2, 4)])
def test_causal_pool_streams_exactly(kernel, stride, chunk):
    layer = CausalAvgPool1d(8, kernel, stride)
    x = torch.randn(1, 8, chunk * 5)
    offline = layer(x)
    assert torch.equal(torch.cat(stream_in_chunks(layer, x, chunk), dim=-1), offline)


def test_pool_counts_the_zeros_before_the_start():
    pooled = CausalAvgPool1d(1, 4)(torch.ones(1, 1, 6))
    assert pooled.flatten().tolist() == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_tcn_streams_exactly_and_states_reset():
    model = CausalTCN(TCNConfig(input_stride=2)).eval()
    x = torch.randn(2, 40, 96)
    with torch.no_grad():
        offline = model(x)
    first = torch.cat(stream_in_chunks(model, x, 8), dim=-1)
    again = torch.cat(stream_in_chunks(model, x, 8), dim=-1)  # fresh zero caches each stream
    assert torch.allclose(first, offline, atol=1e-6, rtol=0)
    assert torch.equal(first, again)


def test_tcn_rules_come_from_kernels_and_dilations():
    model = build_model("tcn")
    rules = streaming_rules(model)
    c = model.config
    windows = [receptive_window(c.kernel_size, d) for d in c.dilations] + [c.pool_size]
    assert [r.window for r in rules] == [c.input_stride] + windows  # the strided input conv first
    assert total_stride(model) == 2
    assert total_stride(CausalTCN(TCNConfig(input_stride=1))) == 1


def test_chunk_must_be_a_multiple_of_the_stride():
    model = CausalTCN(TCNConfig(input_stride=2)).eval()
    with pytest.raises(ValueError, match="multiple of the layer stride 2"):
        stream_in_chunks(model, torch.randn(1, 40, 9), 3)
