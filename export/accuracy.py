"""What quantization costs in accuracy, measured on what the chip computes.

The float model's decisions come from ONNX Runtime; the quantized ones from the written files in the ESP-DL
emulator: the offline file on whole clips and the streaming file chunk by chunk (state copied back), the integers
the chip would compute. The cost is float accuracy minus quantized accuracy on the same clips, with a 95% interval
for a difference of paired proportions (Newcombe's hybrid score interval, method 10 of Newcombe 1998: Wilson score
intervals of the two accuracies, combined with the correlation of the paired outcomes). Over its target the cost is
a WARN row: the files are still exact; they are less accurate than the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..calibration import LabeledClips
from ..models import clip_decision
from .emulator import Emulator
from .intake import INPUT_NAME, OUTPUT_NAME
from .ppq import from_file_layout, to_file_layout
from .verify import Check, snr_db

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
# What quantization may cost in accuracy against float (points), by the graph's width (a mixed graph's is 8).
ACCURACY_TARGETS = {8: 0.5, 16: 0.1}


# ---------------------------------------------------------------- intervals
def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(first: np.ndarray, second: np.ndarray, z: float = Z_95) -> tuple[float, float]:
    """Interval for mean(first) - mean(second) of paired 0/1 outcomes (Newcombe 1998, method 10)."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    n = len(first)
    a = int((first & second).sum())
    b = int((first & ~second).sum())
    c = int((~first & second).sum())
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (p1 - p2) - below, (p1 - p2) + above


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


# ---------------------------------------------------------------- decisions of the written files
def _runs(perm: tuple[int, ...]) -> tuple[int, ...]:
    """A file layout for a stack of runs: the runs axis first, then the tensor's own."""
    return (0, *(axis + 1 for axis in perm))


def _dequantized_logits(emulator: Emulator, output: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    """ESP-DL's outputs, one run per clip, -> float [clips, classes, frames] (the graph's [1, classes, frames] each)."""
    scale = 2.0 ** emulator.file.outputs[OUTPUT_NAME].exponent
    return from_file_layout(output, _runs(perm))[:, 0].astype(np.float64) * scale


def emulated_offline(emulator: Emulator, clips: np.ndarray, layouts: dict[str, tuple[int, ...]]) -> np.ndarray:
    """Frame logits [clips, classes, frames] of the offline file, every clip from zero state, all clips at once.

    layouts: how the file lays out x and y (ppq.export_espdl's answer)."""
    x = emulator.quantize(INPUT_NAME, to_file_layout(clips[:, None], _runs(layouts[INPUT_NAME])))
    states = {name: emulator.zeros(name, len(clips)) for name in emulator.file.inputs if name != INPUT_NAME}
    return _dequantized_logits(emulator, emulator.run_batch({INPUT_NAME: x, **states})[OUTPUT_NAME], layouts[OUTPUT_NAME])


def emulated_streaming(emulator: Emulator, clips: np.ndarray, chunk: int, layouts: dict[str, tuple[int, ...]]) -> np.ndarray:
    """Frame logits [clips, classes, frames] of the streaming file fed chunk by chunk (state copied back), all
    clips at once."""
    x = emulator.quantize(INPUT_NAME, to_file_layout(clips[:, None], _runs(layouts[INPUT_NAME])))
    frames = layouts[INPUT_NAME].index(2) + 1  # the graph's frame axis, in the file, after the runs axis
    chunks = [{INPUT_NAME: np.take(x, range(k, k + chunk), axis=frames)} for k in range(0, x.shape[frames], chunk)]
    outputs = emulator.stream_batch(chunks)
    y = np.concatenate([r[OUTPUT_NAME] for r in outputs], axis=layouts[OUTPUT_NAME].index(2) + 1)
    return _dequantized_logits(emulator, y, layouts[OUTPUT_NAME])


@dataclass
class Decisions:
    """Each clip's class: the float model's, the offline file's and the streaming file's; and how close the offline
    file's frame logits are to the float model's over all the clips (SNR, dB)."""

    float: np.ndarray
    offline: np.ndarray
    streaming: np.ndarray
    output_snr_db: float


def float_logits(evaluation: LabeledClips, frames: int, run_float: Callable[[np.ndarray], dict]) -> np.ndarray:
    """The float model's frame logits [clips, classes, frames] (ONNX Runtime)."""
    return np.concatenate([run_float(c)[OUTPUT_NAME] for c in evaluation.features[..., :frames]])


def emulated_decisions(evaluation: LabeledClips, frames: int, float_logits: np.ndarray, offline: Emulator,
                       streaming: Emulator, chunk: int, layouts: dict[str, tuple[int, ...]]) -> Decisions:
    clips = evaluation.features[..., :frames]
    offline_logits = emulated_offline(offline, clips, layouts)
    return Decisions(clip_decision(float_logits), clip_decision(offline_logits),
                     clip_decision(emulated_streaming(streaming, clips, chunk, layouts)),
                     float(snr_db(float_logits, offline_logits)))


# ---------------------------------------------------------------- the figures and the verdict
def _percent(fraction: float) -> float:
    return round(100 * float(fraction), 2)


def accuracy_report(evaluation: LabeledClips, decisions: Decisions, target_points: float, width: str) -> dict:
    labels = evaluation.labels
    correct = {name: getattr(decisions, name) == labels for name in ("float", "offline", "streaming")}
    n = len(labels)
    low, high = paired_difference_interval(correct["float"], correct["offline"])
    cost = _percent(correct["float"].mean() - correct["offline"].mean())
    return {
        "clips": int(n),
        "classes": list(evaluation.classes),
        "width": width,
        "top1_percent": {"float": _percent(correct["float"].mean()), "quantized_offline": _percent(correct["offline"].mean()),
                         "quantized_streaming": _percent(correct["streaming"].mean())},
        "top1_interval_95_percent": {name: [_percent(v) for v in wilson_interval(int(ok.sum()), n)]
                                     for name, ok in (("float", correct["float"]), ("quantized_offline", correct["offline"]))},
        "quantization_cost_points": cost,
        "quantization_cost_interval_95_points": [_percent(low), _percent(high)],
        "interval_method": "Newcombe's hybrid score interval for paired proportions (1998, method 10), same clips",
        "float_right_quantized_wrong": int((correct["float"] & ~correct["offline"]).sum()),
        "float_wrong_quantized_right": int((~correct["float"] & correct["offline"]).sum()),
        "agreement_float_vs_quantized_percent": _percent((decisions.float == decisions.offline).mean()),
        "output_snr_db": decisions.output_snr_db,  # the offline file's frame logits against float, all these clips
        "quantization_target_points": target_points,
        "quantization_target_met": cost <= target_points,
        "streaming_decisions_differing": int((decisions.streaming != decisions.offline).sum()),
        "confusion_float": confusion_matrix(labels, decisions.float, len(evaluation.classes)).tolist(),
        "confusion_quantized": confusion_matrix(labels, decisions.streaming, len(evaluation.classes)).tolist(),
        "source": "float: ONNX Runtime; quantized: the written .espdl files in the ESP-DL emulator",
    }


def what_to_try(width: str) -> str:
    if width == "int8":
        return "try --bits mixed (the most sensitive layers at 16 bits), --bits 16, or calibration data closer to the use"
    if width == "mixed":
        return "try --bits 16, or calibration data closer to the use"
    return "try calibration data closer to the use, or another --calibration"


def accuracy_checks(report: dict) -> list[Check]:
    """Streaming must decide as offline does (a proof); the cost must be within target (a WARN if not)."""
    top, n, width = report["top1_percent"], report["clips"], report["width"]
    differing = report["streaming_decisions_differing"]
    checks = [Check(
        "streaming decisions vs offline (labelled clips)", differing == 0,
        f"{n} clips through the written files: {width} offline {top['quantized_offline']}%, "
        f"streaming {top['quantized_streaming']}% ({differing} decisions differ)",
    )]
    low, high = report["quantization_cost_interval_95_points"]
    cost, target = report["quantization_cost_points"], report["quantization_target_points"]
    figure = (f"cost {cost:+.2f} points (95% CI {low:+.2f} to {high:+.2f}) on {n} clips: float {top['float']}%, "
              f"{width} {top['quantized_offline']}%; target {target}")
    met = report["quantization_target_met"]
    checks.append(Check("accuracy cost of quantization vs target", True,
                        figure if met else f"{figure}: over target; {what_to_try(width)}", warning=not met))
    return checks
