"""The planner: cache plans read from the graph, one rule per op, refusals by layer, and the float streaming twin."""

import numpy as np
import pytest

from espdl_stream.export import verify
from espdl_stream.export.errors import UnstreamableModel
from espdl_stream.export.intake import from_torch, model_to_onnx
from espdl_stream.export.plan import (RULES, CacheSite, StreamingPlan, check_table, find_cache_sites, layer_rows,
                                      plan_streaming, streaming_twin)
from espdl_stream.models import CausalTCN, TCNConfig, build_model, streaming_rules


def test_plan_matches_the_models_own_rules():
    model = build_model("tcn")
    plan = find_cache_sites(model_to_onnx(model, 40, 96))
    assert [(s.window, s.stride) for s in plan.sites] == [(r.window, r.stride) for r in streaming_rules(model)]
    assert plan.total_stride == 2  # the input conv's stride
    assert plan.pooling_rewrites == ("/pool/AveragePool",)  # exported as a depthwise Conv
    # every cache is bound to its own consumer op, never to a shared variable
    assert len({s.consumer for s in plan.sites}) == len(plan.sites)
    assert {s.frame_axis for s in plan.sites} == {1}


def _float_streaming_check(plan, chunk):
    clip = np.random.default_rng(0).standard_normal((40, 96)).astype(np.float32)
    references = verify.chunk_references(verify.onnx_offline_runner(plan.graph, plan), clip, chunk, plan)
    streamed = verify.run_streaming_onnx(streaming_twin(plan, chunk), plan, clip, chunk)
    return verify.check_float_streaming([references], [streamed])


def test_strided_model_twin_streams_like_offline_in_onnx_runtime():
    plan = find_cache_sites(model_to_onnx(CausalTCN(TCNConfig(input_stride=2)).eval(), 40, 96))
    assert plan.total_stride == 2 and plan.sites[0].stride == 2
    check = _float_streaming_check(plan, chunk=8)
    assert check.passed, check.detail
    assert len(check.per_chunk) == 12


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_recurrent_plan_pairs_every_state_and_streams_in_onnx_runtime(rnn):
    model = build_model(rnn)
    plan = find_cache_sites(model_to_onnx(model, 40, 96))
    names = model.recurrent_state_names()  # the hand-written interface keeps its own names
    assert plan.state_pairs == tuple((f"{n}_out", f"{n}_in") for n in names)
    assert plan.cell_states == (tuple(f"c{i}_out" for i in range(3)) if rnn == "lstm" else ())
    assert plan.total_stride == 4 and [s.stride for s in plan.sites] == [2, 2]
    check = _float_streaming_check(plan, chunk=8)
    assert check.passed, check.detail
    assert "y and %d states" % len(names) in check.detail


def test_a_wrong_cache_window_cannot_pass_the_float_check():
    plan = find_cache_sites(model_to_onnx(build_model("tcn"), 40, 96))
    site = plan.sites[2]
    wrong = CacheSite(site.variable, site.consumer, site.window - 1, 1, site.channels, 1)
    broken = StreamingPlan(plan.sites[:2] + (wrong,) + plan.sites[3:], 1, frame_outputs=plan.frame_outputs,
                           time_pads=plan.time_pads, graph=plan.graph)
    # one frame short, the dilated conv yields fewer frames than its residual partner: ONNX Runtime stops there
    with pytest.raises(Exception, match=r"Node \(/blocks/blocks.1/Add\).*Incompatible dimensions"):  # noqa: B017
        verify.run_streaming_onnx(streaming_twin(broken, 8), broken, np.zeros((40, 96), np.float32), 8)


@pytest.mark.parametrize("chunk,frames,message", [(3, 96, "multiple of the model's total time stride 2"),
                                                   (8, 100, "not a whole number of 8-frame chunks"),
                                                   (0, 96, "at least 1 frame")])
def test_bad_chunks_are_refused(chunk, frames, message):
    plan = find_cache_sites(model_to_onnx(CausalTCN(TCNConfig(input_stride=2)), 40, 96))
    with pytest.raises(UnstreamableModel, match=message):
        plan.check_chunk(chunk, frames)


def test_check_names_layers_by_their_pytorch_paths_and_the_rule_that_decided():
    source = from_torch(build_model("tcn"), 40, 96)
    plan = plan_streaming(source.onnx, source.layers)
    rows = {r.layer: r for r in layer_rows(plan)}
    assert rows["blocks.3.depthwise.conv"].verdict == "needs a cache of 16 frames"
    assert rows["blocks.3.depthwise.conv"].rule == "causal conv"
    assert rows["pool"].rule == "average pool as depthwise conv"
    assert rows["head"].verdict == "streams as is"
    table = check_table(plan)
    assert table.splitlines()[0].split() == ["layer", "ops", "rule", "verdict"]
    assert "/" not in table  # layers, never ONNX node names


def test_every_rule_is_a_function_of_its_op_type():
    assert {"Conv", "LSTM", "GRU", "MatMul", "Gemm", "Reshape", "LayerNormalization", "BatchNormalization"} <= set(RULES)
    assert RULES["LSTM"] is RULES["GRU"] and RULES["Relu"] is RULES["Add"]
