"""Keyword-spotting data from offline voices and recorded speech: streams to train and judge detectors, and the
small sets shipped in calibration/data/.

    python -m espdl_stream.calibration.kws_data --out data/kws      # about 22 minutes on 2 busy cores

Debian packages it needs (none of them is needed by `export-espdl` itself):
    apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \\
                    sox pocketsphinx-testdata fillets-ng-data-cs

Classes as in Speech Commands: yes, no, up, down, left, right, on, off, stop, go, unknown (other speech), silence
(noise only). Words are spoken by synthetic voices (espeak-ng voices and variants, flite, festival), sped up or
slowed down (which moves the pitch too). Real recorded speech is pocketsphinx's English utterances (without
goforward.raw, which says "go") and fillets-ng's dialogue (about 106 minutes, nearly all Czech, two main speakers).
Voices and recordings are each split train/val/test by a hash of their name: nothing of the test split is heard in
training or used to choose the detector.

A stream is a bed of noise (white, pink, brown, or babble cut from the split's recordings; sometimes none at all)
with segments at random places: a keyword, another word, or an excerpt of recorded speech, each at its own SNR
against the bed, separated by random gaps (sometimes digital silence). Every segment's class and sample span is
kept, so training can build frame targets and evaluation can score detections. Written to --out (not committed):

    train.npz, val.npz       streams for training and for choosing the detector (SNR 0-30 dB, some without noise)
    train_more_voices.npz    2 more hours of training streams spoken by 144 more voices (espeak-ng's other
                             variants, training only), whose words include every near-miss word of each voice
    test_keywords.npz        held-out streams with about 1,000 keywords of test voices, every segment at 10 dB SNR
    test_negative.npz        over an hour without a keyword at 10 dB SNR: every test recording once, other words of
                             test voices, noise

and it refreshes calibration/data/: `calibration.npz` (windows of real recorded speech, and synthetic clips) and
`kws_eval.npz` (1 s labelled clips of test voices, for the accuracy table of every export).
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
from .shipped import DATA, pack_features

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASSES = (*KEYWORDS, "unknown", "silence")
UNKNOWN, SILENCE = CLASSES.index("unknown"), CLASSES.index("silence")
UNKNOWN_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog",
    "happy", "house", "tree", "wow", "learn", "follow", "forward", "backward", "visual", "marvin", "sheila",
    "yet", "now", "cup", "town", "light", "bright", "own", "cough", "top", "goal", "yellow", "note", "open",
)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng 1.51's variants beyond those of `voices()`, for `more_training_voices()`
MORE_VARIANTS = (
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb",
    "david", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave", "announcer", "Henrique", "Hugo",
    "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda", "marcelo", "Marco", "Mario",
    "max", "Michael", "michel", "miguel", "Mike", "Mr", "Nguyen", "pablo", "paul", "pedro", "quincy", "RicishayMax",
    "RicishayMax2", "RicishayMax3", "rob", "robert", "steph", "steph2", "steph3", "Storm", "Tweaky", "zac", "anika",
    "AnxiousAndy", "grandpa", "klatt3", "klatt4", "klatt5", "klatt6", "m8", "norbert", "sandro", "shelby",
    "travis", "victor", "grandma",
)
# other words that sound like part of a keyword (stop/top, go/goal, yes/yet, up/cup, down/town, right/light,
# off/cough, on/own, no/now, no/note): the false alarms a detector must learn to refuse
NEAR_MISSES = ("top", "goal", "yet", "cup", "town", "light", "bright", "cough", "own", "now", "note")
SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
MORE_VOICES_HOURS = 2.0
FRAMES = 96  # the offline length the models export with
REAL_SPEECH = (Path("/usr/share/pocketsphinx/test/data"), Path("/usr/share/games/fillets-ng/sound"))
SAYS_A_KEYWORD = ("goforward.raw",)  # "go forward ten meters": not negative audio
EVAL_CLIPS_PER_CLASS = 84  # 1,008 clips


def split_of(name: str, test: int, val: int) -> str:
    """A stable split by a hash of the name: `test` and `val` tenths go to test and validation."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return "test" if bucket < test else "val" if bucket < test + val else "train"


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
    variants = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2")
    chosen = [Voice("espeak", name, split_of(name, 2, 1)) for name in (f"{b}+{v}" for b in ESPEAK_ACCENTS for v in variants)]
    chosen += [Voice("flite", v, s) for v, s in (("kal16", "train"), ("awb", "train"), ("slt", "train"),
                                                 ("kal", "val"), ("rms", "test"))]
    chosen += [Voice("festival", v, s) for v, s in (("voice_kal_diphone", "train"),
                                                    ("voice_cmu_us_slt_arctic_hts", "train"),
                                                    ("voice_ked_diphone", "test"))]
    return chosen


def more_training_voices() -> list[Voice]:
    """espeak-ng's other variants (each changes pitch, formants, breath or roughness), each on two accents:
    training voices only. None of these names is a voice of `voices()`, so none is heard in validation or test."""
    return [Voice("espeak", f"{ESPEAK_ACCENTS[(i + j * 3) % len(ESPEAK_ACCENTS)]}+{variant}", "train")
            for i, variant in enumerate(MORE_VARIANTS) for j in range(2)]


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


def _perturbed(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sped up or slowed down by resampling (speed and pitch together), then trimmed to its sound."""
    factor = rng.uniform(0.85, 1.15)
    return _trim(resample(word, SAMPLE_RATE, int(SAMPLE_RATE / factor)))


def active_rms(x: np.ndarray) -> float:
    """RMS over the 10 ms blocks within 30 dB of the loudest: a level that pauses inside speech do not lower."""
    blocks = x[: len(x) // 160 * 160].reshape(-1, 160) if len(x) >= 160 else x[None]
    power = np.mean(blocks**2, axis=1)
    return float(np.sqrt(np.mean(power[power >= power.max() * 1e-3]))) + 1e-12


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
    """Noise to mix under speech, at unit RMS: synthetic colours, and babble of 2-4 real talkers."""

    def __init__(self, recordings: list[np.ndarray]):
        self.recordings = [r for r in recordings if len(r) > CLIP_SAMPLES]

    def sample(self, rng: np.random.Generator, n: int = CLIP_SAMPLES) -> np.ndarray:
        if self.recordings and rng.random() < 0.5:
            noise = np.zeros(n)
            for _ in range(rng.integers(2, 5)):
                talker = np.concatenate([self.recordings[i] for i in rng.permutation(len(self.recordings))[:8]])
                talker = np.tile(talker, n // len(talker) + 1)
                start = rng.integers(len(talker) - n + 1)
                noise += talker[start : start + n]
        else:
            noise = _colored_noise(rng, n)
        return noise / (np.sqrt(np.mean(noise**2)) + 1e-9)


# ---------------------------------------------------------------- the word pool and the recordings of a split
@dataclass
class Utterance:
    label: int  # a keyword's class index, or UNKNOWN
    samples: np.ndarray
    voice: str


def word_pool(split: str, keyword_renders: int, other_words: int, workdir: Path, rng: np.random.Generator,
              speakers: list[Voice] | None = None, near_misses: bool = False) -> list[Utterance]:
    """Every voice of the split (or every one of `speakers`) says every keyword `keyword_renders` times and
    `other_words` other words (festival, slow and with few voices, half as often); with `near_misses`, also
    each of NEAR_MISSES once."""
    pool = []
    for voice in speakers or [v for v in voices() if v.split == split]:
        scale = 1 if voice.engine != "festival" else 0.5
        for label, word in enumerate(KEYWORDS):
            pool += [Utterance(label, speak(voice, word, workdir, rng), voice.key)
                     for _ in range(max(1, int(keyword_renders * scale)))]
        for _ in range(max(1, int(other_words * scale))):
            word = UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))]
            pool.append(Utterance(UNKNOWN, speak(voice, word, workdir, rng), voice.key))
        if near_misses:
            pool += [Utterance(UNKNOWN, speak(voice, word, workdir, rng), voice.key) for word in NEAR_MISSES]
    return pool


def read_recording(path: Path, workdir: Path) -> np.ndarray:
    if path.suffix == ".raw":  # pocketsphinx's raw files: 16 kHz, 16-bit little-endian mono
        return np.frombuffer(path.read_bytes(), "<i2").astype(np.float32) / 32768
    if path.suffix == ".ogg":  # -D: no dither, which sox adds at random by default (the data would differ every run)
        target = workdir / "r.wav"
        subprocess.run(["sox", "-D", str(path), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(target)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = target
    samples, rate = read_wav(path)
    return resample(samples, rate, SAMPLE_RATE)


def recording_paths() -> dict[str, list[Path]]:
    """Recorded speech files by split (about 50/10/40 train/val/test), without any that says a keyword."""
    files = sorted(p for root in REAL_SPEECH if root.exists() for p in root.rglob("*")
                   if p.suffix in (".wav", ".raw", ".ogg") and p.name not in SAYS_A_KEYWORD)
    split: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for p in files:
        split[split_of(str(p.relative_to(p.parents[2])), 4, 1)].append(p)
    return split


# ---------------------------------------------------------------- streams
@dataclass
class Segment:
    label: int  # keyword index or UNKNOWN (silence is where no segment is)
    start: int  # samples
    end: int


@dataclass
class StreamRecipe:
    seconds: float
    keyword_share: float  # of the segments
    recorded_share: float
    snr_db: tuple[float, float]
    noiseless: float = 0.0  # probability that a stream has no noise bed
    quiet_gaps: float = 0.0  # probability that a gap is digital silence


TRAIN_RECIPE = StreamRecipe(60.0, keyword_share=0.4, recorded_share=0.3, snr_db=(0, 30), noiseless=0.1, quiet_gaps=0.1)


def _gap(rng: np.random.Generator) -> int:
    return int(SAMPLE_RATE * np.clip(rng.exponential(0.9), 0.3, 5.0))


def compose_stream(recipe: StreamRecipe, pool: list[Utterance], recordings: list[np.ndarray], noise: NoiseBank,
                   rng: np.random.Generator, keywords: list[Utterance] | None = None) -> tuple[np.ndarray, list[Segment]]:
    """Audio (int16 values / 32768, as a device reads them) and its segments. With `keywords`, those are placed in
    order (each once) and the stream ends after the last; otherwise keywords are drawn from the pool."""
    n = int(recipe.seconds * SAMPLE_RATE) if keywords is None else 0
    pieces, segments, t = [], [], 0
    others = [u for u in pool if u.label == UNKNOWN]
    pool_keywords = [u for u in pool if u.label != UNKNOWN]
    queue = list(keywords or [])
    while (t < n) if keywords is None else bool(queue):
        t += _gap(rng)
        draw = rng.random()
        if draw < recipe.keyword_share:
            word = queue.pop(0) if keywords is not None else pool_keywords[rng.integers(len(pool_keywords))]
            audio, label = _perturbed(word.samples, rng), word.label
        elif draw < recipe.keyword_share + recipe.recorded_share and recordings:
            recording = recordings[rng.integers(len(recordings))]
            length = min(len(recording), int(SAMPLE_RATE * rng.uniform(1.0, 6.0)))
            start = rng.integers(len(recording) - length + 1)
            audio, label = recording[start : start + length], UNKNOWN
        else:
            audio, label = _perturbed(others[rng.integers(len(others))].samples, rng), UNKNOWN
        snr = rng.uniform(*recipe.snr_db)
        pieces.append((t, audio / active_rms(audio) * 10 ** (snr / 20)))
        segments.append(Segment(label, t, t + len(audio)))
        t += len(audio)
    total = max(n, t + _gap(rng))
    stream = np.zeros(total)
    for start, audio in pieces:
        stream[start : start + len(audio)] += audio
    return _finish(stream, segments, recipe, noise, rng), segments


def _finish(speech: np.ndarray, segments: list[Segment], recipe: StreamRecipe, noise: NoiseBank,
            rng: np.random.Generator) -> np.ndarray:
    """Noise bed at unit level (speech was scaled to its SNR against it), quiet gaps, a random volume, 16-bit."""
    stream = speech.copy()
    if rng.random() >= recipe.noiseless:
        bed = np.concatenate([noise.sample(rng, min(60 * SAMPLE_RATE, len(stream) - i))
                              for i in range(0, len(stream), 60 * SAMPLE_RATE)])
        stream += bed
        edges = [0] + [x for s in segments for x in (s.start, s.end)] + [len(stream)]
        for start, end in zip(edges[::2], edges[1::2]):
            if end > start and rng.random() < recipe.quiet_gaps:
                stream[start:end] = 0.0
    peak = np.abs(stream).max() + 1e-9
    volume = min(10 ** rng.uniform(-2.0, -0.6) / active_rms(stream), 0.95 / peak)
    return np.round(stream * volume * 32767).astype(np.int16).astype(np.float32) / 32768


def negative_stream(pool: list[Utterance], recordings: list[np.ndarray], noise: NoiseBank, rng: np.random.Generator,
                    min_seconds: float) -> tuple[np.ndarray, list[Segment]]:
    """No keyword: every recording once, whole, in order, with other words between, until at least `min_seconds`
    (other words and noise pad it out when the recordings are used up)."""
    others = [u for u in pool if u.label == UNKNOWN]
    pieces, segments, t, k = [], [], 0, 0
    while k < len(recordings) or t < min_seconds * SAMPLE_RATE:
        t += _gap(rng)
        if k < len(recordings) and rng.random() < 0.7:
            audio, k = recordings[k], k + 1
        else:
            audio = _perturbed(others[rng.integers(len(others))].samples, rng)
        pieces.append((t, audio / active_rms(audio) * 10 ** (10 / 20)))
        segments.append(Segment(UNKNOWN, t, t + len(audio)))
        t += len(audio)
    stream = np.zeros(t + _gap(rng))
    for start, audio in pieces:
        stream[start : start + len(audio)] += audio
    return _finish(stream, segments, StreamRecipe(0, 0, 0, (10, 10)), noise, rng), segments


@dataclass
class StreamSet:
    """Streams as one feature array [n_mels, frames] with stream boundaries, and their segments."""

    features: np.ndarray
    starts: np.ndarray  # frame offset of each stream, and the end
    segments: np.ndarray  # [n, 4]: stream, label, start sample, end sample
    info: dict

    def __len__(self) -> int:
        return len(self.starts) - 1

    def stream(self, i: int) -> np.ndarray:
        return self.features[:, self.starts[i] : self.starts[i + 1]]

    def stream_segments(self, i: int) -> np.ndarray:
        return self.segments[self.segments[:, 0] == i][:, 1:]

    @property
    def seconds(self) -> float:
        return self.features.shape[1] * self.info["frame_shift_s"]

    def save(self, path: Path) -> None:
        np.savez_compressed(path, features=self.features.astype(np.float16), starts=self.starts,
                            segments=self.segments, info=json.dumps(self.info))

    @classmethod
    def load(cls, path: Path) -> "StreamSet":
        data = np.load(path)
        return cls(data["features"], data["starts"], data["segments"], json.loads(str(data["info"])))

    @classmethod
    def join(cls, sets: list["StreamSet"]) -> "StreamSet":
        """The streams of several sets (same front end) as one set."""
        offsets = np.cumsum([0] + [len(s) for s in sets])
        frames = np.cumsum([0] + [s.features.shape[1] for s in sets])
        starts = np.concatenate([s.starts[:-1] + f for s, f in zip(sets, frames)] + [frames[-1:]])
        segments = np.concatenate([s.segments + np.array([o, 0, 0, 0]) for s, o in zip(sets, offsets)])
        info = {**sets[0].info, "voices": sorted({v for s in sets for v in s.info.get("voices", [])})}
        info.pop("seconds", None)  # the joined length is the `seconds` property
        return cls(np.concatenate([s.features for s in sets], axis=1), starts, segments, info)


def training_streams(data: Path) -> StreamSet:
    """Every training set in `data`: train.npz, and train_more_voices.npz where it was made."""
    return StreamSet.join([StreamSet.load(p) for p in (data / "train.npz", data / "train_more_voices.npz") if p.is_file()])


def stream_set(streams: list[tuple[np.ndarray, list[Segment]]], config: FbankConfig, info: dict) -> StreamSet:
    features = [fbank(audio, config) for audio, _ in streams]
    starts = np.concatenate([[0], np.cumsum([f.shape[1] for f in features])]).astype(np.int64)
    segments = np.array([(i, s.label, s.start, s.end) for i, (_, segs) in enumerate(streams) for s in segs],
                        np.int64).reshape(-1, 4)
    info = {**info, "frame_shift_s": config.frame_shift_ms / 1000, "frame_length": config.frame_length,
            "frame_shift": config.frame_shift, "seconds": round(sum(len(a) for a, _ in streams) / SAMPLE_RATE, 1)}
    return StreamSet(np.concatenate(features, axis=1).astype(np.float16), starts, segments, info)


# ---------------------------------------------------------------- 1 s clips (the shipped evaluation set)
def make_clip(speech: np.ndarray | None, noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 s: the word at a random place, sped up or slowed down, under noise at 0-25 dB SNR (or noise alone)."""
    clip = np.zeros(CLIP_SAMPLES)
    if speech is not None:
        speech = _perturbed(speech, rng)
        if len(speech) > CLIP_SAMPLES - 800:
            speech = resample(speech, len(speech), CLIP_SAMPLES - 800)
        start = rng.integers(0, CLIP_SAMPLES - len(speech) + 1)
        clip[start : start + len(speech)] = speech / active_rms(speech)
        snr_db = rng.uniform(0, 25)
        clip += noise * np.sqrt(np.mean(clip**2) / 10 ** (snr_db / 10))
    else:
        clip += noise * rng.uniform(0.01, 0.3)
    return (clip / (np.abs(clip).max() + 1e-9) * rng.uniform(0.05, 0.9)).astype(np.float32)


def eval_clips(pool: list[Utterance], noise: NoiseBank, rng: np.random.Generator, config: FbankConfig) -> dict:
    """EVAL_CLIPS_PER_CLASS labelled 1 s clips per class from the test pool."""
    features, labels, names = [], [], []
    for label in range(len(CLASSES)):
        candidates = [u for u in pool if u.label == label] if label != SILENCE else []
        for _ in range(EVAL_CLIPS_PER_CLASS):
            word = candidates[rng.integers(len(candidates))] if candidates else None
            clip = make_clip(None if word is None else word.samples, noise.sample(rng), rng)
            features.append(fbank(clip, config)[:, :FRAMES])
            labels.append(label)
            names.append("" if word is None else word.voice)
    return {"features": np.stack(features), "labels": np.array(labels, np.int64), "voices": np.array(names)}


def ship_small_sets(pool: list[Utterance], train_recordings: list[np.ndarray], test_noise: NoiseBank,
                    rng: np.random.Generator, config: FbankConfig) -> dict:
    """calibration.npz: windows of recorded training speech and synthetic clips; kws_eval.npz: test-voice clips."""
    DATA.mkdir(parents=True, exist_ok=True)
    windows = []
    for recording in train_recordings:
        f = fbank(recording, config)
        windows += [f[:, i : i + FRAMES] for i in range(0, f.shape[1] - FRAMES + 1, FRAMES)]
    windows = [windows[i] for i in rng.permutation(len(windows))[:96]]
    train_noise = NoiseBank(train_recordings)
    words = [pool[i] for i in rng.permutation(len(pool))[:32]]
    synthetic = [fbank(make_clip(u.samples, train_noise.sample(rng), rng), config)[:, :FRAMES] for u in words]
    calibration = np.concatenate([np.stack(windows), np.stack(synthetic)]).astype(np.float16)
    np.savez_compressed(DATA / "calibration.npz", features=calibration,
                        source=np.array(["recorded"] * len(windows) + ["synthetic"] * len(synthetic)))
    return {"calibration_recorded": len(windows), "calibration_synthetic": len(synthetic)}


def write_streams(path: Path, split: str, pool: list[Utterance], recordings: list[np.ndarray], noise: NoiseBank,
                  rng: np.random.Generator, minutes: float, config: FbankConfig) -> None:
    """One-minute training-recipe streams from a split's words and recordings, saved as a StreamSet."""
    streams = [compose_stream(TRAIN_RECIPE, pool, recordings, noise, rng) for _ in range(int(minutes))]
    stream_set(streams, config, {"split": split, "voices": sorted({u.voice for u in pool})}).save(path)


def generate(out: Path, seed: int, config: FbankConfig = FbankConfig(), hours: float = 4.0) -> dict:
    for tool in ("espeak-ng", "flite", "text2wave", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"kws_data: {tool} is missing: apt-get install espeak-ng flite festival festvox-kallpc16k "
                     f"festvox-kdlpc16k festvox-us-slt-hts sox pocketsphinx-testdata fillets-ng-data-cs")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recordings = {split: [read_recording(p, workdir) for p in paths] for split, paths in recording_paths().items()}
        for split, recs in recordings.items():
            summary[f"recorded_{split}_minutes"] = round(sum(len(r) for r in recs) / SAMPLE_RATE / 60, 1)
        for split, minutes in (("train", 60 * hours), ("val", 60)):
            pool = word_pool(split, 6 if split == "train" else 3, 60, workdir, rng)
            noise = NoiseBank(recordings[split])
            write_streams(out / f"{split}.npz", split, pool, recordings[split], noise, rng, minutes, config)
            summary[f"{split}_minutes"] = minutes
            if split == "train":
                summary.update(ship_small_sets(pool, recordings["train"], noise, rng, config))
        test_pool = word_pool("test", 4, 60, workdir, rng)
        noise = NoiseBank(recordings["test"])
        keywords = [test_pool[i] for i in rng.permutation(len(test_pool)) if test_pool[i].label != UNKNOWN]
        ten_db = StreamRecipe(0, keyword_share=0.5, recorded_share=0.25, snr_db=(10, 10))
        streams = [compose_stream(ten_db, test_pool, recordings["test"], noise, rng, keywords[i : i + 100])
                   for i in range(0, len(keywords), 100)]
        info = {"split": "test", "voices": sorted({u.voice for u in test_pool}), "snr_db": 10}
        positives = stream_set(streams, config, info)
        positives.save(out / "test_keywords.npz")
        negatives = stream_set([negative_stream(test_pool, recordings["test"], noise, rng, 3660)], config,
                               {**info, "recorded_seconds": round(sum(len(r) for r in recordings["test"]) / SAMPLE_RATE, 1)})
        negatives.save(out / "test_negative.npz")
        clips = eval_clips(test_pool, noise, rng, config)
        np.savez_compressed(DATA / "kws_eval.npz", **pack_features(clips["features"]), labels=clips["labels"],
                            voices=clips["voices"], classes=np.array(CLASSES))
        summary.update(test_keywords=int((positives.segments[:, 1] != UNKNOWN).sum()),
                       test_keyword_minutes=round(positives.seconds / 60, 1),
                       test_negative_minutes=round(negatives.seconds / 60, 1), eval_clips=len(clips["labels"]))
        summary.update(more_voices_set(out, seed, recordings["train"], workdir, config))
    summary["seconds"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def more_voices_set(out: Path, seed: int, recordings: list[np.ndarray], workdir: Path, config: FbankConfig,
                    hours: float = MORE_VOICES_HOURS) -> dict:
    """train_more_voices.npz: training streams spoken by `more_training_voices()`. Its own random generator, so the
    other sets stay what they were before it existed."""
    rng = np.random.default_rng([seed, 1])
    speakers = more_training_voices()
    pool = word_pool("train", 3, 30, workdir, rng, speakers, near_misses=True)
    write_streams(out / "train_more_voices.npz", "train", pool, recordings, NoiseBank(recordings), rng, 60 * hours, config)
    return {"train_more_voices_minutes": 60 * hours, "train_more_voices": len(speakers)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m espdl_stream.calibration.kws_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/kws"), help="where the stream sets go")
    parser.add_argument("--hours", type=float, default=4.0, help="hours of training streams")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(generate(args.out, args.seed, hours=args.hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
