"""Speech activity from silero-vad 6.2.3's ONNX model (MIT; shipped in its wheel), run on the
project's ONNX Runtime directly: no torch import, one thread. Pure code (no Ray).

The model reads 512-sample windows (32 ms at 16 kHz) with the 64 samples before each as context and
carries an LSTM state from window to window, so a stream's state lives across its chunks
(`SpeechStream`, one per session, kept by the ingress). Each window's probability is smoothed with
silero's own hysteresis (speech starts at `threshold`, ends under `threshold - neg_margin` held for
`min_silence_s`), and windows are grouped into blocks of `block_windows`: what the risk engine reads.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio.pcm import SAMPLE_RATE
from contracts import SpeechBlock
from settings import AudioConfig

WINDOW = 512  # samples per model call at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees with each one
WINDOW_S = WINDOW / SAMPLE_RATE


def silero_model_path(name: str) -> Path:
    """The ONNX file inside the installed silero-vad wheel, found without importing the package (its
    __init__ imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed (pip install silero-vad==6.2.3)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the silero-vad package")
    return path


class SileroVad:
    """One ONNX Runtime session of the model; safe to share between streams and threads (each call
    passes its stream's state in and gets it back)."""

    def __init__(self, model: str = "silero_vad_16k_op15.onnx", threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-wait on shared cores
        self.session = ort.InferenceSession(str(silero_model_path(model)), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def window_probabilities(self, samples: np.ndarray, state: np.ndarray, context: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech probability of each whole 512-sample window of `samples` (float32 in -1..1), with the
        stream's (state, context) before them; returns (probabilities, state, context) after them."""
        count = len(samples) // WINDOW
        probabilities = np.empty(count, dtype=np.float32)
        for i in range(count):
            window = np.concatenate([context, samples[i * WINDOW:(i + 1) * WINDOW]])[None, :]
            out, state = self.session.run(None, {"input": window, "state": state, "sr": self._sr})
            probabilities[i] = out[0, 0]
            context = window[0, -CONTEXT:]
        return probabilities, state, context


@dataclass(frozen=True)
class Windows:
    """One feed's windows: the start time of the first, each probability and smoothed speech flag."""

    t: float
    probabilities: np.ndarray
    speech: np.ndarray  # bool


class SpeechStream:
    """One session's audio as the model hears it, chunk after chunk. Not thread-safe: the caller
    feeds one chunk of a stream at a time."""

    def __init__(self, vad: SileroVad, cfg: AudioConfig):
        self.vad = vad
        self.cfg = cfg
        self.reset()
        self.last_start: float | None = None  # capture time of the last chunk fed

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.leftover = np.zeros(0, dtype=np.float32)  # samples short of a whole window
        self.next_t: float | None = None  # where the audio fed so far ends (capture clock)
        self.speaking = False
        self.silence_s = 0.0

    def position(self, t: float) -> str:
        """Where a chunk starting at `t` falls: "next" (continues the stream), "duplicate" (starts
        where the last one did: a retry), "late" (inside audio already heard), or "gap"."""
        if self.next_t is None:
            return "next"
        if self.last_start is not None and abs(t - self.last_start) < 1e-6:
            return "duplicate"
        if t < self.next_t - self.cfg.stream_gap_s:
            return "late"
        return "next" if t <= self.next_t + self.cfg.stream_gap_s else "gap"

    def windows(self, pcm: bytes, t: float) -> Windows:
        """Run the model over a chunk's samples (int16 little-endian) captured from `t`. A chunk that
        does not continue the stream (a gap, or the first) starts the model afresh."""
        if self.position(t) != "next":
            self.reset()
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        start = t - len(self.leftover) / SAMPLE_RATE
        samples = np.concatenate([self.leftover, samples]) if len(self.leftover) else samples
        whole = len(samples) // WINDOW * WINDOW
        probabilities, self.state, self.context = self.vad.window_probabilities(samples[:whole], self.state,
                                                                                self.context)
        self.leftover = samples[whole:].copy()
        self.next_t = t + (len(pcm) // 2) / SAMPLE_RATE
        self.last_start = t
        return Windows(start, probabilities, self._smooth(probabilities))

    def _smooth(self, probabilities: np.ndarray) -> np.ndarray:
        """silero's hysteresis: speech from `threshold` up, until under threshold - neg_margin for
        `min_silence_s`."""
        speech = np.zeros(len(probabilities), dtype=bool)
        low = self.cfg.threshold - self.cfg.neg_margin
        for i, p in enumerate(probabilities):
            if p >= self.cfg.threshold:
                self.speaking, self.silence_s = True, 0.0
            elif self.speaking and p < low:
                self.silence_s += WINDOW_S
                if self.silence_s >= self.cfg.min_silence_s:
                    self.speaking, self.silence_s = False, 0.0
            speech[i] = self.speaking
        return speech

    def feed(self, pcm: bytes, t: float) -> list[SpeechBlock]:
        """A chunk's speech blocks (`block_windows` windows each, the last one maybe shorter)."""
        return blocks(self.windows(pcm, t), self.cfg.block_windows)


def blocks(windows: Windows, per_block: int) -> list[SpeechBlock]:
    out = []
    for first in range(0, len(windows.probabilities), per_block):
        p = windows.probabilities[first:first + per_block]
        s = windows.speech[first:first + per_block]
        out.append(SpeechBlock(windows.t + first * WINDOW_S, len(p) * WINDOW_S, float(s.mean()), float(p.mean())))
    return out
