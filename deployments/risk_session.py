"""RiskSession: one named, detached Ray actor per interview session, holding its risk state.

The actor is a thin shell over the pure `risk.engine.RiskEngine`; all the math lives there.
"""
from __future__ import annotations

from typing import Any

import ray

from risk.clock import FrameClock
from risk.config import RiskConfig
from risk.engine import RiskEngine
from risk.observation import Observation

NAMESPACE = "proctor"


def actor_name(session_id: str) -> str:
    return f"risk-session-{session_id}"


@ray.remote(max_restarts=0)
class RiskSession:
    def __init__(self, session_id: str, candidate_id: str, risk_config: dict[str, Any], started_at: float):
        self.session_id = session_id
        self.candidate_id = candidate_id
        self.clock = FrameClock()
        self.engine = RiskEngine(RiskConfig(**risk_config), started_at)

    def observe(self, face: dict[str, Any], objects: list[dict[str, Any]],
                client_timestamp: float | None, arrival: float) -> dict[str, Any]:
        t = self.clock.frame_time(client_timestamp, arrival)
        result = self.engine.observe(Observation.from_results(t, face, objects))
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
