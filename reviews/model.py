"""A session's review as the fold of its reviewer actions (stored in order, never rewritten), so
the history is the record and the state is derived from it. Pure code (no Ray).

Actions: `event_reviewed` {event_id, decision: confirmed|dismissed, note}, `event_added` {event},
`outcome` {outcome: CLEAN|SUSPICIOUS|CHEATING, comment}. A later action on the same event or a
second outcome (a re-review) wins; the history keeps them all.
"""
from __future__ import annotations

from typing import Any

from settings import EVENT_TYPES

OUTCOMES = ("CLEAN", "SUSPICIOUS", "CHEATING")
DECISIONS = ("confirmed", "dismissed")
ADDED_TYPES = (*EVENT_TYPES, "OTHER")  # what a reviewer may add: a type the models know, or anything else


def fold(actions: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(the review, each event's latest decision by event id, the events reviewers added)."""
    review: dict[str, Any] = {"status": "pending", "outcome": None, "comment": None, "reviewer": None,
                              "reviewed_at": None, "history": []}
    decisions: dict[str, dict[str, Any]] = {}
    added: list[dict[str, Any]] = []
    for action in actions:
        kind, at, reviewer = action["action"], action["at"], action["reviewer"]
        entry = {"at": at, "reviewer": reviewer, "action": kind}
        if kind == "event_reviewed":
            decisions[action["event_id"]] = {"decision": action["decision"], "note": action.get("note"),
                                             "reviewer": reviewer, "reviewed_at": at}
            entry.update(event_id=action["event_id"], decision=action["decision"], note=action.get("note"))
        elif kind == "event_added":
            event = action["event"]
            added.append(event)
            entry.update(event_id=event["id"], note=event.get("note"))
        elif kind == "outcome":
            review.update(status="completed", outcome=action["outcome"], comment=action.get("comment"),
                          reviewer=reviewer, reviewed_at=at)
            entry.update(outcome=action["outcome"], comment=action.get("comment"))
        review["history"].append(entry)
    return review, decisions, added


def final_verdict(verdict: str | None, review: dict[str, Any]) -> str | None:
    """The review's outcome when there is one, else the automatic verdict."""
    return review["outcome"] if review["status"] == "completed" else verdict


def reviewer_event(event_id: str, kind: str, started_at: float, start_offset_s: float, end_offset_s: float | None,
                   note: str, severity: str) -> dict[str, Any]:
    """An event the models missed, as a reviewer describes it, in the report's event shape."""
    end_offset = start_offset_s if end_offset_s is None else end_offset_s
    start, end = started_at + start_offset_s, started_at + end_offset
    return {"id": event_id, "type": kind, "severity": severity, "start": start, "end": end,
            "frame_count": 0, "peak_confidence": 0.0, "peak_time": start, "last_seen": end,
            "duration": round(end - start, 3), "open": False, "source": "reviewer", "note": note,
            "start_offset_s": round(start_offset_s, 2), "end_offset_s": round(end_offset, 2)}


def merge_into_report(report: dict[str, Any], actions: list[dict[str, Any]]) -> dict[str, Any]:
    """The report with the review beside it: every event's source and decision, the added events
    (in time order with the rest), `review` and `final_verdict`."""
    review, decisions, added = fold(actions)
    events = [{**e, "source": e.get("source", "auto"), "note": e.get("note")} for e in report["events"]]
    events += [{**e, "evidence_url": None} for e in added]
    events.sort(key=lambda e: (e["start"], e["id"]))
    for event in events:
        event["review"] = decisions.get(event["id"])
    return {**report, "events": events, "review": review, "final_verdict": final_verdict(report["verdict"], review)}
