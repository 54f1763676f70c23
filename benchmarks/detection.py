"""Keyword spotting judged the way keyword spotters are: detection rate and false alarms per hour, per keyword.

    python benchmarks/detection.py choose --model tcn     # the detector, from the validation streams (float model)
    python benchmarks/detection.py evaluate --model tcn   # the held-out test streams, int8 in the ESP-DL emulator
    python benchmarks/detection.py plot                   # the DET curves (benchmarks/det.png) from detection.json

Data: the streams of calibration/kws_data.py (data/kws/, not committed). `choose` runs the float model over the
validation streams (voices and recordings of the validation split) and picks the smoothing window and the
thresholds; they are stored beside the weights (models.record_detector) and travel from there into every export's
metadata. `evaluate` exports the model as `export-espdl` does by default (ESP32-S3, int8) and plays the held-out
test streams chunk by chunk through the written streaming .espdl in the ESP-DL emulator, as the chip would run it,
then scores the detector from that file's metadata: a keyword counts as detected by a detection of the same keyword
between its start and TOLERANCE_S after its end; every other detection is a false alarm. Both test sets are at
10 dB SNR; the false alarms per hour are counted over all test audio (the negative hour and the keyword streams
outside their keywords) and over the negative hour alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch

from espdl_stream.calibration import FbankConfig
from espdl_stream.calibration.kws_data import CLASSES, KEYWORDS, StreamSet
from espdl_stream.export.detector import DetectorConfig, Detector, pick
from espdl_stream.models import MODEL_NAMES, build_model, record_detector, total_stride

HERE = Path(__file__).resolve().parent
RESULTS, PLOT = HERE / "detection.json", HERE / "det.png"
TOLERANCE_S = 0.5
REFRACTORY_S = 1.0
SMOOTHING_S = (0.02, 0.04, 0.08, 0.16, 0.24)
TARGET_FA_PER_HOUR = 1.0
GOAL_DETECTION = 0.95
THRESHOLDS = np.round(np.concatenate([np.arange(0.05, 0.9, 0.05), np.arange(0.9, 0.999, 0.005),
                                      [0.995, 0.998, 0.999, 0.9995, 0.9999]]), 4)


def keyword_events(streams: StreamSet, i: int) -> np.ndarray:
    """[n, 3]: keyword index, start and end in seconds, of stream i's keywords."""
    segments = streams.stream_segments(i)
    keep = segments[:, 0] < len(KEYWORDS)
    return np.column_stack([segments[keep, 0], segments[keep, 1:] / 16000.0])


def score(found: list[tuple[int, int, float]], period: float, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per keyword: events detected, and false alarms (detections that match no undetected event of theirs)."""
    hits, false_alarms = np.zeros(len(KEYWORDS), int), np.zeros(len(KEYWORDS), int)
    open_events = np.ones(len(events), bool)
    for frame, k, _ in found:
        t = (frame + 1) * period
        match = np.nonzero(open_events & (events[:, 0] == k) & (events[:, 1] <= t) & (t <= events[:, 2] + TOLERANCE_S))[0]
        if len(match):
            open_events[match[0]] = False
            hits[k] += 1
        else:
            false_alarms[k] += 1
    return hits, false_alarms


def keyword_seconds(events: np.ndarray) -> float:
    return float(np.sum(events[:, 2] + TOLERANCE_S - events[:, 1]))


def figures(scores: list[np.ndarray], events: list[np.ndarray], thresholds: np.ndarray, config: DetectorConfig,
            negative: list[bool], seconds: list[float]) -> dict:
    """Detection and false alarms of the detector with `thresholds` over several streams' smoothed scores."""
    hits, fas, neg_fas = (np.zeros(len(KEYWORDS), int) for _ in range(3))
    for s, e, is_negative in zip(scores, events, negative):
        found, _ = pick(s, thresholds, config.refractory_frames)
        h, fa = score(found, config.frame_period_s, e)
        hits += h
        fas += fa
        if is_negative:
            neg_fas += fa
    totals = np.bincount(np.concatenate([e[:, 0] for e in events]).astype(int), minlength=len(KEYWORDS))
    hours = (sum(seconds) - sum(keyword_seconds(e) for e in events)) / 3600
    negative_hours = sum(t for t, n in zip(seconds, negative) if n) / 3600
    return {
        "keywords": int(totals.sum()), "detected": int(hits.sum()),
        "detection_rate": round(float(hits.sum() / max(totals.sum(), 1)), 4),
        "false_alarms": int(fas.sum()), "hours": round(hours, 3),
        "false_alarms_per_hour": round(float(fas.sum() / hours), 3),
        "negative_hours": round(negative_hours, 3), "negative_false_alarms": int(neg_fas.sum()),
        "per_keyword": {kw: {"keywords": int(totals[k]), "detection_rate": round(float(hits[k] / max(totals[k], 1)), 4),
                             "false_alarms": int(fas[k]), "false_alarms_per_hour": round(float(fas[k] / hours), 3)}
                        for k, kw in enumerate(KEYWORDS)},
    }


def base_config(model, smoothing_s: float) -> DetectorConfig:
    period = total_stride(model) / FbankConfig().frames_per_second
    return DetectorConfig(CLASSES, KEYWORDS, (0.5,) * len(KEYWORDS), max(1, round(smoothing_s / period)),
                          round(REFRACTORY_S / period), period)


@torch.no_grad()
def float_logits(model, features: np.ndarray) -> np.ndarray:
    stride = total_stride(model)
    x = torch.from_numpy(np.ascontiguousarray(features[:, : features.shape[1] // stride * stride], np.float32))[None]
    out = model(x)
    return (out[0] if isinstance(out, tuple) else out)[0].numpy()


def emulated_logits(streaming_espdl: Path, features: np.ndarray) -> np.ndarray:
    """The written streaming file in the ESP-DL emulator, chunk by chunk from a reset: what the chip computes."""
    from espdl_stream.export.runtime import EmulatedSession

    session = EmulatedSession(streaming_espdl)
    n = features.shape[1] // session.chunk
    return np.concatenate([session.process(np.ascontiguousarray(features[:, k * session.chunk : (k + 1) * session.chunk],
                                                                 np.float32)) for k in range(n)], axis=1)


def choose(name: str, data: Path) -> dict:
    """The smoothing window and thresholds with the most detections on the validation streams at no more than
    TARGET_FA_PER_HOUR / 2 false alarms per hour there (a margin for unseen voices). Two kinds of thresholds are
    tried for every window: one for all keywords (the lowest that meets the target), and one per keyword (the
    lowest at which that keyword alone raises no false alarm on the validation streams)."""
    model = build_model(name)
    val = StreamSet.load(data / "val.npz")
    logits = [float_logits(model, val.stream(i).astype(np.float32)) for i in range(len(val))]
    events = [keyword_events(val, i) for i in range(len(val))]
    seconds = [val.stream(i).shape[1] * val.info["frame_shift_s"] for i in range(len(val))]
    negative = [False] * len(val)
    best, tried = None, []
    for smoothing_s in SMOOTHING_S:
        config = base_config(model, smoothing_s)
        scores = [Detector(config).scores(l) for l in logits]

        def lowest(allowed, thresholds_for):
            for threshold in THRESHOLDS:
                thresholds = thresholds_for(threshold)
                if allowed(figures(scores, events, thresholds, config, negative, seconds)):
                    return thresholds
            return thresholds_for(1.0)

        uniform = lowest(lambda f: f["false_alarms_per_hour"] <= TARGET_FA_PER_HOUR / 2, lambda t: np.full(len(KEYWORDS), t))
        only = lambda k: lambda t: np.where(np.arange(len(KEYWORDS)) == k, t, 2.0)  # noqa: E731  keyword k alone
        per_keyword = np.array([lowest(lambda f, kw=kw: f["per_keyword"][kw]["false_alarms"] == 0, only(k))[k]
                                for k, kw in enumerate(KEYWORDS)])
        for kind, thresholds in (("uniform", uniform), ("per keyword", per_keyword)):
            f = figures(scores, events, thresholds, config, negative, seconds)
            tried.append({"smoothing_frames": config.smoothing_frames, "thresholds": kind,
                          "detection_rate": f["detection_rate"], "false_alarms_per_hour": f["false_alarms_per_hour"]})
            if f["false_alarms_per_hour"] <= TARGET_FA_PER_HOUR / 2 and (best is None or f["detection_rate"] > best[0]["detection_rate"]):
                best = (f, replace(config, thresholds=tuple(float(t) for t in thresholds)), kind)
    found, config, kind = best
    record_detector(name, json.loads(config.to_json()))
    print(f"{name}: smoothing {config.smoothing_frames} frames, thresholds ({kind}) {config.thresholds}: validation "
          f"{100 * found['detection_rate']:.1f}% detected, {found['false_alarms_per_hour']} false alarms/h")
    return {"validation": found, "detector": json.loads(config.to_json()), "thresholds_kind": kind, "tried": tried}


def evaluate(name: str, data: Path, espdl: Path | None) -> dict:
    from espdl_stream.export.cli import main as export_main
    from espdl_stream.export.espdl_file import read_espdl

    started = time.time()
    sets = [StreamSet.load(data / "test_keywords.npz"), StreamSet.load(data / "test_negative.npz")]
    with tempfile.TemporaryDirectory() as tmp:
        if espdl is None:
            espdl = Path(tmp)
            if export_main(["--model", name, "--out", tmp, "--quiet"]) != 0:
                raise SystemExit(f"the export of {name} failed")
        streaming = espdl / "streaming_model.espdl"
        config = DetectorConfig.from_json(read_espdl(streaming).metadata["detector"])
        model = build_model(name)
        runs = {"int8": lambda f: emulated_logits(streaming, f), "float": lambda f: float_logits(model, f)}
        result = {"model": name, "detector": json.loads(config.to_json()), "date": date.today().isoformat()}
        for kind, run in runs.items():
            scores, events, negative, seconds = [], [], [], []
            for is_negative, streams in zip((False, True), sets):
                for i in range(len(streams)):
                    features = streams.stream(i).astype(np.float32)
                    scores.append(Detector(config).scores(run(features)))
                    events.append(keyword_events(streams, i))
                    negative.append(is_negative)
                    seconds.append(features.shape[1] * streams.info["frame_shift_s"])
            result[kind] = figures(scores, events, np.asarray(config.thresholds), config, negative, seconds)
            result[kind]["det"] = [{"threshold": float(t), **{k: v for k, v in figures(
                scores, events, np.full(len(KEYWORDS), t), config, negative, seconds).items() if k != "negative_hours"}}
                for t in THRESHOLDS]
    result["seconds"] = round(time.time() - started, 1)
    result["data"] = {"keyword_streams_minutes": round(sets[0].seconds / 60, 1),
                      "negative_minutes": round(sets[1].seconds / 60, 1),
                      "negative_recorded_speech_minutes": round(sets[1].info.get("recorded_seconds", 0) / 60, 1)}
    return result


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in MODEL_NAMES if n in results]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.5), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        r = results[name]["int8"]
        for kw in KEYWORDS:
            ax.plot([max(p["per_keyword"][kw]["false_alarms_per_hour"], 0.05) for p in r["det"]],
                    [100 * (1 - p["per_keyword"][kw]["detection_rate"]) for p in r["det"]], lw=0.8, alpha=0.6, label=kw)
        ax.plot([max(p["false_alarms_per_hour"], 0.05) for p in r["det"]],
                [100 * (1 - p["detection_rate"]) for p in r["det"]], "k", lw=2, label="all keywords")
        ax.plot([max(r["false_alarms_per_hour"], 0.05)], [100 * (1 - r["detection_rate"])], "ro", label="chosen")
        ax.axvline(TARGET_FA_PER_HOUR, color="grey", ls=":")
        ax.axhline(100 * (1 - GOAL_DETECTION), color="grey", ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(0.04, 1000)
        ax.set_ylim(0.1, 100)
        ax.set_title(f"{name}, int8 (ESP-DL emulator), 10 dB SNR")
        ax.set_xlabel("false alarms per hour (0 drawn at 0.05)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("miss rate, % of held-out keywords")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("choose", "evaluate", "plot"))
    parser.add_argument("--model", choices=MODEL_NAMES, default="tcn")
    parser.add_argument("--data", type=Path, default=Path("data/kws"))
    parser.add_argument("--espdl", type=Path, help="evaluate: an export folder instead of a fresh default export")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.step == "plot":
        plot(json.loads(RESULTS.read_text()), PLOT)
        return 0
    found = choose(args.model, args.data) if args.step == "choose" else evaluate(args.model, args.data, args.espdl)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}  # read late: other models' runs may end first
    results.setdefault(args.model, {}).update(found)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.step == "evaluate":
        r = found["int8"]
        print(f"{args.model} int8: {100 * r['detection_rate']:.1f}% of {r['keywords']} keywords detected, "
              f"{r['false_alarms_per_hour']} false alarms/h over {r['hours']} h "
              f"({r['negative_false_alarms']} in the {r['negative_hours']} h negative stream)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
