"""Run a streaming model on a PC: one stream (`StreamingSession`) or many sharing one model (`SessionManager`).

The model is the external-state streaming ONNX twin the exporter verifies (every StreamingCache an explicit
input/output, recurrent states too), run in ONNX Runtime: one InferenceSession for all streams, each stream
only its own state arrays. A chunk is [n_mels, chunk_frames] float32 features; `process` returns that chunk's
[classes, chunk_frames / stride] outputs. `KeywordSpotter` puts the keyword detector (export/detector.py) behind
either kind of session: chunks in, detections with times out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

from .detector import Detection, Detector, DetectorConfig
from .intake import INPUT_NAME, OUTPUT_NAME, from_torch
from .plan import StreamingPlan, plan_streaming, streaming_twin


@dataclass
class StreamStats:
    chunk_frames: int
    frames_per_second: float
    latencies_s: list[float] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return len(self.latencies_s)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_s or [0.0])
        audio_s = self.chunk_frames / self.frames_per_second
        return {
            "chunks": self.chunks,
            "total_s": round(float(lat.sum()), 6),
            "mean_ms": round(1e3 * float(lat.mean()), 4),
            "p95_ms": round(1e3 * float(np.percentile(lat, 95)), 4),
            "real_time_factor": round(float(lat.mean()) / audio_s, 6),  # compute time / audio time per chunk
        }


class StreamingModel:
    """The shared part: the streaming twin in one InferenceSession, and how its state is laid out."""

    def __init__(self, twin: onnx.ModelProto, plan: StreamingPlan, chunk: int, frames_per_second: float = 100.0,
                 threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(twin.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.plan, self.chunk, self.frames_per_second = plan, chunk, frames_per_second
        shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in twin.graph.input}
        self.n_mels = shapes[INPUT_NAME][1]
        self.state_shapes = {name: shape for name, shape in shapes.items() if name != INPUT_NAME}
        self.feedback = [(f"cache{k}_out", f"cache{k}_in") for k in range(len(plan.sites))] + list(plan.state_pairs)
        self.output_names = [OUTPUT_NAME] + [out for out, _ in self.feedback]

    @classmethod
    def from_torch(cls, model, n_mels: int, frames: int, chunk: int, frames_per_second: float = 100.0) -> "StreamingModel":
        offline = from_torch(model, n_mels, frames)
        plan = plan_streaming(offline.onnx, offline.layers).require_streamable()
        plan.check_chunk(chunk, frames)
        return cls(streaming_twin(plan, chunk), plan, chunk, frames_per_second)

    def zero_state(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float32) for name, shape in self.state_shapes.items()}


class StreamingSession:
    """One stream: zero state at the start and after reset(), one chunk at a time."""

    def __init__(self, model: StreamingModel):
        self.model = model
        self.state = model.zero_state()
        self._feed = {INPUT_NAME: np.zeros((1, model.n_mels, model.chunk), np.float32), **self.state}
        self.stats = StreamStats(model.chunk, model.frames_per_second)
        self.last_used = time.monotonic()

    def warm_up(self) -> None:
        """One run on zeros, so the first real chunk does not pay for ONNX Runtime's lazy setup; state untouched."""
        self.model.session.run(self.model.output_names, {INPUT_NAME: self._feed[INPUT_NAME], **self.model.zero_state()})

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if chunk.shape != (self.model.n_mels, self.model.chunk):
            raise ValueError(f"a chunk must be [{self.model.n_mels} mel bins, {self.model.chunk} frames], got {list(chunk.shape)}")
        self._feed[INPUT_NAME][0] = chunk
        start = time.perf_counter()
        outputs = self.model.session.run(self.model.output_names, self._feed)
        self.stats.latencies_s.append(time.perf_counter() - start)
        for (_, state_in), value in zip(self.model.feedback, outputs[1:]):
            self._feed[state_in] = value
        self.last_used = time.monotonic()
        return outputs[0][0]

    def reset(self) -> None:
        self._feed.update(self.model.zero_state())
        self.stats = StreamStats(self.model.chunk, self.model.frames_per_second)


class SessionLimitError(RuntimeError):
    pass


class SessionManager:
    """Many independent streams sharing one model: create, process, close, idle cleanup, a session limit."""

    def __init__(self, model: StreamingModel, max_sessions: int = 64, idle_timeout_s: float = 300.0):
        self.model, self.max_sessions, self.idle_timeout_s = model, max_sessions, idle_timeout_s
        self._sessions: dict[str, StreamingSession] = {}
        self._lock = threading.Lock()
        self._next = 0

    def create(self) -> str:
        with self._lock:
            self.cleanup_locked()
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimitError(f"{len(self._sessions)} sessions open, the limit is {self.max_sessions}")
            self._next += 1
            sid = f"s{self._next}"
            self._sessions[sid] = StreamingSession(self.model)
            return sid

    def process(self, sid: str, chunk: np.ndarray) -> np.ndarray:
        session = self._sessions.get(sid)
        if session is None:
            raise KeyError(f"no open session {sid!r}")
        return session.process(chunk)

    def close(self, sid: str) -> dict:
        with self._lock:
            session = self._sessions.pop(sid)
        return session.stats.summary()

    def cleanup(self) -> list[str]:
        with self._lock:
            return self.cleanup_locked()

    def cleanup_locked(self) -> list[str]:
        now = time.monotonic()
        idle = [sid for sid, s in self._sessions.items() if now - s.last_used > self.idle_timeout_s]
        for sid in idle:
            del self._sessions[sid]
        return idle

    def __len__(self) -> int:
        return len(self._sessions)


class EmulatedSession:
    """The same interface over the written streaming .espdl in the ESP-DL emulator: what the chip computes."""

    def __init__(self, streaming_espdl, target: str | None = None, frames_per_second: float | None = None):
        from .emulator import Emulator  # here, so the float runtime never loads the emulator
        from .espdl_file import read_espdl

        espdl = read_espdl(streaming_espdl)
        self.emulator = Emulator(espdl, target or espdl.metadata.get("target"))
        x = espdl.inputs[INPUT_NAME]
        self.chunk, self.n_mels = x.dims[1], x.dims[2]
        self.output_exponent = espdl.outputs[OUTPUT_NAME].exponent
        self.pairs = self.emulator.state_pairs()
        fps = frames_per_second or float(espdl.metadata.get("frames_per_second", 100))
        self.stats = StreamStats(self.chunk, fps)
        self.reset()

    def reset(self) -> None:
        self.emulator.reset()
        self.states = {i: self.emulator.zeros(i) for _, i in self.pairs}
        self.stats = StreamStats(self.chunk, self.stats.frames_per_second)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        if chunk.shape != (self.n_mels, self.chunk):
            raise ValueError(f"a chunk must be [{self.n_mels} mel bins, {self.chunk} frames], got {list(chunk.shape)}")
        x = self.emulator.quantize(INPUT_NAME, np.asarray(chunk, np.float32).T[None])
        start = time.perf_counter()
        out = self.emulator.run({INPUT_NAME: x, **self.states})
        self.stats.latencies_s.append(time.perf_counter() - start)
        self.states = {state_in: out[state_out] for state_out, state_in in self.pairs}
        return (out[OUTPUT_NAME][0].astype(np.float32) * np.float32(2.0**self.output_exponent)).T


class KeywordSpotter:
    """One stream's keyword detections: a streaming session (float or emulated) followed by the detector."""

    def __init__(self, session: "StreamingSession | EmulatedSession", config: DetectorConfig):
        self.session, self.detector = session, Detector(config)

    def process(self, chunk: np.ndarray) -> list[Detection]:
        return self.detector.process(self.session.process(chunk))

    def reset(self) -> None:
        self.session.reset()
        self.detector.reset()
