"""RiskSession: one named, detached Ray actor per interview session, holding its risk state.

The actor is a thin shell over the pure `risk.engine.RiskEngine`; all the math lives there.
"""
from __future__ import annotations

from typing import Any

import ray

from risk.clock import FrameClock
from risk.config import RiskConfig
from risk.engine import RiskEngine
from risk.filters import TalkingDetector
from risk.observation import Observation, frame_usable
from vision.quality import frozen

NAMESPACE = "proctor"


def actor_name(session_id: str) -> str:
    return f"risk-session-{session_id}"


@ray.remote(max_restarts=0)
class RiskSession:
    def __init__(self, session_id: str, candidate_id: str, risk_config: dict[str, Any], started_at: float):
        self.session_id = session_id
        self.candidate_id = candidate_id
        cfg = RiskConfig(**risk_config)
        self.clock = FrameClock()
        self.engine = RiskEngine(cfg, started_at)
        self.talking = TalkingDetector(cfg.talking_window_s, cfg.talking_mouth_range, cfg.talking_min_frames)
        self.last_digest: str | None = None

    def observe(self, face: dict[str, Any], objects: list[dict[str, Any]],
                client_timestamp: float | None, arrival: float) -> dict[str, Any]:
        t = self.clock.frame_time(client_timestamp, arrival)
        quality = face.get("quality") or {}
        issues = list(quality.get("issues", []))
        digest = quality.get("digest")
        if frozen(self.last_digest, digest):
            issues.append("frozen")
        self.last_digest = digest
        usable = frame_usable(face.get("faces", 0), issues)
        result = self.engine.observe(Observation.from_results(t, face, objects, usable))
        expression = face.get("expression") or {}
        result["talking"] = self.talking.add(t, expression.get("mouth_openness") if usable else None)
        result["frame_quality"] = {
            "usable": usable,
            "issues": issues,
            **{k: quality[k] for k in ("brightness", "contrast", "sharpness") if k in quality},
        }
        result["frame_time"] = t
        return result

    def state(self) -> dict[str, Any]:
        return self.engine.state()

    def finish(self, now: float) -> dict[str, Any]:
        return self.engine.finish(now)


def create_session_actor(session_id: str, candidate_id: str, risk_config: dict[str, Any],
                         started_at: float, num_cpus: float):
    return RiskSession.options(
        name=actor_name(session_id),
        namespace=NAMESPACE,
        lifetime="detached",  # outlives the ingress replica that created it
        num_cpus=num_cpus,
    ).remote(session_id, candidate_id, risk_config, started_at)


def find_session_actor(session_id: str):
    try:
        return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)
    except ValueError:
        return None
