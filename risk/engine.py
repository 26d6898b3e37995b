"""One session's risk state: observations in, score/attention/events out. Pure Python, explicit time.

Deterministic: replaying the same observations rebuilds the same state, event ids included. That is
how a crashed RiskSession actor comes back from the session store.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from contracts import AudioUpdate, Baseline, RiskUpdate
from risk.calibrate import Calibrator
from risk.events import Event, EventTracker
from risk.filters import AttentionWindow, TalkingDetector
from risk.identity import IdentityTracker
from risk.observation import Observation, attentive, conditions, frozen, relative_to
from risk.score import advance_score, verdict
from risk.voice import AudioObservation, VoiceJudge
from settings import AUDIO_EVENT_TYPES, EVENT_TYPES, RiskConfig


@dataclass(frozen=True)
class FrameOutcome:
    """One frame's result: the update the caller answers with, and which events changed (for the
    session's store write and its evidence)."""

    update: RiskUpdate
    opened_ids: tuple[str, ...] = ()
    closed_ids: tuple[str, ...] = ()
    peaks: tuple[str, ...] = ()  # event types whose strongest frame so far this is


@dataclass(frozen=True)
class AudioOutcome:
    """One audio chunk's result: the update, the events it opened or closed, and where the speech
    behind each opened event began (its evidence clip starts there)."""

    update: AudioUpdate
    opened_ids: tuple[str, ...] = ()
    closed_ids: tuple[str, ...] = ()
    span_starts: dict[str, float] | None = None  # opened event id -> start of its speech


class RiskEngine:
    def __init__(self, cfg: RiskConfig, started_at: float, mode: str = "interview",
                 reference: Sequence[float] | None = None):
        """`mode`: interview | exam (which audio events count); `reference`: the descriptor of a
        reference photo given at start (risk.identity)."""
        self.cfg = cfg
        self.mode = mode  # interview | exam: which audio events count (cfg.voice.modes)
        self.started_at = started_at
        self.last_t: float | None = None
        self.last_digest: str | None = None
        self.score = 0.0
        self.peak_score = 0.0
        self.frames = 0
        self.late_frames = 0
        self.duplicate_frames = 0
        self.unusable_frames = 0
        self.events: list[Event] = []
        self.trackers = {kind: EventTracker(kind, cfg.rules[kind], self._event_id) for kind in EVENT_TYPES}
        self.attention = AttentionWindow(cfg.attention_window_s, cfg.max_gap_s)
        self.talking = TalkingDetector(cfg.talking_window_s, cfg.talking_mouth_range, cfg.talking_min_frames)
        self.calibrator = Calibrator(cfg.calibration, cfg.gaze.vertical_center)
        self.identity = IdentityTracker(cfg.identity, tuple(reference) if reference else None)
        self.voice = VoiceJudge(cfg.voice, cfg.voice.modes[mode])
        self.last_audio: AudioObservation | None = None
        self.audio_seconds = 0.0

    def _event_id(self, kind: str) -> str:
        return f"{len(self.events) + 1:04d}-{kind.lower().replace('_', '-')}"

    def observe(self, obs: Observation, quality_issues: Sequence[str] = ()) -> FrameOutcome:
        """Score one frame. Duplicates are ignored; late frames never move time backwards.
        `quality_issues` are the face stage's (too_dark, ...); the engine adds frozen."""
        if self.last_t is not None and obs.t == self.last_t and obs.digest and obs.digest == self.last_digest:
            self.duplicate_frames += 1  # the same frame delivered twice (a client retry): not stored
            return FrameOutcome(self._update(self.last_t, obs, quality_issues, duplicate=True))
        for result in obs.identity:  # descriptors asked for on earlier frames (stored with this one)
            self.identity.add(result)
        if self.last_t is not None and obs.t < self.last_t:
            self.late_frames += 1  # arrived after a newer frame: it must not rewrite the past
            return FrameOutcome(self._update(self.last_t, obs, quality_issues, late=True))
        is_frozen = frozen(self.last_digest, obs.digest)
        self.last_digest = obs.digest
        if is_frozen:
            obs.usable = False
            quality_issues = (*quality_issues, "frozen")
        t = obs.t
        dt = 0.0 if self.last_t is None else min(t - self.last_t, self.cfg.max_gap_s)

        # The interval since the last frame carries the state that frame left (events open then).
        open_rates = [self.cfg.rules[k].rate for k, tr in self.trackers.items() if tr.current is not None]
        self.score = advance_score(self.score, dt, open_rates, self.attention.value(t), self.cfg)

        obs.talking = self.talking.add(t, obs.mouth_openness if obs.usable else None)
        self.voice.frame(t, obs.usable, obs.faces, obs.mouth_openness)
        if obs.usable and obs.faces == 1:
            self.calibrator.add(t, obs.yaw, obs.pitch, obs.gaze_ratio)
        rel = relative_to(obs, self.calibrator.baseline, self.cfg.gaze)
        if obs.usable:
            judged = conditions(obs, rel, self.cfg, calibrated=self.calibrator.done)
            judged["IDENTITY_MISMATCH"] = self.identity.mismatch_confidence()
        else:
            # An unusable frame holds every event as it is (it proves nothing either way) and
            # only feeds LOW_QUALITY, which is recorded but never scored.
            judged = {"LOW_QUALITY": 1.0}

        opened: list[Event] = []
        closed: list[Event] = []
        peaks: list[str] = []
        for kind, confidence in judged.items():
            if self._step(kind, t, confidence, opened, closed).new_peak:
                peaks.append(kind)

        if obs.usable:
            self.attention.add(t, attentive(obs, rel, self.cfg))
        else:
            self.unusable_frames += 1
        self.last_t = t
        self.frames += 1
        self.peak_score = max(self.peak_score, self.score)
        wanted = self.identity.request(t, obs.faces, obs.yaw, obs.pitch, obs.usable, [e.type for e in closed],
                                       obs.face_box)
        update = self._update(t, obs, quality_issues, gaze=rel.gaze, opened=opened, closed=closed,
                              identity_request=wanted)
        return FrameOutcome(update, opened_ids=tuple(e.id for e in opened), closed_ids=tuple(e.id for e in closed),
                            peaks=tuple(peaks))

    def _step(self, kind: str, t: float, confidence, opened: list[Event], closed: list[Event]):
        """One event type's tracker at t (frames and audio alike): an opened event joins the session's
        events and adds its points; opened and closed collect what this observation changed."""
        step = self.trackers[kind].step(t, confidence)
        if step.opened is not None:
            opened.append(step.opened)
            self.events.append(step.opened)
            self.score = min(100.0, self.score + self.cfg.rules[kind].open_points)
        if step.closed is not None:
            closed.append(step.closed)
        return step

    def observe_audio(self, obs: AudioObservation) -> AudioOutcome:
        """Step the audio events over one chunk's speech blocks. A chunk starting inside audio
        already heard is late (or, starting exactly where the last one did, a duplicate): answered,
        not scored. The score moves on frames (`observe`): an audio event adds its `open_points`
        when it opens and its `rate` from then on, between frames, like any event."""
        last = self.last_audio
        if last is not None and (obs.t < last.end - 0.05 or abs(obs.t - last.t) < 1e-6):
            duplicate = abs(obs.t - last.t) < 1e-6
            return AudioOutcome(self._audio_update(obs, 0.0, "unknown", late=not duplicate, duplicate=duplicate))
        self.last_audio = obs
        self.audio_seconds += obs.duration
        opened: list[Event] = []
        closed: list[Event] = []
        mouth, speech = self.voice.mouth_at(obs.end), 0.0
        for block in obs.blocks:
            judged, mouth = self.voice.block(block)
            speech += block.duration * block.speech
            for kind, confidence in judged.items():
                self._step(kind, block.t, confidence, opened, closed)
        self.peak_score = max(self.peak_score, self.score)
        spans = {e.id: self.voice.span_start(e.type) or e.start for e in opened}
        return AudioOutcome(self._audio_update(obs, speech, mouth, opened, closed),
                            opened_ids=tuple(e.id for e in opened), closed_ids=tuple(e.id for e in closed),
                            span_starts=spans)

    def _audio_update(self, obs: AudioObservation, speech: float, mouth: str, opened: Sequence[Event] = (),
                      closed: Sequence[Event] = (), late: bool = False, duplicate: bool = False) -> AudioUpdate:
        now = max(obs.end, self.last_t or obs.end)
        return AudioUpdate(
            risk_score=int(round(self.score)),
            cheating=self.score >= self.cfg.cheating_threshold,
            chunk_time=obs.t,
            duration=round(obs.duration, 4),
            speech_seconds=round(speech, 3),
            mouth=mouth,
            open_events=tuple(e.to_dict(now) for e in self.open_events()),
            opened=tuple(e.type for e in opened),
            closed=tuple(e.type for e in closed),
            late=late,
            duplicate=duplicate,
        )

    def _update(self, t: float, obs: Observation, quality_issues: Sequence[str], gaze: str | None = None,
                opened: Sequence[Event] = (), closed: Sequence[Event] = (), late: bool = False,
                duplicate: bool = False, identity_request: str | None = None) -> RiskUpdate:
        if gaze is None:  # a late or duplicate frame: read against the baseline, scored nothing
            gaze = relative_to(obs, self.calibrator.baseline, self.cfg.gaze).gaze
        return RiskUpdate(
            risk_score=int(round(self.score)),
            attention=int(round(self.attention.value(t))),
            cheating=self.score >= self.cfg.cheating_threshold,
            frame_time=t,
            usable=obs.usable,
            quality_issues=tuple(quality_issues),
            gaze=gaze if obs.usable else "unknown",
            talking=obs.talking,
            calibration=self.calibration(),
            open_events=tuple(e.to_dict(t) for e in self.open_events()),
            opened=tuple(e.type for e in opened),
            closed=tuple(e.type for e in closed),
            late=late,
            duplicate=duplicate,
            identity=self.identity.to_dict(),
            identity_request=identity_request,
        )

    def calibration(self, unset_reason: str = "calibrating") -> Baseline:
        return self.calibrator.baseline or Baseline(reason=unset_reason)

    def open_events(self) -> list[Event]:
        return [tr.current for tr in self.trackers.values() if tr.current is not None]

    def pending_since(self, kind: str) -> float | None:
        return self.trackers[kind].pending_since

    def seconds_by_type(self, now: float) -> dict[str, float]:
        totals: dict[str, float] = {}
        for e in self.events:
            totals[e.type] = totals.get(e.type, 0.0) + e.duration(now)
        return totals

    def state(self) -> dict[str, Any]:
        now = self.last_t if self.last_t is not None else self.started_at
        return {
            "risk_score": int(round(self.score)),
            "peak_score": int(round(self.peak_score)),
            "attention": int(round(self.attention.value(now))),
            "cheating": self.score >= self.cfg.cheating_threshold,
            "frames": self.frames,
            "late_frames": self.late_frames,
            "duplicate_frames": self.duplicate_frames,
            "unusable_frames": self.unusable_frames,
            "calibration": self.calibration().to_dict(),
            "identity": self.identity.to_dict(),
            "open_events": [e.to_dict(now) for e in self.open_events()],
            "events": [e.to_dict(now) for e in self.events],
            "last_frame_time": self.last_t,
            "mode": self.mode,
            "audio_seconds": round(self.audio_seconds, 3),
        }

    def finish(self, now: float) -> dict[str, Any]:
        """Close open events and give the verdict. `now` is the session's end time (server clock).

        Open events close at the last frame: that is as far as the frames show the condition held
        (an idle gap before an abandoned session's end, or a client clock slower than the server's,
        must not count as violation time)."""
        end = max(now, self.last_t or now)
        close_at = self.last_t if self.last_t is not None else end
        heard_until = self.last_audio.end if self.last_audio is not None else close_at  # audio events: its own clock
        for kind, tracker in self.trackers.items():
            tracker.close(heard_until if kind in AUDIO_EVENT_TYPES else close_at)
        breakdown: dict[str, dict[str, float]] = {}
        for e in self.events:
            row = breakdown.setdefault(e.type, {"count": 0, "total_seconds": 0.0, "peak_confidence": 0.0})
            row["count"] += 1
            row["total_seconds"] = round(row["total_seconds"] + e.duration(), 3)
            row["peak_confidence"] = max(row["peak_confidence"], e.peak_confidence)
        decision, reasons = verdict(self.peak_score, self.seconds_by_type(max(close_at, heard_until)), self.cfg)
        return {
            "final_risk_score": int(round(self.score)),
            "peak_risk_score": int(round(self.peak_score)),
            "verdict": decision,
            "verdict_reasons": reasons,
            "total_violations": sum(1 for e in self.events if self.cfg.rules[e.type].rate > 0),
            "duration_seconds": round(max(0.0, end - self.started_at), 3),
            "frames": self.frames,
            "late_frames": self.late_frames,
            "duplicate_frames": self.duplicate_frames,
            "unusable_frames": self.unusable_frames,
            "violations_by_type": breakdown,
            "calibration": self.calibration("session too short").to_dict(),
            "identity": self.identity.summary(),
            "events": [e.to_dict(end) for e in self.events],
            "mode": self.mode,
            "audio_seconds": round(self.audio_seconds, 3),
        }
