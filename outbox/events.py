"""What the service tells the outside world, as outbox events: each is written to the session store
in the same transaction as the change it reports (a session created, ended, reviewed, deleted), so
no change is ever made without its event, nor an event sent for a change that was rolled back. The
deliverer (`outbox.deliverer`) fans each one out to the webhook endpoints (and the edX LMS) and
sends it. Pure code (no Ray)."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SESSION_STARTED = "session.started"
SESSION_ENDED = "session.ended"
REVIEW_COMPLETED = "review.completed"
SESSION_DELETED = "session.deleted"
EVENT_TYPES = (SESSION_STARTED, SESSION_ENDED, REVIEW_COMPLETED, SESSION_DELETED)


@dataclass(frozen=True)
class OutboxEvent:
    """One event: its id is the webhook-id every delivery and retry of it carries."""

    type: str
    session_id: str
    data: dict[str, Any]
    message_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    created_at: float = field(default_factory=time.time)

    def row(self) -> tuple:
        return (self.message_id, self.type, self.session_id, self.created_at, json.dumps(self.data))


def session_started(session_id: str, candidate_id: str, started_at: float) -> OutboxEvent:
    return OutboxEvent(SESSION_STARTED, session_id, {"session_id": session_id, "candidate_id": candidate_id,
                                                     "started_at": started_at})


def session_ended(session_id: str, candidate_id: str, summary: dict[str, Any]) -> OutboxEvent:
    """Thin: the verdict and why, the peak score and the per-type breakdown (the report has the rest)."""
    keys = ("status", "verdict", "verdict_reasons", "peak_risk_score", "final_risk_score", "total_violations",
            "duration_seconds", "frames", "unusable_frames", "violations_by_type")
    return OutboxEvent(SESSION_ENDED, session_id, {"session_id": session_id, "candidate_id": candidate_id,
                                                   **{k: summary.get(k) for k in keys}})


def review_completed(session_id: str, candidate_id: str, verdict: str | None, review: dict[str, Any]) -> OutboxEvent:
    public = {k: review[k] for k in ("status", "outcome", "comment", "reviewer", "reviewed_at")}
    return OutboxEvent(REVIEW_COMPLETED, session_id, {"session_id": session_id, "candidate_id": candidate_id,
                                                      "verdict": verdict, "final_verdict": review["outcome"],
                                                      "review": public})


def session_deleted(session_id: str, candidate_id: str, reason: str) -> OutboxEvent:
    return OutboxEvent(SESSION_DELETED, session_id, {"session_id": session_id, "candidate_id": candidate_id,
                                                     "reason": reason})


def webhook_body(event: OutboxEvent, report_url: str | None) -> str:
    """The exact bytes every delivery of this event sends (and signs): Standard Webhooks' shape,
    {type, timestamp, data}; `data.report_url` added for events about a session that still exists."""
    data = dict(event.data)
    if report_url is not None:
        data["report_url"] = report_url
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.created_at)) + f".{int(event.created_at % 1 * 1000):03d}Z"
    return json.dumps({"type": event.type, "timestamp": stamp, "data": data}, separators=(",", ":"))
