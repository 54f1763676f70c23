"""The keyword detector: a streaming model's per-frame class scores in, detections with times out.

Specified here once; firmware/main/detector/kws_detector.cpp implements the same steps for the chip, and
tests/test_detector.py holds both to the same detections on the same frame scores. For every output frame t of
the model (t = 0, 1, ... from the start of the stream; one frame every `frame_period_s` seconds):

1. posteriors: p_t = softmax of the frame's logits over all classes, in double precision
   (exp(l - max l) / sum, the sum taken over the classes in order);
2. smoothing: for each keyword k, s_t[k] = (p_{t-W+1}[k] + ... + p_t[k]) / W, summed oldest first, where
   W = `smoothing_frames` and frames before the stream's start count as 0;
3. decision: unless frame t is within the refractory period, the keyword with the highest s_t[k] among those with
   s_t[k] >= its threshold is detected (ties: the first keyword in `keywords`), at time (t + 1) · frame_period_s
   seconds (the audio heard so far) and with score s_t[k];
4. refractory: after a detection at frame t, frames t + 1 ... t + R detect nothing (R = `refractory_frames`).

Its parameters travel in the `.espdl` metadata (`detector`, this config as JSON), so the firmware builds the
same detector; the shipped models carry theirs in their weights file (chosen on validation streams).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class DetectorConfig:
    classes: tuple[str, ...]  # every output class of the model, in output order
    keywords: tuple[str, ...]  # the classes that are detected
    thresholds: tuple[float, ...]  # one per keyword, on the smoothed posterior
    smoothing_frames: int  # W, in output frames
    refractory_frames: int  # R, in output frames
    frame_period_s: float  # seconds between output frames: model stride / feature frames per second

    def __post_init__(self):
        if not set(self.keywords) <= set(self.classes):
            raise ValueError(f"keywords {sorted(set(self.keywords) - set(self.classes))} are not classes of the model")
        if len(self.thresholds) != len(self.keywords):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.keywords)} keywords")
        if self.smoothing_frames < 1 or self.refractory_frames < 0 or self.frame_period_s <= 0:
            raise ValueError("smoothing must be at least one frame, refractory not negative, the frame period positive")

    @property
    def keyword_indices(self) -> np.ndarray:
        return np.array([self.classes.index(k) for k in self.keywords])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        return cls(tuple(d["classes"]), tuple(d["keywords"]), tuple(float(t) for t in d["thresholds"]),
                   int(d["smoothing_frames"]), int(d["refractory_frames"]), float(d["frame_period_s"]))

    @classmethod
    def from_json(cls, text: str) -> "DetectorConfig":
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Detection:
    keyword: str
    frame: int  # output frame of the stream
    time_s: float
    score: float

    def __str__(self) -> str:
        return f"{self.keyword} at {self.time_s:.2f} s (score {self.score:.2f})"


def keyword_posteriors(logits: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """Step 1: [frames, keywords] softmax posteriors of the keywords from [classes, frames] logits."""
    x = np.asarray(logits, np.float64).T
    e = np.exp(x - x.max(axis=1, keepdims=True))
    total = e[:, 0].copy()
    for c in range(1, e.shape[1]):  # in class order, as the C++ does
        total += e[:, c]
    return e[:, config.keyword_indices] / total[:, None]


def smooth(posteriors: np.ndarray, history: np.ndarray, width: int) -> np.ndarray:
    """Step 2: moving average over `width` frames; `history` holds the width - 1 frames before these."""
    padded = np.concatenate([history, posteriors])
    n = len(posteriors)
    total = padded[:n].copy()
    for j in range(1, width):  # oldest first
        total += padded[j : j + n]
    return total / width


def pick(scores: np.ndarray, thresholds: np.ndarray, refractory: int, first_frame: int = 0,
         quiet_until: int = -1) -> tuple[list[tuple[int, int, float]], int]:
    """Steps 3 and 4 over [frames, keywords] smoothed scores: (frame, keyword index, score) of each detection,
    and the last frame of the refractory period the stream is left in."""
    above = scores >= thresholds
    candidates = np.nonzero(above.any(axis=1))[0] + first_frame
    found = []
    i = int(np.searchsorted(candidates, quiet_until, side="right"))
    while i < len(candidates):
        frame = int(candidates[i])
        row = np.where(above[frame - first_frame], scores[frame - first_frame], -np.inf)
        k = int(np.argmax(row))
        found.append((frame, k, float(row[k])))
        quiet_until = frame + refractory
        i = int(np.searchsorted(candidates, quiet_until, side="right"))
    return found, quiet_until


@dataclass
class Detector:
    """One stream's detector: feed it each chunk's [classes, frames] logits as they come."""

    config: DetectorConfig
    _history: np.ndarray = field(init=False)
    _frame: int = field(init=False)
    _quiet_until: int = field(init=False)

    def __post_init__(self):
        self.reset()

    def reset(self) -> None:
        self._history = np.zeros((self.config.smoothing_frames - 1, len(self.config.keywords)))
        self._frame, self._quiet_until = 0, -1

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Smoothed keyword posteriors [frames, keywords] of the next frames; advances the stream."""
        posteriors = keyword_posteriors(logits, self.config)
        scores = smooth(posteriors, self._history, self.config.smoothing_frames)
        self._history = np.concatenate([self._history, posteriors])[len(posteriors) :]
        return scores

    def process(self, logits: np.ndarray) -> list[Detection]:
        first = self._frame
        scores = self.scores(logits)
        self._frame += len(scores)
        found, self._quiet_until = pick(scores, np.asarray(self.config.thresholds), self.config.refractory_frames,
                                        first, self._quiet_until)
        period = self.config.frame_period_s
        return [Detection(self.config.keywords[k], frame, (frame + 1) * period, score) for frame, k, score in found]
