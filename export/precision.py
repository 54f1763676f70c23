"""Mixed precision: the fewest layers at 16 bits that bring an 8-bit graph's accuracy cost within target.

Measured, not guessed. The layers are tried in the order of their layerwise SNR (worst first: where the chip's
integer arithmetic loses most of its own signal, see layer_error.py); after each one the graph is quantized
again and its written offline file run on the labelled clips in the ESP-DL emulator, until the cost is within
target. Then each chosen layer is dropped again if the cost stays within target without it. A greedy search,
so a small set, not a proven minimum; every trial is in the report.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import ppq
from .accuracy import emulated_offline
from .emulator import Emulator
from .espdl_file import read_espdl
from ..models import clip_decision


METHOD = ("greedy: layers tried worst layerwise SNR first, each trial quantized again and its written offline file "
          "run on the labelled clips in the ESP-DL emulator, until the cost is within target; then each chosen layer "
          "dropped again if the target holds without it")


@dataclass
class Trial:
    layers: list[str]  # the file's layers at 16 bits
    cost_points: float

    def to_dict(self) -> dict:
        return asdict(self)


def search(order: list[str], cost_of: Callable[[tuple[str, ...]], float], target: float) -> tuple[tuple[str, ...], list[Trial]]:
    """Layers (from `order`, worst first) to raise so that cost_of(layers) <= target, and every trial made.

    If no prefix of `order` reaches the target, the set with the lowest cost measured is returned."""
    trials: list[Trial] = []

    def measure(layers: tuple[str, ...]) -> float:
        cost = cost_of(layers)
        trials.append(Trial(list(layers), cost))
        return cost

    chosen: tuple[str, ...] = ()
    if measure(chosen) <= target:
        return chosen, trials
    for layer in order:
        chosen += (layer,)
        if measure(chosen) <= target:
            break
    else:
        best = min(trials, key=lambda t: t.cost_points)
        return tuple(best.layers), trials
    for layer in reversed(chosen[:-1]):  # the last one was needed to get there
        without = tuple(name for name in chosen if name != layer)
        if measure(without) <= target:
            chosen = without
    return chosen, trials


def ops_of(units: dict[str, tuple[str, ...]], layers: tuple[str, ...]) -> tuple[str, ...]:
    """The esp-ppq ops that raise these layers, each once."""
    return tuple(dict.fromkeys(op for layer in layers for op in units[layer]))


class CostProbe:
    """What an 8-bit graph with some layers at 16 bits costs: quantize, write the offline file, run the labelled
    clips through it in the emulator, compare with the float decisions."""

    def __init__(self, quantize: Callable[[tuple[str, ...]], ppq.Quantized], units: dict[str, tuple[str, ...]],
                 target: str, clips: np.ndarray, labels: np.ndarray, float_decisions: np.ndarray, log):
        """quantize: esp-ppq ops at 16 bits -> the quantized graph; units: the ops that raise each layer."""
        self.quantize, self.units, self.target, self.clips, self.labels, self.log = quantize, units, target, clips, labels, log
        self.float_accuracy = float((float_decisions == labels).mean())

    def __call__(self, layers: tuple[str, ...]) -> float:
        ops = ops_of(self.units, layers)
        q = self.quantize(ops)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trial.espdl"
            ppq.export_espdl(q, path, self.log)
            emulator = Emulator(read_espdl(path), self.target)
        predicted = clip_decision(emulated_offline(emulator, self.clips))
        return round(100 * (self.float_accuracy - float((predicted == self.labels).mean())), 2)
