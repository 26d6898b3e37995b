"""The live risk score and the end-of-session verdict (pure; every time is passed in)."""
from __future__ import annotations

from settings import RiskConfig


def advance_score(score: float, dt: float, open_rates: list[float], attention: float, cfg: RiskConfig) -> float:
    """Move the score across an interval of dt seconds.

    Open events add their rates. Attention under the floor adds a penalty proportional to how far
    under it is. Only when all is well (no scoring event open, attention at or above the floor) does
    the score decay at `decay_per_s`. Clamped to 0-100.
    """
    if dt <= 0:
        return score
    open_rates = [r for r in open_rates if r > 0]
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


def verdict(peak_score: float, seconds_by_type: dict[str, float], cfg: RiskConfig) -> tuple[str, list[str]]:
    """The worst sustained behaviour decides, not the (decayed) score at the end.

    CHEATING when the peak score reached `cheating_peak` or any type's total open time reached its
    `cheating_after_s`; SUSPICIOUS likewise with `suspicious_peak` / `suspicious_after_s`; else CLEAN.
    Returns the verdict and the reasons, for the reviewer.
    """
    reasons: dict[str, list[str]] = {"CHEATING": [], "SUSPICIOUS": []}
    for level, peak_limit, field in (("CHEATING", cfg.cheating_peak, "cheating_after_s"),
                                     ("SUSPICIOUS", cfg.suspicious_peak, "suspicious_after_s")):
        if peak_score >= peak_limit:
            reasons[level].append(f"peak risk score {peak_score:.0f} >= {peak_limit:.0f}")
        for kind, seconds in sorted(seconds_by_type.items()):
            limit = getattr(cfg.rules[kind], field)
            if limit is not None and seconds >= limit:
                reasons[level].append(f"{kind} open {seconds:.1f} s in total >= {limit:g} s")
    for level in ("CHEATING", "SUSPICIOUS"):
        if reasons[level]:
            return level, reasons[level]
    return "CLEAN", [f"peak risk score {peak_score:.0f} < {cfg.suspicious_peak:.0f} and no sustained violation"]
