"""Train a shipped model to spot keywords in a stream; the weights are what `export-espdl` uses by default.

    python -m espdl_stream.models.train --model tcn --data data/kws      # streams from calibration/kws_data.py

The head is per frame: the model emits class logits for every output frame. Training reads the training streams
as they would arrive: a batch is `lanes` long feature sequences (training streams end to end in a random order),
cut into consecutive windows; a recurrent model carries its state from one window to the next (detached), a
convolutional one gets the frames before the window as context. So the model learns to run forever, not only from
a zero state.

Targets (frame by frame, at the model's output rate; an output frame is labelled by the last input frame it has
seen): `silence` where no speech is, `unknown` over other words and recorded speech (and 0.1 s after), and for a
keyword either
- `aligned`: the keyword on the frames from 50 ms before its end to 200 ms after, nothing asked before that
  (keyword frames weigh KEYWORD_WEIGHT times a background frame); or
- `maxpool`: nothing asked frame by frame inside [start, end + 200 ms]; instead the frame where the model is most
  sure of the keyword there is pushed towards it (max-pooling loss).
Training windows get random frequency masks; the learning rate decays exponentially to 5% of its start. The
best epoch on the validation streams (lowest frame loss) is kept. `--init WEIGHTS` starts from saved weights of the
same model instead of a random initialisation (a warm restart, or fine-tuning on your streams): the learning rate
schedule starts again. Fixed seeds and a fixed number of epochs
and threads make a run reproducible on the same machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import MODEL_NAMES, WeightsError, build_model, load_weights
from .streaming import causal_layers, total_stride

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
IGNORE = -1
KEYWORD_BEFORE_END_S, KEYWORD_AFTER_END_S, UNKNOWN_AFTER_END_S = 0.05, 0.2, 0.1
REGION_WEIGHT_S = 0.25  # max-pooling: a keyword region counts like this much of aligned targets
FINAL_LR_SHARE = 0.05
FREQUENCY_MASKS, MAX_MASKED_BINS = 2, 6  # SpecAugment-style: the model must not lean on a few mel bins
KEYWORD_WEIGHT = 5.0  # keyword frames are about 1% each of all frames: weigh them up against the background


def frame_of(sample: int, frame_length: int, frame_shift: int) -> int:
    """The first feature frame whose window has heard `sample`."""
    return max(0, (sample - frame_length) // frame_shift + 1)


@dataclass
class Targets:
    frames: np.ndarray  # int64 per input frame: class, or IGNORE
    keyword_regions: np.ndarray  # [n, 3]: class, first frame, last frame (input frames), for the max-pooling loss


def stream_targets(streams, classes: tuple[str, ...], scheme: str) -> Targets:
    """Frame targets of a kws_data.StreamSet (every stream, concatenated like its features)."""
    info, fps = streams.info, 1 / streams.info["frame_shift_s"]
    unknown, silence = classes.index("unknown"), classes.index("silence")
    frames = np.full(streams.features.shape[1], silence, np.int64)
    regions = []
    for stream, label, start, end in streams.segments:
        offset, stop = int(streams.starts[stream]), int(streams.starts[stream + 1])
        first = offset + frame_of(int(start), info["frame_length"], info["frame_shift"])
        last = offset + frame_of(int(end) - 1, info["frame_length"], info["frame_shift"])

        def span(a, b, value):
            frames[max(a, offset) : min(b, stop)] = value

        if label == unknown:
            span(first, last + 1 + round(UNKNOWN_AFTER_END_S * fps), unknown)
            continue
        after = last + 1 + round(KEYWORD_AFTER_END_S * fps)
        if scheme == "aligned":
            span(first, after, IGNORE)
            span(last - round(KEYWORD_BEFORE_END_S * fps), after, label)
        else:
            span(first, after, IGNORE)
            regions.append((label, first, min(after, stop) - 1))
    return Targets(frames, np.array(regions, np.int64).reshape(-1, 3))


def receptive_context(model) -> int:
    """Input frames a convolutional model needs before a window for its first output (a multiple of its stride)."""
    stride = total_stride(model)
    needed, scale = 0, 1
    for _, layer in causal_layers(model):
        needed += (layer.window - 1) * scale
        scale *= layer.stride
    return -(-needed // stride) * stride


class Lanes:
    """`lanes` endless feature sequences cut into consecutive windows of `window` frames, with their targets."""

    def __init__(self, streams, targets: Targets, lanes: int, window: int, rng: np.random.Generator):
        order = rng.permutation(len(streams))
        per_lane = np.array_split(order, min(lanes, len(streams)))
        self.features = [np.concatenate([streams.stream(i) for i in idx], axis=1).astype(np.float32) for idx in per_lane]
        pieces = [[(int(streams.starts[i]), int(streams.starts[i + 1])) for i in idx] for idx in per_lane]
        self.targets = [np.concatenate([targets.frames[a:b] for a, b in p]) for p in pieces]
        self.regions = []
        for p in pieces:  # keyword regions, in each lane's own frame numbers
            lane, offset = [], 0
            for a, b in p:
                inside = targets.keyword_regions[(targets.keyword_regions[:, 1] >= a) & (targets.keyword_regions[:, 2] < b)]
                lane.append(inside - np.array([0, a - offset, a - offset]))
                offset += b - a
            self.regions.append(np.concatenate(lane) if lane else np.zeros((0, 3), np.int64))
        self.window = window
        self.steps = min(f.shape[1] for f in self.features) // window

    def batch(self, step: int, context: int) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
        """[lanes, n_mels, context + window] features (zeros before a lane's start), [lanes, window] targets,
        and each lane's keyword regions relative to the window."""
        a, b = step * self.window, (step + 1) * self.window
        xs = []
        for f in self.features:
            x = f[:, max(0, a - context) : b]
            xs.append(np.pad(x, ((0, 0), (context + b - a - x.shape[1], 0))))
        regions = [r[(r[:, 2] >= a) & (r[:, 2] < b)] - np.array([0, a, a]) for r in self.regions]
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack([t[a:b] for t in self.targets])), regions


def mask_frequencies(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each lane's window with FREQUENCY_MASKS random bands of up to MAX_MASKED_BINS mel bins set to its mean."""
    x = x.clone()
    for lane in range(x.shape[0]):
        for _ in range(FREQUENCY_MASKS):
            width = int(rng.integers(0, MAX_MASKED_BINS + 1))
            start = int(rng.integers(0, x.shape[1] - width + 1))
            x[lane, start : start + width] = x[lane].mean()
    return x


def run_window(model, x: torch.Tensor, carry, context: int, warmup: float = 1.0):
    """Logits [batch, classes, out frames] of the window after `context` frames, and what the next window needs."""
    if hasattr(model, "recurrent_state_names"):
        states = carry or model.get_init_states(x.shape[0])
        recurrent = {k: states[k] for k in model.recurrent_state_names()}
        caches = [states[k] for k in sorted(k for k in states if k.startswith("conv"))]
        logits, new = model.encode(x, recurrent, caches, warmup)
        return logits, {k: v.detach() for k, v in new.items()}
    logits = model(x)
    return logits[..., context // total_stride(model) :], None


def loss_of(logits: torch.Tensor, targets: torch.Tensor, regions: list[np.ndarray], stride: int) -> torch.Tensor:
    """Frame cross-entropy at the output rate, plus the max-pooling term for each keyword region that ends here."""
    frame_targets = targets[:, stride - 1 :: stride]
    weights = torch.ones(logits.shape[1])
    weights[:-2] = KEYWORD_WEIGHT  # the classes before `unknown` and `silence`
    loss = F.cross_entropy(logits, frame_targets, weight=weights, ignore_index=IGNORE)
    log_p = F.log_softmax(logits, dim=1)
    pooled = [log_p[lane, label, max(first, 0) // stride : last // stride + 1].max()
              for lane, r in enumerate(regions) for label, first, last in r.tolist()]
    if pooled:  # each region weighs as much as REGION_WEIGHT_S of labelled frames
        labelled = (frame_targets != IGNORE).sum().clamp(min=1)
        loss = loss - torch.stack(pooled).sum() * (REGION_WEIGHT_S * 100 / stride) / labelled
    return loss


@torch.no_grad()
def validation_loss(model, streams, targets: Targets) -> float:
    """Mean frame loss of the model run over each validation stream from a zero state (offline = streaming)."""
    model.eval()
    stride = total_stride(model)
    losses, weights = [], []
    for i in range(len(streams)):
        a, b = int(streams.starts[i]), int(streams.starts[i + 1])
        n = (b - a) // stride * stride
        x = torch.from_numpy(streams.stream(i)[:, :n].astype(np.float32))[None]
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        t = torch.from_numpy(targets.frames[a : a + n])[None]
        inside = targets.keyword_regions[(targets.keyword_regions[:, 1] >= a) & (targets.keyword_regions[:, 2] < a + n)]
        loss = loss_of(logits, t, [inside - np.array([0, a, a])], stride)
        losses.append(float(loss))
        weights.append(n)
    return float(np.average(losses, weights=weights))


class TrainingError(Exception):
    """A training run the user asked for that cannot start: the message says what to do."""


def train(name: str, data: Path, epochs: int, scheme: str = "aligned", seed: int = 0, threads: int = 2, lanes: int = 32,
          window_s: float = 4.0, lr: float = 3e-3, init: Path | None = None) -> tuple[torch.nn.Module, dict]:
    from ..calibration.kws_data import CLASSES, StreamSet, training_streams

    if epochs < 1:
        raise TrainingError(f"--epochs {epochs}: give at least 1")
    if not (data / "train.npz").is_file() or not (data / "val.npz").is_file():
        raise TrainingError(f"--data {data}: no train.npz and val.npz there: make them with "
                            f"python -m espdl_stream.calibration.kws_data --out {data}")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(name, seed, trained=False)
    if init is not None:  # after the random initialisation, so every later random draw is as in a fresh run
        try:
            load_weights(model, init)
        except WeightsError as e:
            raise TrainingError(f"--init {e}") from None
    stride, context = total_stride(model), 0 if hasattr(model, "recurrent_state_names") else receptive_context(model)
    window = int(window_s * 100) // stride * stride
    train_set, val_set = training_streams(data), StreamSet.load(data / "val.npz")
    train_targets, val_targets = (stream_targets(s, CLASSES, scheme) for s in (train_set, val_set))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    started, step, best = time.time(), 0, (np.inf, None, 0)
    for epoch in range(1, epochs + 1):
        model.train()
        lanes_now = Lanes(train_set, train_targets, lanes, window, rng)
        carry = None
        for k in range(lanes_now.steps):
            x, targets, regions = lanes_now.batch(k, context)
            x = mask_frequencies(x, rng)
            logits, carry = run_window(model, x, carry, context, warmup=min(1.0, step / (3 * lanes_now.steps)))
            loss = loss_of(logits, targets, regions, stride)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
        for group in optimizer.param_groups:  # exponential decay to FINAL_LR_SHARE of the start
            group["lr"] = lr * FINAL_LR_SHARE ** (epoch / epochs)
        val = validation_loss(model, val_set, val_targets)
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        print(f"epoch {epoch}: loss {loss.item():.3f}, val {val:.4f} ({time.time() - started:.0f} s)", flush=True)
    model.load_state_dict(best[1])
    summary = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "targets": scheme,
               "epochs": epochs, "best_epoch": best[2], "seconds": round(time.time() - started, 1),
               "val_loss": round(best[0], 4), "train_hours": round(train_set.seconds / 3600, 2), "seed": seed}
    if init is not None:
        summary["init"] = init.name
    return model.eval(), summary


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(prog="python -m espdl_stream.models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODEL_NAMES, default="tcn")
    parser.add_argument("--data", type=Path, default=Path("data/kws"))
    parser.add_argument("--targets", choices=("aligned", "maxpool"), default="aligned")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training streams")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, metavar="WEIGHTS",
                        help="start from these weights of the same model (default: a random initialisation)")
    parser.add_argument("--out", type=Path, help="default: models/weights/<model>.safetensors")
    args = parser.parse_args(argv)
    try:
        model, summary = train(args.model, args.data, args.epochs, args.targets, args.seed, args.threads, init=args.init)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or WEIGHTS_DIR / f"{args.model}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(out), metadata={"training": json.dumps(summary)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
