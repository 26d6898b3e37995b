"""Risk-engine settings: one Pydantic model that maps one-to-one onto `risk:` in config/serve.yaml."""
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
)


class EventRule(BaseModel):
    open_after_s: float = Field(ge=0)  # the condition must hold this long before an event opens
    min_frames: int = Field(1, ge=1)  # ... and be seen in at least this many frames
    close_after_s: float = Field(0.0, ge=0)  # the condition must be clear this long to close it
    rate: float = Field(ge=0)  # risk points per second while the event is open
    open_points: float = Field(0.0, ge=0)  # risk points added once when it opens
    severity: str = "medium"


def _default_rules() -> dict[str, EventRule]:
    return {
        "FACE_MISSING": EventRule(open_after_s=3.0, min_frames=2, close_after_s=0.5, rate=4, open_points=5, severity="medium"),
        "MULTIPLE_FACES": EventRule(open_after_s=1.0, min_frames=2, close_after_s=0.5, rate=10, open_points=10, severity="high"),
        "EXTRA_PERSON": EventRule(open_after_s=1.0, min_frames=2, close_after_s=0.5, rate=8, open_points=8, severity="high"),
        "LOOKING_AWAY": EventRule(open_after_s=2.0, min_frames=2, close_after_s=0.5, rate=4, open_points=3, severity="low"),
        "HEAD_TURNED": EventRule(open_after_s=2.0, min_frames=2, close_after_s=0.5, rate=3, open_points=3, severity="low"),
        "PHONE_DETECTED": EventRule(open_after_s=0.0, min_frames=2, close_after_s=1.0, rate=10, open_points=15, severity="high"),
        "BOOK_DETECTED": EventRule(open_after_s=0.0, min_frames=2, close_after_s=1.0, rate=6, open_points=8, severity="medium"),
        "DEVICE_DETECTED": EventRule(open_after_s=0.0, min_frames=2, close_after_s=1.0, rate=3, open_points=5, severity="medium"),
    }


class RiskConfig(BaseModel):
    decay_per_s: float = Field(2.0, ge=0)  # score decay while no event is open
    cheating_threshold: float = Field(70, ge=0, le=100)  # `cheating` is true at or above this score
    suspicious_peak: float = Field(30, ge=0, le=100)  # verdict SUSPICIOUS when the peak reaches this
    cheating_peak: float = Field(70, ge=0, le=100)  # verdict CHEATING when the peak reaches this
    attention_window_s: float = Field(10.0, gt=0)  # attention = share of this recent window spent attentive
    attention_floor: float = Field(50, ge=0, le=100)  # attention under this adds a penalty
    attention_penalty_per_s: float = Field(2.0, ge=0)  # penalty rate at zero attention (scales linearly)
    head_yaw_limit_deg: float = Field(30, ge=0)  # |yaw| beyond this is HEAD_TURNED
    head_pitch_limit_deg: float = Field(25, ge=0)  # |pitch| beyond this is HEAD_TURNED
    extra_person_min: int = Field(2, ge=2)  # YOLO persons at or above this open EXTRA_PERSON
    device_labels: list[str] = Field(default_factory=lambda: ["tv", "laptop", "remote"])
    talking_window_s: float = Field(2.0, gt=0)  # talking = mouth movement within this window ...
    talking_mouth_range: float = Field(0.15, ge=0)  # ... swinging the mouth opening by this much ...
    talking_min_frames: int = Field(3, ge=2)  # ... over at least this many frames
    max_gap_s: float = Field(5.0, gt=0)  # a longer gap between frames counts only this much time
    rules: dict[str, EventRule] = Field(default_factory=_default_rules)

    def model_post_init(self, _ctx) -> None:
        # Partial `rules:` in YAML override only the types they name.
        merged = _default_rules()
        merged.update(self.rules)
        unknown = set(merged) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types in risk.rules: {sorted(unknown)}")
        self.rules = merged
