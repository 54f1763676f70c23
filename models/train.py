"""Train a shipped model on the keyword-spotting set; the weights are what `export-espdl` uses by default.

    python -m espdl_stream.models.train --model tcn --data data/kws      # data from calibration/kws_data.py

The head is per frame: the model emits class logits for every output frame, so the streaming model gives a
posterior with every chunk. A clip's decision is the time-average of its frame logits (models.clip_decision); the
running average after the last chunk of a stream is exactly the offline decision. Fixed seeds and two threads
make a run reproducible on the same machine; the best epoch on the validation voices is kept.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import MODEL_NAMES, build_model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _logits(model, x: torch.Tensor, warmup: float = 1.0) -> torch.Tensor:
    out = model(x, warmup=warmup) if hasattr(model, "recurrent_state_names") else model(x)
    return (out[0] if isinstance(out, tuple) else out).mean(dim=-1)


def _load(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.load(path)
    return torch.from_numpy(data["features"].astype(np.float32)), torch.from_numpy(data["labels"])


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    model.eval()
    predicted = torch.cat([_logits(model, x[i : i + batch]).argmax(-1) for i in range(0, len(x), batch)])
    return float((predicted == y).float().mean())


def train(name: str, data: Path, seconds: float, seed: int = 0, batch: int = 64, lr: float = 3e-3) -> tuple[torch.nn.Module, dict]:
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = build_model(name, seed, trained=False)
    x_train, y_train = _load(data / "train.npz")
    x_val, y_val = _load(data / "val.npz")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps_per_epoch = (len(x_train) + batch - 1) // batch
    started, epoch, step, best = time.time(), 0, 0, (-1.0, None, 0)
    warmup_steps = 3 * steps_per_epoch
    while time.time() - started < seconds:
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(x_train), batch):
            idx = order[i : i + batch]
            x = x_train[idx]
            shift = int(torch.randint(-8, 9, (1,)))  # the word may sit anywhere in the window
            x = torch.roll(x, shift, dims=-1)
            loss = F.cross_entropy(_logits(model, x, warmup=min(1.0, step / warmup_steps)), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
        for group in optimizer.param_groups:
            group["lr"] *= 0.92
        epoch += 1
        val = accuracy(model, x_val, y_val)
        if val > best[0]:
            best = (val, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        print(f"epoch {epoch}: loss {loss.item():.3f}, val {val:.3f} ({time.time() - started:.0f} s)", flush=True)
    model.load_state_dict(best[1])
    x_test, y_test = _load(data / "test.npz")
    summary = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "epochs": epoch,
               "best_epoch": best[2], "seconds": round(time.time() - started, 1), "val_accuracy": round(best[0], 4),
               "test_accuracy": round(accuracy(model, x_test, y_test), 4), "train_clips": len(x_train), "seed": seed}
    return model.eval(), summary


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(prog="python -m espdl_stream.models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODEL_NAMES, default="tcn")
    parser.add_argument("--data", type=Path, default=Path("data/kws"))
    parser.add_argument("--seconds", type=float, default=240, help="training time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: models/weights/<model>.safetensors")
    args = parser.parse_args(argv)
    model, summary = train(args.model, args.data, args.seconds, args.seed)
    out = args.out or WEIGHTS_DIR / f"{args.model}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(out), metadata={"training": json.dumps(summary)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
