"""The reviewer's report as JSON, from the session store alone (works for open and ended sessions)."""
from __future__ import annotations

from typing import Any

from audio.clip import waveform
from reviews.model import merge_into_report
from risk.voice import is_audio_row
from store.base import SessionStoreBase


def report_path(request, session_id: str) -> str:
    """The report's path as the client reaches it: under the app's route prefix (Serve's root_path)."""
    return f"{request.scope.get('root_path', '')}/sessions/{session_id}/report"


def build_report(store: SessionStoreBase, session_id: str, path: str) -> dict[str, Any] | None:
    """The report of the session, `path` being where it is served (`report_path`): evidence URLs
    sit beside it. The human review (if any) beside the automatic verdict and each event."""
    record = store.get(session_id)
    if record is None:
        return None
    started = record["started_at"]
    rows = store.observations(session_id)
    observations = [o for o in rows if not is_audio_row(o["observation"])]  # frames: the timeline
    heard = [o["observation"] for o in rows if is_audio_row(o["observation"])]
    with_evidence = set(store.evidence_confidences(session_id))
    audio_spans = store.audio_spans(session_id)
    summary = record["summary"] or {}
    events = summary.get("events") or store.events(session_id)
    events = sorted(events, key=lambda e: (e["start"], e["id"]))
    for event in events:
        event["start_offset_s"] = round(event["start"] - started, 2)
        event["end_offset_s"] = None if event.get("end") is None else round(event["end"] - started, 2)
        event["evidence_url"] = (path.removesuffix("/report") + f"/events/{event['id']}/evidence.jpg"
                                 if event["id"] in with_evidence else None)
        if event["id"] in audio_spans:
            t0, t1, has_clip = audio_spans[event["id"]]
            clip = store.audio_clip(session_id, event["id"]) if has_clip else None
            event["audio"] = {
                "start_offset_s": round(t0 - started, 2), "end_offset_s": round(t1 - started, 2),
                "clip_url": path.removesuffix("/report") + f"/events/{event['id']}/audio.wav" if has_clip else None,
                "waveform": waveform(clip[44:]) if clip else []}
    timeline = [{
        "t": round(o["t"], 3),
        "offset_s": round(o["t"] - started, 2),
        "score": round(o["score"], 1),
        "attention": round(o["attention"], 1),
        "usable": o["observation"].get("usable", True),
    } for o in observations]
    return merge_into_report({
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
        "mode": record["mode"],
        "audio_seconds": round(sum(a["duration"] for a in heard), 2),
        "speech": speech_spans(heard, started),
    }, store.review_actions(session_id))


def speech_spans(heard: list[dict[str, Any]], started: float, gap_s: float = 0.6) -> list[list[float]]:
    """Where speech was heard, as [start, end] offsets from the session's start: the speech blocks
    of the stored audio summaries, merged across gaps shorter than `gap_s`."""
    spans: list[list[float]] = []
    for chunk in heard:
        for t, duration, speech, _ in chunk["blocks"]:
            if speech < 0.5:
                continue
            start, end = round(t - started, 2), round(t + duration - started, 2)
            if spans and start - spans[-1][1] <= gap_s:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
    return spans
