"""Events are episodes, not frames: a per-type state machine with persistence, hysteresis and cooldown.

A condition must hold for `open_after_s` (and `min_frames` frames) before its event opens; the event
then stays open until the condition has been clear for `close_after_s`. If the condition returns
within `cooldown_s` of the close, the same event reopens instead of a new one (a flicker never opens
ten). Times are the frames' own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from settings import EventRule


@dataclass
class Event:
    id: str
    type: str
    severity: str
    start: float
    end: float | None = None
    frame_count: int = 0
    peak_confidence: float = 0.0
    peak_time: float = 0.0
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


@dataclass
class Step:
    opened: Event | None = None  # a new event opened on this frame
    closed: Event | None = None  # an event closed on this frame
    reopened: Event | None = None  # a recently closed event resumed (within its cooldown)
    new_peak: bool = False  # this frame is the strongest so far of the open or pending episode


class EventTracker:
    """Tracks one event type through pending -> open -> closed (-> reopened within the cooldown)."""

    def __init__(self, event_type: str, rule: EventRule, new_id: Callable[[str], str]):
        self.type = event_type
        self.rule = rule
        self._new_id = new_id
        self.pending_since: float | None = None
        self.pending_frames = 0
        self.pending_peak = 0.0
        self.pending_peak_time = 0.0
        self.clear_since: float | None = None
        self.current: Event | None = None
        self.recent: Event | None = None  # the last closed event, while its cooldown lasts

    def step(self, t: float, confidence: float | None) -> Step:
        if confidence is not None:
            return self._active(t, confidence)
        return self._inactive(t)

    def _active(self, t: float, confidence: float) -> Step:
        self.clear_since = None
        if self.current is None and self.recent is not None and t - self.recent.end <= self.rule.cooldown_s:
            self.current, self.recent = self.recent, None
            self.current.end = None
            self._count(t, confidence)
            return Step(reopened=self.current, new_peak=self.current.peak_time == t)
        if self.current is not None:
            return Step(new_peak=self._count(t, confidence))
        if self.pending_since is None:
            self.pending_since, self.pending_frames, self.pending_peak = t, 0, -1.0
        self.pending_frames += 1
        new_peak = confidence > self.pending_peak
        if new_peak:
            self.pending_peak, self.pending_peak_time = confidence, t
        if t - self.pending_since >= self.rule.open_after_s and self.pending_frames >= self.rule.min_frames:
            self.current = Event(
                id=self._new_id(self.type),
                type=self.type,
                severity=self.rule.severity,
                start=self.pending_since,
                frame_count=self.pending_frames,
                peak_confidence=round(self.pending_peak, 3),
                peak_time=self.pending_peak_time,
                last_seen=t,
            )
            self.pending_since, self.recent = None, None
            return Step(opened=self.current, new_peak=new_peak)
        return Step(new_peak=new_peak)

    def _count(self, t: float, confidence: float) -> bool:
        event = self.current
        event.frame_count += 1
        event.last_seen = t
        if confidence > event.peak_confidence:
            event.peak_confidence, event.peak_time = round(confidence, 3), t
            return True
        return False

    def _inactive(self, t: float) -> Step:
        self.pending_since = None
        self.pending_frames = 0
        if self.current is None:
            if self.recent is not None and t - self.recent.end > self.rule.cooldown_s:
                self.recent = None
            return Step()
        if self.clear_since is None:
            self.clear_since = t
        if t - self.clear_since >= self.rule.close_after_s:
            return Step(closed=self.close(self.clear_since))
        return Step()

    def close(self, t: float) -> Event | None:
        """Close the open event at time t (used on clear and at session end)."""
        event, self.current, self.clear_since = self.current, None, None
        if event is not None:
            event.end = max(t, event.start)
            self.recent = event
        return event
