"""One session's risk state: observations in, score/attention/events out. Pure Python, explicit time."""
from __future__ import annotations

from typing import Any

from risk.config import EVENT_TYPES, RiskConfig
from risk.events import Event, EventTracker
from risk.filters import AttentionWindow
from risk.observation import Observation, attentive, conditions
from risk.score import advance_score, verdict


class RiskEngine:
    def __init__(self, cfg: RiskConfig, started_at: float):
        self.cfg = cfg
        self.started_at = started_at
        self.last_t: float | None = None
        self.score = 0.0
        self.peak_score = 0.0
        self.frames = 0
        self.late_frames = 0
        self.unusable_frames = 0
        self.trackers = {kind: EventTracker(kind, cfg.rules[kind]) for kind in EVENT_TYPES}
        self.events: list[Event] = []
        self.attention = AttentionWindow(cfg.attention_window_s, cfg.max_gap_s)

    def observe(self, obs: Observation) -> dict[str, Any]:
        """Score one frame. Frames older than the last one never move time backwards."""
        t = obs.t
        if self.last_t is not None and t < self.last_t:
            self.late_frames += 1
            t = self.last_t
        dt = 0.0 if self.last_t is None else min(t - self.last_t, self.cfg.max_gap_s)

        # The interval since the last frame carries the state that frame left (events open then).
        attention_before = self.attention.value(t)
        open_rates = [self.cfg.rules[k].rate for k, tr in self.trackers.items() if tr.current is not None]
        self.score = advance_score(self.score, dt, open_rates, attention_before, self.cfg)

        opened, closed = [], []
        # An unusable frame holds every event as it is: it neither proves nor disproves anything.
        judged = conditions(obs, self.cfg).items() if obs.usable else ()
        for kind, confidence in judged:
            new, ended = self.trackers[kind].step(t, confidence)
            if new is not None:
                opened.append(new)
                self.events.append(new)
                self.score = min(100.0, self.score + self.cfg.rules[kind].open_points)
            if ended is not None:
                closed.append(ended)

        if obs.usable:
            self.attention.add(t, attentive(obs, self.cfg))
        else:
            self.unusable_frames += 1
        self.last_t = t
        self.frames += 1
        self.peak_score = max(self.peak_score, self.score)
        return {
            "risk_score": int(round(self.score)),
            "attention": int(round(self.attention.value(t))),
            "cheating": self.score >= self.cfg.cheating_threshold,
            "open_events": [e.to_dict(t) for e in self.open_events()],
            "opened": [e.type for e in opened],
            "closed": [e.type for e in closed],
        }

    def open_events(self) -> list[Event]:
        return [tr.current for tr in self.trackers.values() if tr.current is not None]

    def state(self) -> dict[str, Any]:
        now = self.last_t if self.last_t is not None else self.started_at
        return {
            "risk_score": int(round(self.score)),
            "peak_score": int(round(self.peak_score)),
            "attention": int(round(self.attention.value(now))),
            "frames": self.frames,
            "late_frames": self.late_frames,
            "unusable_frames": self.unusable_frames,
            "events": [e.to_dict(now) for e in self.events],
        }

    def finish(self, now: float) -> dict[str, Any]:
        """Close open events and give the verdict. `now` is the session's end time."""
        end = max(now, self.last_t or now)
        for tracker in self.trackers.values():
            tracker.close(end)
        breakdown: dict[str, dict[str, float]] = {}
        for e in self.events:
            row = breakdown.setdefault(e.type, {"count": 0, "total_seconds": 0.0, "peak_confidence": 0.0})
            row["count"] += 1
            row["total_seconds"] = round(row["total_seconds"] + e.duration(), 3)
            row["peak_confidence"] = max(row["peak_confidence"], e.peak_confidence)
        return {
            "final_risk_score": int(round(self.score)),
            "peak_risk_score": int(round(self.peak_score)),
            "verdict": verdict(self.peak_score, self.cfg),
            "total_violations": len(self.events),
            "duration_seconds": round(max(0.0, end - self.started_at), 3),
            "frames": self.frames,
            "violations_by_type": breakdown,
            "events": [e.to_dict(end) for e in self.events],
        }
