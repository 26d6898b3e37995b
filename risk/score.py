"""The live risk score and the end-of-session verdict (pure; every time is passed in)."""
from __future__ import annotations

from risk.config import RiskConfig


def advance_score(score: float, dt: float, open_rates: list[float], attention: float, cfg: RiskConfig) -> float:
    """Move the score across an interval of dt seconds.

    Open events add their rates. Attention under the floor adds a penalty proportional to how far
    under it is. Only when all is well (no open event, attention at or above the floor) does the
    score decay at `decay_per_s`. Clamped to 0-100.
    """
    if dt <= 0:
        return score
    low_attention = cfg.attention_floor > 0 and attention < cfg.attention_floor
    if open_rates:
        score += sum(open_rates) * dt
    if low_attention:
        shortfall = (cfg.attention_floor - attention) / cfg.attention_floor
        score += cfg.attention_penalty_per_s * shortfall * dt
    if not open_rates and not low_attention:
        score -= cfg.decay_per_s * dt
    return clamp(score)


def clamp(score: float) -> float:
    return min(100.0, max(0.0, score))


def verdict(peak_score: float, cfg: RiskConfig) -> str:
    """The worst sustained behaviour decides, not the (decayed) score at the end."""
    if peak_score >= cfg.cheating_peak:
        return "CHEATING"
    if peak_score >= cfg.suspicious_peak:
        return "SUSPICIOUS"
    return "CLEAN"
