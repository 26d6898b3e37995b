"""Events are episodes, not frames: a per-type state machine with persistence and hysteresis.

A condition must hold for `open_after_s` (and `min_frames` frames) before its event opens; the event
then stays open until the condition has been clear for `close_after_s`. Times are the frames' own.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from risk.config import EventRule


@dataclass
class Event:
    id: str
    type: str
    severity: str
    start: float
    end: float | None = None
    frame_count: int = 0
    peak_confidence: float = 0.0
    last_seen: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.end is None

    def duration(self, now: float | None = None) -> float:
        end = self.end if self.end is not None else (now if now is not None else self.last_seen)
        return max(0.0, end - self.start)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = round(self.duration(now), 3)
        data["open"] = self.is_open
        return data


class EventTracker:
    """Tracks one event type through pending -> open -> closed."""

    def __init__(self, event_type: str, rule: EventRule):
        self.type = event_type
        self.rule = rule
        self.pending_since: float | None = None
        self.pending_frames = 0
        self.pending_peak = 0.0
        self.clear_since: float | None = None
        self.current: Event | None = None

    def step(self, t: float, confidence: float | None) -> tuple[Event | None, Event | None]:
        """Feed one frame. Returns (event opened by this frame, event closed by this frame)."""
        if confidence is not None:
            return self._active(t, confidence), None
        return None, self._inactive(t)

    def _active(self, t: float, confidence: float) -> Event | None:
        self.clear_since = None
        if self.current is not None:
            self.current.frame_count += 1
            self.current.peak_confidence = max(self.current.peak_confidence, confidence)
            self.current.last_seen = t
            return None
        if self.pending_since is None:
            self.pending_since, self.pending_frames, self.pending_peak = t, 0, 0.0
        self.pending_frames += 1
        self.pending_peak = max(self.pending_peak, confidence)
        held = t - self.pending_since
        if held >= self.rule.open_after_s and self.pending_frames >= self.rule.min_frames:
            self.current = Event(
                id=uuid.uuid4().hex[:12],
                type=self.type,
                severity=self.rule.severity,
                start=self.pending_since,
                frame_count=self.pending_frames,
                peak_confidence=round(self.pending_peak, 3),
                last_seen=t,
            )
            self.pending_since = None
            return self.current
        return None

    def _inactive(self, t: float) -> Event | None:
        self.pending_since = None
        self.pending_frames = 0
        if self.current is None:
            return None
        if self.clear_since is None:
            self.clear_since = t
        if t - self.clear_since >= self.rule.close_after_s:
            return self.close(self.clear_since)
        return None

    def close(self, t: float) -> Event | None:
        """Close the open event at time t (used on clear and at session end)."""
        event, self.current, self.clear_since = self.current, None, None
        if event is not None:
            event.end = max(t, event.start)
            event.peak_confidence = round(event.peak_confidence, 3)
        return event
