"""Audio evidence: the latest seconds of a session's audio held in memory (`AudioRing`, in the
session's actor; pure Python, no numpy), the clip cut from it when an audio event opens, and the
waveform the report draws from a clip. Pure code (no Ray)."""
from __future__ import annotations

from audio.pcm import SAMPLE_BYTES, SAMPLE_RATE

BYTES_PER_S = SAMPLE_RATE * SAMPLE_BYTES


class AudioRing:
    """At most `max_s` seconds of the newest audio, with the time of its first sample. A gap in the
    stream is filled with silence (so times stay exact); a gap longer than the ring starts it anew."""

    def __init__(self, max_s: float):
        self.max_bytes = int(max_s * SAMPLE_RATE) * SAMPLE_BYTES
        self.start: float | None = None
        self.pcm = bytearray()

    @property
    def end(self) -> float | None:
        return None if self.start is None else self.start + len(self.pcm) / BYTES_PER_S

    def append(self, t: float, pcm: bytes) -> None:
        if self.max_bytes <= 0:
            return
        end = self.end
        if end is None or t < end - 0.05 or t - end > self.max_bytes / BYTES_PER_S:
            self.start, self.pcm = t, bytearray()  # first audio, a jump back, or a long gap
        elif t > end:
            self.pcm += bytes(int((t - end) * SAMPLE_RATE) * SAMPLE_BYTES)  # silence over the gap
        self.pcm += pcm
        extra = len(self.pcm) - self.max_bytes
        if extra > 0:
            extra += extra % SAMPLE_BYTES
            del self.pcm[:extra]
            self.start += extra / BYTES_PER_S

    def clip(self, t0: float, t1: float) -> tuple[float, float, bytes] | None:
        """(start, end, samples) of [t0, t1] as far as the ring holds it; None when it holds none."""
        if self.start is None or t1 <= t0:
            return None
        first = max(0, int((t0 - self.start) * SAMPLE_RATE)) * SAMPLE_BYTES
        last = min(len(self.pcm), int((t1 - self.start) * SAMPLE_RATE) * SAMPLE_BYTES)
        if last <= first:
            return None
        return self.start + first / BYTES_PER_S, self.start + last / BYTES_PER_S, bytes(self.pcm[first:last])


def waveform(pcm: bytes, bins: int = 160) -> list[float]:
    """The clip's loudness outline: the peak |sample| (0..1) of each of `bins` equal slices."""
    import numpy as np

    samples = np.abs(np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)) / 32768.0
    if not len(samples):
        return []
    edges = np.linspace(0, len(samples), min(bins, len(samples)) + 1).astype(int)
    return [round(float(samples[a:b].max()), 3) for a, b in zip(edges[:-1], edges[1:])]
