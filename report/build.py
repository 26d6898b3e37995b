"""The reviewer's report as JSON, from the session store alone (works for open and ended sessions)."""
from __future__ import annotations

from typing import Any

from store.base import SessionStoreBase


def report_path(request, session_id: str) -> str:
    """The report's path as the client reaches it: under the app's route prefix (Serve's root_path)."""
    return f"{request.scope.get('root_path', '')}/sessions/{session_id}/report"


def build_report(store: SessionStoreBase, session_id: str, path: str) -> dict[str, Any] | None:
    """The report of the session, `path` being where it is served (`report_path`): evidence URLs
    sit beside it."""
    record = store.get(session_id)
    if record is None:
        return None
    started = record["started_at"]
    observations = store.observations(session_id)
    with_evidence = set(store.evidence_confidences(session_id))
    summary = record["summary"] or {}
    events = summary.get("events") or store.events(session_id)
    events = sorted(events, key=lambda e: (e["start"], e["id"]))
    for event in events:
        event["start_offset_s"] = round(event["start"] - started, 2)
        event["end_offset_s"] = None if event.get("end") is None else round(event["end"] - started, 2)
        event["evidence_url"] = (path.removesuffix("/report") + f"/events/{event['id']}/evidence.jpg"
                                 if event["id"] in with_evidence else None)
    timeline = [{
        "t": round(o["t"], 3),
        "offset_s": round(o["t"] - started, 2),
        "score": round(o["score"], 1),
        "attention": round(o["attention"], 1),
        "usable": o["observation"].get("usable", True),
    } for o in observations]
    return {
        "session_id": session_id,
        "candidate_id": record["candidate_id"],
        "status": record["status"].value,
        "started_at": started,
        "ended_at": record["ended_at"],
        "verdict": record["verdict"],
        "verdict_reasons": summary.get("verdict_reasons", []),
        "final_risk_score": summary.get("final_risk_score", timeline[-1]["score"] if timeline else 0),
        "peak_risk_score": summary.get("peak_risk_score", max((p["score"] for p in timeline), default=0)),
        "duration_seconds": summary.get("duration_seconds"),
        "frames": len(timeline),
        "unusable_frames": sum(not p["usable"] for p in timeline),
        "violations_by_type": summary.get("violations_by_type", {}),
        "calibration": summary.get("calibration"),
        "identity": summary.get("identity"),
        "events": events,
        "timeline": timeline,
    }
