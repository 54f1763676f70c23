"""A 12-class keyword-spotting set and a real-speech calibration set, generated offline.

    python -m espdl_stream.calibration.kws_data --out data/kws      # about two minutes on 2 cores

Debian packages it needs (none of them is needed by `export-espdl` itself):
    apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \\
                    sox pocketsphinx-testdata fillets-ng-data-cs

Classes as in Speech Commands: yes, no, up, down, left, right, on, off, stop, go, unknown (other words), silence
(noise only). Every clip is 1 s at 16 kHz: a word spoken by one synthetic voice (espeak-ng voices and variants,
flite voices, festival voices), shifted in time, sped up or slowed down (which moves the pitch too), mixed with
noise at 0-25 dB SNR: white, pink or brown noise, or babble cut from real recordings (pocketsphinx's English
utterances, fillets-ng's Czech dialogue). Voices are split so that no test voice is heard in training.

It writes train/val/test .npz feature sets (not committed: tens of MB), and refreshes the two small sets shipped in
calibration/data/: `calibration.npz` (real recorded speech, and synthetic speech for the rest) and `kws_eval.npz`
(a stratified sample of the test voices, for the accuracy table of every export).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frontend import FbankConfig, fbank
from .loaders import read_wav, resample

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASSES = (*KEYWORDS, "unknown", "silence")
UNKNOWN_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog",
    "happy", "house", "tree", "wow", "learn", "follow", "forward", "backward", "visual", "marvin", "sheila",
    "yet", "now", "cup", "town", "light", "bright", "own", "cough", "top", "goal", "yellow", "note", "open",
)
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
FRAMES = 96  # the offline length the models export with
REAL_SPEECH = (Path("/usr/share/pocketsphinx/test/data"), Path("/usr/share/games/fillets-ng/sound"))
SHIPPED = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak, flite, festival
    name: str
    split: str  # train, val, test

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


def voices() -> list[Voice]:
    """Every synthetic voice, each in one split: test voices are never heard in training."""
    espeak_bases = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
                    "en-us-nyc")
    variants = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2")
    found = [f"{b}+{v}" for b in espeak_bases for v in variants]
    chosen = []
    for name in found:  # a stable split by a hash of the voice name: about 70/10/20
        bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
        chosen.append(Voice("espeak", name, "test" if bucket < 2 else "val" if bucket < 3 else "train"))
    chosen += [Voice("flite", v, s) for v, s in (("kal16", "train"), ("awb", "train"), ("slt", "train"),
                                                 ("kal", "val"), ("rms", "test"))]
    chosen += [Voice("festival", v, s) for v, s in (("voice_kal_diphone", "train"),
                                                    ("voice_cmu_us_slt_arctic_hts", "train"),
                                                    ("voice_ked_diphone", "test"))]
    return chosen


def speak(voice: Voice, word: str, workdir: Path, rng: np.random.Generator) -> np.ndarray:
    """One utterance of `word` as float samples at 16 kHz."""
    out = workdir / "w.wav"
    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(rng.integers(130, 210))), "-p", str(int(rng.integers(25, 80))),
               "-w", str(out), word]
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "-t", word, "-o", str(out)]
    else:
        cmd = ["text2wave", "-eval", f"({voice.name})", "-o", str(out)]
    subprocess.run(cmd, input=word.encode() if voice.engine == "festival" else None, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples, rate = read_wav(out)
    return resample(samples, rate, SAMPLE_RATE)


def _trim(x: np.ndarray) -> np.ndarray:
    level = np.abs(x)
    active = np.nonzero(level > 0.02 * (level.max() + 1e-9))[0]
    return x[active[0] : active[-1] + 1] if len(active) else x


def _colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    white = rng.standard_normal(n)
    color = rng.choice(["white", "pink", "brown"])
    if color == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    spectrum /= np.sqrt(f) if color == "pink" else f
    return np.fft.irfft(spectrum, n)


class NoiseBank:
    """Noise to mix under the words: synthetic colours, and babble from real recorded speech."""

    def __init__(self, recordings: list[np.ndarray]):
        self.recordings = [r for r in recordings if len(r) > CLIP_SAMPLES]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.recordings and rng.random() < 0.5:
            talkers = [self.recordings[rng.integers(len(self.recordings))] for _ in range(rng.integers(2, 5))]
            babble = sum(t[(s := rng.integers(len(t) - CLIP_SAMPLES)) : s + CLIP_SAMPLES] for t in talkers)
            noise = babble
        else:
            noise = _colored_noise(rng, CLIP_SAMPLES)
        return noise / (np.sqrt(np.mean(noise**2)) + 1e-9)


def make_clip(speech: np.ndarray | None, noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 s: the word at a random place, sped up or slowed down, under noise at 0-25 dB SNR (or noise alone)."""
    clip = np.zeros(CLIP_SAMPLES)
    if speech is not None:
        factor = rng.uniform(0.85, 1.15)  # resampling: speed and pitch together
        speech = _trim(resample(speech, SAMPLE_RATE, int(SAMPLE_RATE / factor)))
        if len(speech) > CLIP_SAMPLES - 800:
            speech = resample(speech, len(speech), CLIP_SAMPLES - 800)
        start = rng.integers(0, CLIP_SAMPLES - len(speech) + 1)
        clip[start : start + len(speech)] = speech / (np.sqrt(np.mean(speech**2)) + 1e-9)
        snr_db = rng.uniform(0, 25)
        clip += noise * np.sqrt(np.mean(clip**2) / 10 ** (snr_db / 10))
    else:
        clip += noise * rng.uniform(0.01, 0.3)
    return (clip / (np.abs(clip).max() + 1e-9) * rng.uniform(0.05, 0.9)).astype(np.float32)


def features(clip: np.ndarray, config: FbankConfig) -> np.ndarray:
    return fbank(clip, config)[:, :FRAMES]


def read_recording(path: Path, workdir: Path) -> np.ndarray:
    if path.suffix == ".raw":  # pocketsphinx's raw files: 16 kHz, 16-bit little-endian mono
        return np.frombuffer(path.read_bytes(), "<i2").astype(np.float32) / 32768
    if path.suffix == ".ogg":
        target = workdir / "r.wav"
        subprocess.run(["sox", str(path), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(target)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = target
    samples, rate = read_wav(path)
    return resample(samples, rate, SAMPLE_RATE)


def real_recordings(workdir: Path, limit: int, rng: np.random.Generator) -> list[np.ndarray]:
    files = sorted(p for root in REAL_SPEECH if root.exists() for p in root.rglob("*") if p.suffix in (".wav", ".raw", ".ogg"))
    english = [p for p in files if "pocketsphinx" in str(p)]
    czech = [p for p in files if "fillets" in str(p)]
    picked = english + [czech[i] for i in rng.permutation(len(czech))[: max(0, limit - len(english))]]
    return [read_recording(p, workdir) for p in picked]


def generate(out: Path, per_voice: int, seed: int, config: FbankConfig = FbankConfig()) -> dict:
    for tool in ("espeak-ng", "flite", "text2wave", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"kws_data: {tool} is missing: apt-get install espeak-ng flite festival festvox-kallpc16k "
                     f"festvox-kdlpc16k festvox-us-slt-hts sox pocketsphinx-testdata fillets-ng-data-cs")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recordings = real_recordings(workdir, 400, rng)
        noise = NoiseBank(recordings)
        sets: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in ("train", "val", "test")}
        for voice in voices():
            # festival is slow and there are few of its voices: fewer renders each
            renders = per_voice if voice.engine != "festival" else max(1, per_voice // 2)
            feats, labels, names = sets[voice.split]
            for label, word in enumerate(CLASSES):
                for _ in range(renders * (3 if word == "unknown" else 1)):
                    if word == "silence":
                        speech = None
                    else:
                        spoken = UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))] if word == "unknown" else word
                        speech = speak(voice, spoken, workdir, rng)
                    feats.append(features(make_clip(speech, noise.sample(rng), rng), config))
                    labels.append(label)
                    names.append(voice.key)
        summary = {}
        for split, (feats, labels, names) in sets.items():
            np.savez_compressed(out / f"{split}.npz", features=np.stack(feats).astype(np.float16),
                                labels=np.array(labels, np.int64), voices=np.array(names))
            summary[split] = len(labels)
        shipped = ship_small_sets(out, recordings, rng, config)
    summary.update(shipped, seconds=round(time.time() - started, 1))
    return summary


def ship_small_sets(out: Path, recordings: list[np.ndarray], rng: np.random.Generator, config: FbankConfig) -> dict:
    """The few-MB sets in calibration/data/: real-speech calibration windows, and a stratified eval sample."""
    SHIPPED.mkdir(parents=True, exist_ok=True)
    windows = []
    for recording in recordings:
        f = fbank(recording, config)
        windows += [f[:, i : i + FRAMES] for i in range(0, f.shape[1] - FRAMES + 1, FRAMES)]
    windows = [windows[i] for i in rng.permutation(len(windows))[:96]]
    train = np.load(out / "train.npz")
    synthetic = train["features"][rng.permutation(len(train["labels"]))[:32]].astype(np.float32)
    calibration = np.concatenate([np.stack(windows), synthetic]).astype(np.float16)
    np.savez_compressed(SHIPPED / "calibration.npz", features=calibration,
                        source=np.array(["recorded"] * len(windows) + ["synthetic"] * len(synthetic)))
    test = np.load(out / "test.npz")
    keep = np.concatenate([rng.permutation(np.nonzero(test["labels"] == c)[0])[:30] for c in range(len(CLASSES))])
    np.savez_compressed(SHIPPED / "kws_eval.npz", features=test["features"][keep], labels=test["labels"][keep],
                        voices=test["voices"][keep], classes=np.array(CLASSES))
    return {"calibration_recorded": len(windows), "calibration_synthetic": len(synthetic), "eval": int(len(keep))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m espdl_stream.calibration.kws_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/kws"), help="where the train/val/test sets go")
    parser.add_argument("--per-voice", type=int, default=3, help="renders of each class per voice")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(generate(args.out, args.per_voice, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
