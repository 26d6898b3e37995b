"""The review as a fold of its actions, and the edX result built from a reviewed report (pure:
no Ray, no store). The same through the running app: test_integrations.py and test_edx.py."""
from __future__ import annotations

from edx.results import review_payload
from reviews.model import final_verdict, fold, merge_into_report, reviewer_event
from tests.fake_lms import contract_problems


def action(seq, kind, reviewer="ana", **data):
    return {"seq": seq, "at": 100.0 + seq, "reviewer": reviewer, "action": kind, **data}


def test_the_latest_decision_and_outcome_win_and_the_history_keeps_all():
    actions = [action(1, "event_reviewed", event_id="e1", decision="confirmed", note="phone"),
               action(2, "event_reviewed", reviewer="bo", event_id="e1", decision="dismissed", note="a calculator"),
               action(3, "outcome", outcome="CHEATING", comment="x"),
               action(4, "outcome", reviewer="bo", outcome="CLEAN", comment=None)]
    review, decisions, added = fold(actions)
    assert decisions["e1"] == {"decision": "dismissed", "note": "a calculator", "reviewer": "bo", "reviewed_at": 102.0}
    assert (review["status"], review["outcome"], review["reviewer"], review["reviewed_at"]) == ("completed", "CLEAN", "bo", 104.0)
    assert [h["action"] for h in review["history"]] == ["event_reviewed", "event_reviewed", "outcome", "outcome"]
    assert added == [] and final_verdict("SUSPICIOUS", review) == "CLEAN"
    pending, _, _ = fold(actions[:2])
    assert pending["status"] == "pending" and final_verdict("SUSPICIOUS", pending) == "SUSPICIOUS"


def _report(verdict="SUSPICIOUS", frames=10, unusable=0):
    auto = {"id": "0001-phone-detected", "type": "PHONE_DETECTED", "severity": "high", "start": 1001.2, "end": 1004.6,
            "duration": 3.4, "frame_count": 7, "peak_confidence": 0.81, "start_offset_s": 1.2, "end_offset_s": 4.6,
            "evidence_url": "/x.jpg"}
    return {"verdict": verdict, "verdict_reasons": ["peak risk score 45 >= 30"], "peak_risk_score": 45.0,
            "frames": frames, "unusable_frames": unusable, "started_at": 1000.0, "events": [auto]}


def test_the_edx_result_is_never_a_violation_without_a_human():
    for verdict, status in (("CLEAN", "passed"), ("SUSPICIOUS", "suspicious"), ("CHEATING", "suspicious")):
        payload = review_payload(merge_into_report(_report(verdict), []), human=False)
        assert payload["status"] == status and contract_problems(payload) == [] and "reviewed_by" not in payload
    assert review_payload(merge_into_report(_report(frames=4, unusable=4), []), human=False)["status"] == "not_reviewed"
    added = reviewer_event("rev-1-talking", "TALKING", 1000.0, 5.5, None, "whispering", "low")
    actions = [action(1, "event_reviewed", event_id="0001-phone-detected", decision="confirmed", note="in hand"),
               action(2, "event_added", event=added),
               action(3, "outcome", reviewer="staff@example.edu", outcome="CHEATING", comment="confirmed")]
    payload = review_payload(merge_into_report(_report(), actions), human=True)
    assert payload["status"] == "violation" and payload["reviewed_by"] == "staff@example.edu"
    assert contract_problems(payload) == []
    summary, phone, talking = payload["comments"]
    assert "human review: CHEATING" in summary["comment"]
    assert (phone["status"], phone["start"], phone["stop"], phone["duration"]) == ("confirmed", 1, 5, 4)
    assert "in hand" in phone["comment"] and phone["comment"].startswith("PHONE_DETECTED")
    assert (talking["status"], talking["start"], talking["stop"], talking["duration"]) == ("added", 5, 6, 1)
    # a human CLEAN is passed; a reviewer without an email address is not sent as reviewed_by
    clean = [action(1, "outcome", reviewer="key_abc", outcome="CLEAN")]
    payload = review_payload(merge_into_report(_report(), clean), human=True)
    assert payload["status"] == "passed" and "reviewed_by" not in payload
