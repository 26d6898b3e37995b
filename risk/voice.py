"""Audio events from heard speech and the candidate's mouth. Pure Python, explicit time.

The ingress's speech model (audio/vad.py) sends speech blocks (~0.25 s each); the frames tell the
candidate's mouth. For each block:
- its speech seconds go into a rolling window of `window_s`; SPEECH_DETECTED holds while the window
  has `speech_min_s` of speech;
- its speech counts towards SECOND_VOICE when the candidate's mouth was still around it (a face
  with the mouth opening moving less than `still_mouth_range` over the frames of the last
  `mouth_window_s`), or when the latest usable frame shows no face; SECOND_VOICE holds while the
  window has `second_voice_min_s` of such speech.
Counting over a window, not requiring every block, is what keeps the pauses between words from
resetting an episode. Speech while the mouth is unknown (too few frames, an unusable camera)
counts for SPEECH_DETECTED only: the frames cannot say whose voice it is. Which events a session
counts is its mode's (`modes`).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from contracts import SpeechBlock
from settings import AUDIO_EVENT_TYPES, VoiceConfig

MOUTH_STATES = ("moving", "still", "no_face", "unknown")
KEEP_FRAMES_S = 30.0  # frames older than this (behind the newest) can no longer matter


@dataclass
class AudioObservation:
    """One audio chunk as the engine reads it: its start, length and speech blocks (session clock)."""

    t: float
    duration: float
    blocks: list[SpeechBlock] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "audio", "t": self.t, "duration": self.duration, "blocks": [b.to_list() for b in self.blocks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AudioObservation":
        return cls(data["t"], data["duration"], [SpeechBlock(*row) for row in data["blocks"]])

    @property
    def end(self) -> float:
        return self.t + self.duration


def is_audio_row(data: dict[str, Any]) -> bool:
    """A stored observation row that is an audio chunk (frames have no `kind`)."""
    return data.get("kind") == "audio"


@dataclass(frozen=True)
class _Frame:
    t: float
    usable: bool
    faces: int
    mouth: float | None


@dataclass(frozen=True)
class _Heard:
    t: float
    end: float
    speech_s: float
    second_s: float  # speech with the mouth still or no face
    probability: float


class VoiceJudge:
    """The mouth from the frames, speech from the audio, and each block's audio conditions."""

    def __init__(self, cfg: VoiceConfig, counted: tuple[str, ...] | list[str]):
        self.cfg = cfg
        self.counted = frozenset(counted)
        self.frames: deque[_Frame] = deque()
        self.heard: deque[_Heard] = deque()

    def frame(self, t: float, usable: bool, faces: int, mouth_openness: float | None) -> None:
        """Every scored frame (in the order the session scored them)."""
        self.frames.append(_Frame(t, usable, faces, mouth_openness))  # in time order: late frames never come here
        while self.frames and self.frames[0].t < t - KEEP_FRAMES_S:
            self.frames.popleft()

    def mouth_at(self, t: float) -> str:
        """The candidate's mouth around time t: no_face when the latest usable frame near it shows
        nobody; still / moving from the mouth opening over the frames of the last `mouth_window_s`
        (and up to half that after t); unknown with too few frames."""
        cfg = self.cfg
        ahead = t + cfg.mouth_window_s / 2
        near = [f for f in self.frames if f.usable and t - cfg.max_frame_age_s <= f.t <= ahead]
        if near and max(near, key=lambda f: f.t).faces == 0:
            return "no_face"
        mouths = [f.mouth for f in self.frames if f.usable and f.faces >= 1 and f.mouth is not None
                  and t - cfg.mouth_window_s <= f.t <= ahead]
        if len(mouths) < cfg.mouth_min_frames:
            return "unknown"
        return "still" if max(mouths) - min(mouths) < cfg.still_mouth_range else "moving"

    def block(self, block: SpeechBlock) -> tuple[dict[str, float | None], str]:
        """This block's audio conditions (event type -> confidence, or None when it does not hold)
        and the mouth state it was read against."""
        end = block.t + block.duration
        mouth = self.mouth_at(end)
        speech_s = block.duration * block.speech
        second_s = speech_s if mouth in ("still", "no_face") else 0.0
        self.heard.append(_Heard(block.t, end, speech_s, second_s, block.probability))
        while self.heard and self.heard[0].end <= end - self.cfg.window_s:
            self.heard.popleft()
        speech_total = sum(h.speech_s for h in self.heard)
        second_total = sum(h.second_s for h in self.heard)
        judged: dict[str, float | None] = {kind: None for kind in AUDIO_EVENT_TYPES}
        if "SPEECH_DETECTED" in self.counted and speech_total >= self.cfg.speech_min_s:
            judged["SPEECH_DETECTED"] = self._confidence(lambda h: h.speech_s)
        if "SECOND_VOICE" in self.counted and second_total >= self.cfg.second_voice_min_s:
            judged["SECOND_VOICE"] = self._confidence(lambda h: h.second_s)
        return judged, mouth

    def _confidence(self, share) -> float:
        """The model's mean speech probability over the blocks that counted, weighted by their speech."""
        weights = [(share(h), h.probability) for h in self.heard if share(h) > 0]
        total = sum(w for w, _ in weights)
        return round(sum(w * p for w, p in weights) / total, 3) if total else 0.0

    def span_start(self, kind: str) -> float | None:
        """Where the speech that holds `kind`'s condition now began (the first block in the window
        that counted towards it): the start of the event's audio evidence."""
        key = (lambda h: h.second_s) if kind == "SECOND_VOICE" else (lambda h: h.speech_s)
        return next((h.t for h in self.heard if key(h) > 0), None)
