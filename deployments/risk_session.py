"""RiskSession: one named, detached Ray actor per interview session, holding its risk state.

A thin shell over the pure `risk.engine.RiskEngine`. Every frame's observation summary, every event
change and each event's evidence snapshot is written to the session store before `observe` returns.
When the actor crashes, Ray restarts it (`max_restarts`) and the constructor replays the stored
observations through a fresh engine: the same score, the same events, the same event ids.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

import ray

from risk.clock import FrameClock
from risk.config import RiskConfig
from risk.engine import RiskEngine
from risk.observation import Observation, frame_usable
from store.session_store import open_store
from vision.evidence import render_evidence
from vision.face_gaze import FaceGazeConfig, classify_gaze

NAMESPACE = "proctor"


def actor_name(session_id: str) -> str:
    return f"risk-session-{session_id}"


@ray.remote(max_restarts=-1, max_task_retries=0)
class RiskSession:
    def __init__(self, session_id: str, risk_config: dict[str, Any], face_config: dict[str, Any],
                 store_location: str):
        self.session_id = session_id
        self.store = open_store(store_location)  # an SQLite path or a postgresql:// URL
        record = self.store.get(session_id)
        if record is None:
            raise ValueError(f"session {session_id} is not in the store")
        face_cfg = FaceGazeConfig(**face_config)
        self.engine = RiskEngine(RiskConfig(**risk_config), record["started_at"],
                                 classify_gaze=partial(classify_gaze, cfg=face_cfg),
                                 gaze_vertical_center=face_cfg.gaze_vertical_center)
        self.clock = FrameClock(record["clock_offset"])
        self.pending_best: dict[str, tuple[float, bytes, dict, list]] = {}  # type -> best pending frame
        rows = self.store.observations(session_id)
        for row in rows:  # rebuild after a crash or an app restart
            self.engine.observe(Observation.from_dict(row["observation"]))
        self.seq = rows[-1]["seq"] if rows else 0
        self.rebuilt_frames = len(rows)
        self.finished = record["status"] not in ("open", "ending")  # rebuilt after the end: read-only

    def observe(self, image_bytes: bytes, face: dict[str, Any], objects: list[dict[str, Any]],
                client_timestamp: float | None, arrival: float) -> dict[str, Any]:
        # A frame still in the models when end-session ran arrives after the verdict: refused, so
        # the report never holds a frame the verdict did not see.
        if self.finished:
            return {"session_ended": True}
        return self._observe(image_bytes, face, objects, client_timestamp, arrival)

    def _observe(self, image_bytes: bytes, face: dict[str, Any], objects: list[dict[str, Any]],
                 client_timestamp: float | None, arrival: float) -> dict[str, Any]:
        had_offset = self.clock.offset is not None
        t = self.clock.frame_time(client_timestamp, arrival)
        if not had_offset and self.clock.offset is not None:
            self.store.set_clock_offset(self.session_id, self.clock.offset)
        issues = list((face.get("quality") or {}).get("issues", []))
        obs = Observation.from_results(t, face, objects, frame_usable(face.get("faces", 0), issues))
        stored = obs.to_dict()  # the engine's input, before it marks frozen frames: replay needs it
        result = self.engine.observe(obs)
        if result["frozen"]:
            issues.append("frozen")
        result["frame_quality_issues"] = issues
        result["usable"] = obs.usable
        if result["duplicate"]:
            return result  # already recorded when it first arrived

        self.seq += 1
        changed = {e["id"]: e for e in result["open_events"]}
        for event in self.engine.events:
            if event.id in result["closed_ids"]:
                changed[event.id] = event.to_dict()  # closed by this frame
        evidence = self._evidence(t, image_bytes, face, objects, result)
        self.store.record_frame(self.session_id, self.seq, t, self.engine.score, result["attention"], stored,
                                list(changed.values()), evidence, seen_at=time.time())
        return result

    def _evidence(self, t, image_bytes, face, objects, result) -> list[tuple[str, float, float, bytes]]:
        """The frame with each event's strongest signal, boxes drawn. Frames before an event opened
        are kept in memory (one per type) until it opens or the condition clears."""
        out = []
        open_by_type = {e.type: e for e in self.engine.open_events()}
        for kind in result["peaks"]:
            if kind not in open_by_type:
                self.pending_best[kind] = (t, image_bytes, face, objects)
        for kind, event in open_by_type.items():
            if event.peak_time == t:
                frame = (t, image_bytes, face, objects)
            elif event.id in result["opened_ids"] and self.pending_best.get(kind, (None,))[0] == event.peak_time:
                frame = self.pending_best[kind]
            else:
                continue
            caption = f"{kind} {event.peak_confidence:.2f} at {time.strftime('%H:%M:%S', time.gmtime(frame[0]))} UTC"
            jpeg = render_evidence(frame[1], frame[2].get("face_boxes", []), frame[3], caption)
            out.append((event.id, frame[0], event.peak_confidence, jpeg))
        for kind in list(self.pending_best):
            if kind in open_by_type or self.engine.pending_since(kind) is None:
                del self.pending_best[kind]  # opened (evidence saved) or the condition cleared
        return out

    def state(self) -> dict[str, Any]:
        return {**self.engine.state(), "rebuilt_frames": self.rebuilt_frames}

    def finish(self, now: float, status: str = "ended") -> dict[str, Any]:
        summary = self.engine.finish(now)
        summary["status"] = status
        self.store.save_events(self.session_id, summary["events"])
        self.store.end(self.session_id, now, summary, status=status)
        self.finished = True  # calls run one at a time here: no frame can slip in between
        return summary


def session_actor(session_id: str, risk_config: dict[str, Any], face_config: dict[str, Any],
                  store_location: str, num_cpus: float):
    """The session's actor: the running one, or a new one rebuilt from the store."""
    return RiskSession.options(
        name=actor_name(session_id),
        namespace=NAMESPACE,
        lifetime="detached",  # outlives the ingress replica that made it
        get_if_exists=True,  # several ingress replicas may race to (re)create it
        num_cpus=num_cpus,
    ).remote(session_id, risk_config, face_config, store_location)


def find_session_actor(session_id: str):
    try:
        return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)
    except ValueError:
        return None
