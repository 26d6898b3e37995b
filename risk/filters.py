"""Sliding-window attention: how much of the recent window the candidate was attentive."""
from __future__ import annotations

from collections import deque


class AttentionWindow:
    """Time-weighted share of the last `window_s` seconds spent attentive, 0-100.

    Each frame's state holds until the next frame, so irregular frame rates weigh correctly.
    """

    def __init__(self, window_s: float, max_gap_s: float):
        self.window_s = window_s
        self.max_gap_s = max_gap_s
        self._samples: deque[tuple[float, bool]] = deque()

    def add(self, t: float, is_attentive: bool) -> None:
        self._samples.append((t, is_attentive))
        while self._samples and self._samples[0][0] < t - self.window_s - self.max_gap_s:
            self._samples.popleft()

    def value(self, now: float) -> float:
        if not self._samples:
            return 100.0
        start = now - self.window_s
        total = attentive = 0.0
        samples = list(self._samples)
        for (t, state), nxt in zip(samples, samples[1:] + [(now, None)]):
            seg_start = max(t, start)
            seg_end = min(nxt[0], t + self.max_gap_s)
            span = seg_end - seg_start
            if span <= 0:
                continue
            total += span
            attentive += span if state else 0.0
        if total <= 0:  # only one frame so far
            return 100.0 if samples[-1][1] else 0.0
        return 100.0 * attentive / total


class TalkingDetector:
    """Talking is mouth movement over a few frames, not one open mouth: the inner-lip opening must
    swing by at least `min_range` within the last `window_s` seconds, over at least `min_frames`."""

    def __init__(self, window_s: float, min_range: float, min_frames: int):
        self.window_s = window_s
        self.min_range = min_range
        self.min_frames = min_frames
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t: float, mouth_openness: float | None) -> bool:
        if mouth_openness is not None:
            self._samples.append((t, mouth_openness))
        while self._samples and self._samples[0][0] < t - self.window_s:
            self._samples.popleft()
        return self.talking()

    def talking(self) -> bool:
        if len(self._samples) < self.min_frames:
            return False
        values = [v for _, v in self._samples]
        return max(values) - min(values) >= self.min_range
