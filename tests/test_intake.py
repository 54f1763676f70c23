"""Bringing a model in: file.py:factory, package.module:callable, weights, ONNX files, states made by the tool."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from user_models import PlainLSTM, StackedGRU

from espdl_stream.export.errors import ExportError
from espdl_stream.export.intake import from_onnx, from_torch, load_model, take_model
from espdl_stream.export.plan import plan_streaming

USER_MODELS = Path(__file__).resolve().parent / "user_models.py"
# the tests export ONNX files as a user would, with torch's TorchScript exporter
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning",
                                        "ignore:Exporting a model to ONNX with a batch_size other than 1")


def test_a_factory_in_a_file_and_in_a_package():
    model = load_model(f"{USER_MODELS}:LocuslabTCN")
    assert type(model).__name__ == "LocuslabTCN" and not model.training
    assert type(load_model("espdl_stream.models:CausalTCN")).__name__ == "CausalTCN"


@pytest.mark.parametrize("spec,message", [
    ("no_colon", "give path/to/file.py:factory"),
    ("/no/such/file.py:build", "/no/such/file.py: no such file"),
    (f"{USER_MODELS}:no_such_factory", "has no callable 'no_such_factory'"),
    ("espdl_stream.models:MODEL_NAMES", "has no callable 'MODEL_NAMES'"),
    ("espdl_stream.models:clip_decision", "clip_decision() failed: TypeError"),
    ("no_such_package.module:build", "cannot import 'no_such_package.module'"),
])
def test_a_wrong_model_spec_is_one_line(spec, message):
    with pytest.raises(ExportError, match=None) as e:
        load_model(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_weights_from_safetensors_or_a_state_dict(tmp_path):
    trained = PlainLSTM()
    save_file(trained.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    for path in (tmp_path / "w.safetensors", tmp_path / "checkpoint.pt"):
        model = load_model(f"{USER_MODELS}:PlainLSTM", path)
        assert torch.equal(model.lstm.weight_ih_l0, trained.lstm.weight_ih_l0)
    torch.save(StackedGRU().state_dict(), tmp_path / "other.pt")
    with pytest.raises(ExportError, match="other.pt does not fit the model: Missing key"):
        load_model(f"{USER_MODELS}:PlainLSTM", tmp_path / "other.pt")
    (tmp_path / "pickled.pt").write_bytes(b"not a state dict")
    with pytest.raises(ExportError, match="pickled.pt: not a readable state dict") as refused:
        load_model(f"{USER_MODELS}:PlainLSTM", tmp_path / "pickled.pt")
    assert "\n" not in str(refused.value) and "\x1b" not in str(refused.value)  # torch's message is many lines


def test_recurrent_states_are_made_by_the_tool_with_stable_names():
    source = from_torch(StackedGRU().eval(), 40, 96, "BTF")
    assert [i.name for i in source.onnx.graph.input] == ["x", "h0_in", "h1_in"]
    assert [o.name for o in source.onnx.graph.output] == ["y", "h0_out", "h1_out"]
    assert [list(d.dim_value for d in i.type.tensor_type.shape.dim) for i in source.onnx.graph.input[1:]] == [[1, 1, 32]] * 2
    assert len(source.notes) == 2 and "made by the tool" in source.notes[0]
    plan = plan_streaming(source.onnx, source.layers)
    assert plan.state_pairs == (("h0_out", "h0_in"), ("h1_out", "h1_in"))


def test_a_model_that_cannot_run_on_the_features_says_what_to_give():
    with pytest.raises(ExportError, match=r"cannot run on x of shape \[1, 40, 96\] read as BFT.*--input-layout"):
        from_torch(StackedGRU().eval(), 40, 96)  # it reads [B, T, F]


def _to_onnx(model, path, example, names=("input.1",), outputs=("logits",), dynamic=True):
    axes = {names[0]: {0: "batch", len(example[0].shape) - 1 if len(example[0].shape) == 3 else 1: "time"}} if dynamic else None
    torch.onnx.export(model.eval(), example, str(path), input_names=list(names), output_names=list(outputs),
                      dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


def test_an_onnx_file_with_its_own_names_and_opset(tmp_path):
    model = load_model(f"{USER_MODELS}:LocuslabTCN")
    path = _to_onnx(model, tmp_path / "tcn.onnx", (torch.zeros(1, 40, 50),))
    source = from_onnx(path, 96)
    assert source.n_mels == 40 and [i.name for i in source.onnx.graph.input] == ["x"]
    assert [o.name for o in source.onnx.graph.output] == ["y"]
    assert "'input.1' -> 'x'" in source.notes[0] and "'logits' -> 'y'" in source.notes[0]
    plan = plan_streaming(source.onnx, source.layers)
    assert not plan.refusals and [s.cache_frames for s in plan.sites] == [2, 2, 4, 4]
    assert {v.layer for v in plan.verdicts} >= {"/network/network.0/net/conv1/Conv"}  # the file's own node names
    assert take_model(path, None, 96).n_mels == 40


def test_onnx_files_that_do_not_say_enough_are_one_line_errors(tmp_path):
    model = load_model(f"{USER_MODELS}:LocuslabTCN")
    fixed = _to_onnx(model, tmp_path / "fixed.onnx", (torch.zeros(1, 40, 100),), dynamic=False)
    with pytest.raises(ExportError, match="fixed at 100 frames: give --frames 100"):
        from_onnx(fixed, 96)
    with pytest.raises(ExportError, match="takes 40 features per frame, not --n-mels 64"):
        from_onnx(fixed, 100, n_mels=64)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ExportError, match="junk.onnx: not a valid ONNX model"):
        from_onnx(tmp_path / "junk.onnx", 96)


def test_an_onnx_recurrent_model_with_its_own_state_inputs(tmp_path):
    class WithStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(40, 16, batch_first=True)

        def forward(self, x, h):
            y, h = self.gru(x, h)
            return y, h

    path = tmp_path / "gru.onnx"
    torch.onnx.export(WithStates().eval(), (torch.zeros(1, 50, 40), torch.zeros(1, 1, 16)), str(path),
                      input_names=["feats", "hidden"], output_names=["out", "hidden_next"],
                      dynamic_axes={"feats": {1: "time"}, "out": {1: "time"}}, opset_version=17, dynamo=False)
    source = from_onnx(path, 96, input_layout="BTF")
    plan = plan_streaming(source.onnx, source.layers)
    assert not plan.refusals, plan.refusals[0].sentence
    assert plan.state_pairs == (("h0_out", "h0_in"),)  # the file's own state input and output, stable names
    assert "'hidden' -> 'h0_in'" in source.notes[0] and "'hidden_next' -> 'h0_out'" in source.notes[0]
    assert plan.frame_outputs[0].name == "y" and plan.frame_outputs[0].time_axis == 1
