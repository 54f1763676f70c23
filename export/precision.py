"""Mixed precision: few layers at 16 bits that bring an 8-bit graph's accuracy cost within target.

Measured, not guessed. Layers are tried in the order of their layerwise SNR (worst first: where the chip's integer
arithmetic loses most of its own signal, see layer_error.py). For each, the graph is quantized again with it at 16
bits, its written offline file run on the labelled clips in the ESP-DL emulator, and two figures measured: the
accuracy cost, and the SNR of the output against the float model over all those clips. A layer is kept only if
it raises that SNR; the search ends at the first kept set whose cost is within target. The cost alone is too
coarse to steer by (one clip in 360 is 0.28 points: measured, a cost-driven search kept layers that lowered the
output SNR from 20.6 to 11.3 dB and still "met" the target by chance). Greedy, so a small set, not a proven
minimum; every trial is in the report.
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
from .errors import ExportError
from .espdl_file import read_espdl
from .verify import snr_db
from ..models import clip_decision

METHOD = ("greedy, worst layerwise SNR first: each layer tried at 16 bits (quantized again, the written offline file "
          "run on the labelled clips in the ESP-DL emulator), kept if it raises the output SNR against float on "
          "those clips, until the cost is within target")
MIN_GAIN_DB = 0.1  # a kept layer must raise the output SNR by this much


@dataclass
class Trial:
    layers: list[str]  # the file's layers at 16 bits
    cost_points: float | None
    output_snr_db: float | None
    kept: bool = False
    refused: str = ""  # why the written file could not run (an esp-ppq export ESP-DL cannot execute)

    def to_dict(self) -> dict:
        return asdict(self)


def search(order: list[str], measure: Callable[[tuple[str, ...]], Trial], target: float
           ) -> tuple[tuple[str, ...], list[Trial]]:
    """Layers (from `order`, worst first) to raise, and every trial made; measure(layers) -> its Trial.

    If the target is out of reach, every layer that helped is raised."""
    best = measure(())
    best.kept = True
    trials = [best]
    for layer in order:
        if best.cost_points <= target:
            break
        trial = measure((*best.layers, layer))
        trial.kept = bool(not trial.refused and trial.output_snr_db >= best.output_snr_db + MIN_GAIN_DB)
        trials.append(trial)
        if trial.kept:
            best = trial
    return tuple(best.layers), trials


def ops_of(units: dict[str, tuple[str, ...]], layers: tuple[str, ...]) -> tuple[str, ...]:
    """The esp-ppq ops that raise these layers, each once."""
    return tuple(dict.fromkeys(op for layer in layers for op in units[layer]))


class CostProbe:
    """What an 8-bit graph with some layers at 16 bits costs: quantize, write the offline file, run the labelled
    clips through it in the emulator, compare with the float decisions."""

    def __init__(self, quantize: Callable[[tuple[str, ...]], ppq.Quantized], units: dict[str, tuple[str, ...]],
                 target: str, clips: np.ndarray, labels: np.ndarray, float_logits: np.ndarray, log):
        """quantize: esp-ppq ops at 16 bits -> the quantized graph; units: the ops that raise each layer;
        float_logits: the float model's frame logits of `clips`."""
        self.quantize, self.units, self.target, self.clips, self.labels, self.log = quantize, units, target, clips, labels, log
        self.float_logits = float_logits
        self.float_accuracy = float((clip_decision(float_logits) == labels).mean())

    def __call__(self, layers: tuple[str, ...]) -> Trial:
        """The accuracy cost (points) and output SNR (dB) with these layers at 16 bits."""
        try:
            q = self.quantize(ops_of(self.units, layers))
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "trial.espdl"
                layouts = ppq.export_espdl(q, path, self.log)
                emulator = Emulator(read_espdl(path), self.target)
            logits = emulated_offline(emulator, self.clips, layouts)
        except ExportError as e:  # this set of widths makes a file ESP-DL cannot run: a trial that failed
            return Trial(list(layers), None, None, refused=str(e))
        accuracy = float((clip_decision(logits) == self.labels).mean())
        return Trial(list(layers), round(100 * (self.float_accuracy - accuracy), 2), float(snr_db(self.float_logits, logits)))
