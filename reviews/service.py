"""The review calls: decide on an event, add one, give the outcome, and the queue. Every action is
one append to the session's review history, refused (409) while the session is open; the outcome's
append carries the review.completed event in the same transaction. Store calls run off the event
loop."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

from errors import InvalidRequest, NotFound, SessionNotFound, SessionStillOpen
from outbox.events import review_completed
from report.build import build_report
from reviews.model import fold
from reviews.model import reviewer_event as make_reviewer_event
from settings import RiskConfig
from store.base import SessionStoreBase


def encode_cursor(peak: float, session_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([peak, session_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        peak, session_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(peak), str(session_id)
    except (ValueError, TypeError):
        raise InvalidRequest("cursor: not a cursor this service gave") from None


class ReviewService:
    def __init__(self, store: SessionStoreBase, risk: RiskConfig):
        self.store = store
        self.risk = risk

    async def _report(self, session_id: str, path: str) -> dict[str, Any]:
        report = await asyncio.to_thread(build_report, self.store, session_id, path)
        if report is None:
            raise SessionNotFound(session_id)
        if report["status"] not in ("ended", "abandoned", "error"):
            raise SessionStillOpen(f"session {session_id} has not ended ({report['status']}): it can be reviewed "
                                   "once it has")
        return report

    async def _append(self, session_id: str, reviewer: str, action: str, data: dict[str, Any],
                      at: float | None = None, **kwargs) -> None:
        if not await asyncio.to_thread(self.store.add_review_action, session_id, at or time.time(), reviewer, action,
                                       data, **kwargs):
            if await asyncio.to_thread(self.store.get, session_id) is None:
                raise SessionNotFound(session_id)
            raise SessionStillOpen(f"session {session_id} has not ended: it can be reviewed once it has")

    async def review_event(self, session_id: str, event_id: str, decision: str, note: str | None, reviewer: str,
                           path: str) -> dict[str, Any]:
        report = await self._report(session_id, path)
        if not any(e["id"] == event_id for e in report["events"]):
            raise NotFound(f"no event {event_id!r} in session {session_id}")
        await self._append(session_id, reviewer, "event_reviewed", {"event_id": event_id, "decision": decision,
                                                                    "note": note})
        return await self._event(session_id, event_id, path)

    async def add_event(self, session_id: str, kind: str, start_offset_s: float, end_offset_s: float | None,
                        note: str, reviewer: str, path: str) -> dict[str, Any]:
        report = await self._report(session_id, path)
        if end_offset_s is not None and end_offset_s < start_offset_s:
            raise InvalidRequest("end_offset_s: before start_offset_s")
        duration = report["duration_seconds"]
        last = max([start_offset_s] + ([end_offset_s] if end_offset_s is not None else []))
        if duration is not None and last > duration + 1:
            raise InvalidRequest(f"the event lies beyond the session's end ({duration:.1f} s)")
        rule = self.risk.rules.get(kind)
        event_id = f"rev-{uuid.uuid4().hex[:8]}-{kind.lower().replace('_', '-')}"
        event = make_reviewer_event(event_id, kind, report["started_at"], start_offset_s, end_offset_s, note,
                                    rule.severity if rule else "medium")
        await self._append(session_id, reviewer, "event_added", {"event": event})
        return await self._event(session_id, event_id, path)

    async def _event(self, session_id: str, event_id: str, path: str) -> dict[str, Any]:
        report = await asyncio.to_thread(build_report, self.store, session_id, path)
        if report is None:
            raise SessionNotFound(session_id)  # deleted meanwhile
        return next(e for e in report["events"] if e["id"] == event_id)

    async def complete(self, session_id: str, outcome: str, comment: str | None, reviewer: str,
                       path: str) -> dict[str, Any]:
        report = await self._report(session_id, path)
        review, _, _ = fold(await asyncio.to_thread(self.store.review_actions, session_id))
        now = time.time()
        review.update(status="completed", outcome=outcome, comment=comment, reviewer=reviewer, reviewed_at=now)
        event = review_completed(session_id, report["candidate_id"], report["verdict"], review)
        await self._append(session_id, reviewer, "outcome", {"outcome": outcome, "comment": comment}, at=now,
                           outcome=outcome, outbox=[event])
        report = await asyncio.to_thread(build_report, self.store, session_id, path)
        if report is None:
            raise SessionNotFound(session_id)
        return {"session_id": session_id, "verdict": report["verdict"], "final_verdict": report["final_verdict"],
                "review": report["review"]}

    async def queue(self, reviewed: bool, limit: int, cursor: str | None) -> dict[str, Any]:
        after = decode_cursor(cursor) if cursor else None
        rows = await asyncio.to_thread(self.store.review_queue, reviewed, limit + 1, after)
        page = rows[:limit]
        next_cursor = (encode_cursor(page[-1]["peak_risk_score"], page[-1]["session_id"])
                       if len(rows) > limit else None)
        return {"items": page, "next_cursor": next_cursor}
