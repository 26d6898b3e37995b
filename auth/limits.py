"""Per-session rate limits (a token bucket per session): frames, and seconds of audio. Pure code,
explicit time."""
from __future__ import annotations


class FrameRateLimiter:
    """At most `rate` frames/s per session on average, with bursts of up to `burst` frames."""

    def __init__(self, rate: float, burst: float, max_sessions: int = 100_000):
        self.rate = rate
        self.burst = burst
        self.max_sessions = max_sessions
        self._buckets: dict[str, tuple[float, float]] = {}  # session -> (tokens, last time)

    def allow(self, key: str, now: float, cost: float = 1.0) -> tuple[bool, float]:
        """(allowed, seconds to wait before this request would be allowed). `cost`: tokens it takes
        (a frame: 1; an audio chunk: its seconds of audio)."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._store(key, tokens - cost, now)
            return True, 0.0
        self._store(key, tokens, now)
        return False, (cost - tokens) / self.rate

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_sessions:
            self._buckets.pop(next(iter(self._buckets)))  # bounded memory: drop the oldest
        self._buckets[key] = (tokens, now)
