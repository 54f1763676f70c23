"""The benchmark's MAC counter (the timings are figures, never asserted)."""

import importlib.util
from pathlib import Path


from espdl_stream.export.intake import model_to_onnx
from espdl_stream.export.plan import find_cache_sites, streaming_twin
from espdl_stream.models import CausalConv1d, build_model

spec = importlib.util.spec_from_file_location("bench", Path(__file__).resolve().parent.parent / "benchmarks" / "run.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_macs_of_a_conv_and_of_streaming():
    conv = CausalConv1d(40, 16, 3).eval()
    assert bench.macs(model_to_onnx(conv, 40, 10)) == 10 * 16 * 40 * 3
    offline = model_to_onnx(build_model("tcn"), 40, 96)
    plan = find_cache_sites(offline)
    assert bench.macs(streaming_twin(plan, 8)) * 12 == bench.macs(plan.graph)  # streaming repeats no work


def test_macs_of_a_recurrence():
    offline = model_to_onnx(build_model("lstm"), 40, 96)
    lstm = 24 * 4 * 96 * (96 + 96)  # 24 steps after stride 4; 4 gates of 96 over input and hidden
    front = 48 * 96 * 40 * 3 + 24 * 96 * 96 * 3  # two stride-2 convs, kernel 3
    per_layer = 24 * 96 * 96 + 24 * 192 * 96 + 24 * 96 * 192  # projection and feed-forward 1x1 convs
    head = 24 * 12 * 96
    assert bench.macs(offline) == 3 * lstm + front + 3 * per_layer + head == 9_870_336
