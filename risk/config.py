"""Risk-engine settings: one Pydantic model that maps one-to-one onto `risk:` in config/serve.yaml.

The defaults here mirror config/serve.yaml so pure tests can build a config without the file; the
YAML is what runs.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

EVENT_TYPES = (
    "FACE_MISSING",
    "MULTIPLE_FACES",
    "EXTRA_PERSON",
    "LOOKING_AWAY",
    "HEAD_TURNED",
    "PHONE_DETECTED",
    "BOOK_DETECTED",
    "DEVICE_DETECTED",
    "TALKING",
    "EYES_CLOSED",
    "LOW_QUALITY",
)


class EventRule(BaseModel):
    open_after_s: float = Field(ge=0)  # the condition must hold this long before an event opens
    min_frames: int = Field(1, ge=1)  # ... and be seen in at least this many frames
    close_after_s: float = Field(0.0, ge=0)  # the condition must be clear this long to close it
    cooldown_s: float = Field(0.0, ge=0)  # a recurrence within this long after closing reopens it
    rate: float = Field(ge=0)  # risk points per second while the event is open
    open_points: float = Field(0.0, ge=0)  # risk points added once when it opens
    severity: str = "medium"  # low | medium | high, for the reviewer
    suspicious_after_s: float | None = Field(None, ge=0)  # total open time that alone makes SUSPICIOUS
    cheating_after_s: float | None = Field(None, ge=0)  # total open time that alone makes CHEATING


def _rule(open_after_s, min_frames, close_after_s, cooldown_s, rate, open_points, severity,
          suspicious_after_s=None, cheating_after_s=None) -> EventRule:
    return EventRule(open_after_s=open_after_s, min_frames=min_frames, close_after_s=close_after_s,
                     cooldown_s=cooldown_s, rate=rate, open_points=open_points, severity=severity,
                     suspicious_after_s=suspicious_after_s, cheating_after_s=cheating_after_s)


def _default_rules() -> dict[str, EventRule]:
    return {
        "FACE_MISSING": _rule(3.0, 2, 0.5, 2.0, 4, 5, "medium", 10, 60),
        "MULTIPLE_FACES": _rule(1.0, 2, 0.5, 2.0, 10, 10, "high", 2, 10),
        "EXTRA_PERSON": _rule(1.0, 2, 0.5, 2.0, 8, 8, "high", 2, 10),
        "LOOKING_AWAY": _rule(2.0, 2, 0.5, 1.0, 4, 3, "low", 15, None),
        "HEAD_TURNED": _rule(2.0, 2, 0.5, 1.0, 3, 3, "low", 15, None),
        "PHONE_DETECTED": _rule(0.0, 2, 1.0, 3.0, 10, 15, "high", 1, 5),
        "BOOK_DETECTED": _rule(0.0, 2, 1.0, 3.0, 6, 8, "medium", 2, 20),
        "DEVICE_DETECTED": _rule(0.0, 2, 1.0, 3.0, 3, 5, "medium", 10, None),
        "TALKING": _rule(2.0, 3, 1.0, 2.0, 2, 2, "low", 30, None),
        "EYES_CLOSED": _rule(3.0, 2, 0.5, 1.0, 1, 1, "low", None, None),
        "LOW_QUALITY": _rule(2.0, 2, 0.5, 1.0, 0, 0, "low", None, None),  # recorded, never scored
    }


class CalibrationConfig(BaseModel):
    window_s: float = Field(5.0, ge=0)  # the first seconds of usable one-face frames set the baseline
    min_frames: int = Field(3, ge=1)  # ... from at least this many frames (else: no baseline)
    max_yaw_deg: float = Field(35.0, ge=0)  # a baseline farther off than this is not believed
    max_pitch_deg: float = Field(30.0, ge=0)
    max_gaze_offset: float = Field(0.12, ge=0)  # iris-ratio offset beyond this is not believed


class RiskConfig(BaseModel):
    decay_per_s: float = Field(2.0, ge=0)  # score decay while nothing is wrong
    cheating_threshold: float = Field(70, ge=0, le=100)  # `cheating` is true at or above this score
    suspicious_peak: float = Field(30, ge=0, le=100)  # verdict SUSPICIOUS when the peak reaches this
    cheating_peak: float = Field(70, ge=0, le=100)  # verdict CHEATING when the peak reaches this
    attention_window_s: float = Field(10.0, gt=0)  # attention = share of this recent window spent attentive
    attention_floor: float = Field(50, ge=0, le=100)  # attention under this adds a penalty
    attention_penalty_per_s: float = Field(2.0, ge=0)  # penalty rate at zero attention (scales linearly)
    head_yaw_limit_deg: float = Field(30, ge=0)  # |yaw - baseline| beyond this is HEAD_TURNED
    head_pitch_limit_deg: float = Field(25, ge=0)  # |pitch - baseline| beyond this is HEAD_TURNED
    extra_person_min: int = Field(2, ge=2)  # YOLO persons at or above this open EXTRA_PERSON
    device_labels: list[str] = Field(default_factory=lambda: ["tv", "laptop", "remote"])
    talking_window_s: float = Field(2.0, gt=0)  # talking = mouth movement within this window ...
    talking_mouth_range: float = Field(0.15, ge=0)  # ... swinging the mouth opening by this much ...
    talking_min_frames: int = Field(3, ge=2)  # ... over at least this many frames
    max_gap_s: float = Field(5.0, gt=0)  # a longer gap between frames counts only this much time
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    rules: dict[str, EventRule] = Field(default_factory=_default_rules)

    def model_post_init(self, _ctx) -> None:
        # Partial `rules:` in YAML override only the types they name.
        merged = _default_rules()
        merged.update(self.rules)
        unknown = set(merged) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types in risk.rules: {sorted(unknown)}")
        self.rules = merged
