"""The corpus of user-style models (tests/user_models.py): every model gets its verdict, before any quantizing,
with the refused layer named by its PyTorch path; the models marked `export` go all the way through."""

import dataclasses
import io

import pytest
import torch
from user_models import CORPUS, Case, TimeOnWidthFlat

from espdl_stream.export import ExportConfig, export_streaming, ppq, verify
from espdl_stream.export.espdl_file import read_espdl
from espdl_stream.export.errors import ExportError, UnstreamableModel
from espdl_stream.export.intake import TOP_LEVEL, from_torch
from espdl_stream.export.plan import layer_rows, plan_streaming


def _plan(case: Case):
    source = from_torch(case.build().eval(), 40, 96, case.layout)
    return plan_streaming(source.onnx, source.layers)


def test_the_corpus_covers_each_kind_of_model():
    assert len(CORPUS) >= 40
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    refused = [c for c in CORPUS if not c.streams]
    assert len(refused) >= 15 and len(CORPUS) - len(refused) >= 25
    assert {c.layout for c in CORPUS} >= {"BFT", "BTF", "B1TF", "B1FT"}
    assert sum(c.states > 0 for c in CORPUS) >= 5


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_verdict(case: Case):
    plan = _plan(case)
    layers = [r.layer for r in layer_rows(plan)]
    assert all("/" not in layer and not layer.startswith("_v") for layer in layers), layers  # no node names
    if case.streams:
        assert not plan.refusals, plan.refusals[0].sentence
        assert tuple(s.cache_frames for s in plan.sites) == case.caches
        assert len(plan.state_pairs) == case.states
    else:
        assert plan.refusals, f"{case.name} should be refused"
        first = plan.refusals[0]
        assert first.layer == case.layer and case.reason in first.sentence, first.sentence
        where = "the model's forward" if case.layer == TOP_LEVEL else f"layer '{case.layer}'"
        with pytest.raises(UnstreamableModel, match=f"^{where} \\("):  # the export refuses with the same words
            plan.require_streamable()


@pytest.mark.parametrize("case", [c for c in CORPUS if c.export], ids=[c.name for c in CORPUS if c.export])
def test_export(case: Case, features, tmp_path):
    config = ExportConfig(calib_steps=4, verify_clips=1)
    result = export_streaming(case.build().eval(), features[:4], features[4:5], config, tmp_path, model_name=case.name,
                              input_layout=case.layout)
    assert result.passed, [f"{c.name}: {c.detail}" for c in result.checks if not c.passed]
    assert [c["window"] - 1 for c in result.report["caches"]] == list(case.caches)
    assert len(result.report["state_pairs"]) == case.states


def test_guard_esp_ppq_frame_axis_of_2d_inputs(features, tmp_path):
    """A Conv2d reading [B, C, 1, T] has its frames on axis 2 of ESP-DL's [N, H, W, C]. esp-ppq's streaming
    gives every cache the model input's frame axis, 1 (what this project's table once wrote for every cache
    too), and its auto streaming cannot place this cache at all. The export pass writes the plan's axis and
    refuses one that does not match esp-ppq's layout; test_export[conv2d_time_on_flat_width] streams it exactly."""
    source = from_torch(TimeOnWidthFlat().eval(), 40, 96)
    plan = plan_streaming(source.onnx, source.layers).require_streamable()
    assert [(s.time_axis, s.frame_axis, s.window) for s in plan.sites] == [(3, 2, 3)]
    q = ppq.quantize(plan.graph, [{"x": torch.from_numpy(c[None])} for c in features[:4]], "esp32s3", 8, io.StringIO())
    with pytest.raises(ExportError, match="not supported for AutoStreamingPattern"):
        ppq.export_espdl(q, tmp_path / "auto.espdl", io.StringIO(), streaming=ppq.StreamingExport((), [1, 40, 8], {}))
    default_axis = tuple(dataclasses.replace(s, frame_axis=1) for s in plan.sites)
    with pytest.raises(ExportError, match="would copy frames on axis 1, but esp-ppq lays them out on axis 2"):
        ppq.export_espdl(q, tmp_path / "axis1.espdl", io.StringIO(), streaming=ppq.StreamingExport(default_axis, [1, 40, 8]))
    layouts = ppq.export_espdl(q, tmp_path / "ours.espdl", io.StringIO(),
                               streaming=ppq.StreamingExport(plan.sites, [1, 40, 8]))
    written = read_espdl(tmp_path / "ours.espdl")
    assert verify.check_streaming_structure(written, plan, 8, 40, layouts["x"]).passed
    assert [n.attributes["frame_axis"] for n in written.nodes if n.op_type == "StreamingCache"] == [2]
