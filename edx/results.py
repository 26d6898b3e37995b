"""The review result sent to the LMS (`POST {lms}/api/edx_proctoring/v1/proctored_exam/attempt/{id}/reviewed`),
from the session's report, and the deliverer's edX channel that sends it.

Status: an automatic verdict is `passed` (CLEAN) or `suspicious` (SUSPICIOUS, CHEATING: edX then
holds the attempt for its own second review, it never rejects on it); `not_reviewed` when no frame
could be judged; `violation` only after a human review's outcome CHEATING. One comment per event,
with whole seconds from the session's start."""
from __future__ import annotations

import json
import math
import re
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from outbox.events import REVIEW_COMPLETED, SESSION_ENDED, OutboxEvent
from outbox.http import Answer, post
from outbox.webhooks import delivery_id
from report.build import build_report
from settings import EdxConfig, WebhooksConfig
from store.base import SessionStoreBase

AUTOMATIC = {"CLEAN": "passed", "SUSPICIOUS": "suspicious", "CHEATING": "suspicious"}
HUMAN = {"CLEAN": "passed", "SUSPICIOUS": "suspicious", "CHEATING": "violation"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def review_url(lms_url: str, attempt_id: str) -> str:
    return f"{lms_url}/api/edx_proctoring/v1/proctored_exam/attempt/{attempt_id}/reviewed"


def _comment(event: dict[str, Any]) -> dict[str, Any]:
    review = event.get("review") or {}
    if event.get("source") == "reviewer":
        text, status = f"{event['type']}: {event.get('note') or 'added by a reviewer'}", "added"
    else:
        text = (f"{event['type']}: {event['severity']} severity, {event['frame_count']} frames, "
                f"peak confidence {event['peak_confidence']:.2f}")
        status = review.get("decision") or "auto"
    if review.get("note"):
        text += f"; reviewer: {review['note']}"
    start = max(0, math.floor(event["start_offset_s"]))
    end = event["end_offset_s"] if event["end_offset_s"] is not None else event["start_offset_s"] + event["duration"]
    stop = max(start, math.ceil(end))
    return {"comment": text, "status": status, "start": start, "stop": stop, "duration": stop - start}


def review_payload(report: dict[str, Any], human: bool) -> dict[str, Any]:
    """The LMS's review body for this report: automatic (at the end) or a human review's outcome."""
    review = report["review"]
    if human and review["status"] == "completed":
        status = HUMAN[review["outcome"]]
    elif report["frames"] - report["unusable_frames"] <= 0:
        status = "not_reviewed"
    else:
        status = AUTOMATIC.get(report["verdict"], "not_reviewed")
    reasons = "; ".join(report["verdict_reasons"]) or "no sustained violation"
    summary = f"Proctor verdict {report['verdict']} ({reasons}), peak risk score {report['peak_risk_score']:.0f}"
    if human and review["status"] == "completed":
        summary += f"; human review: {review['outcome']}" + (f" ({review['comment']})" if review["comment"] else "")
    comments = [{"comment": summary, "status": "review" if human else "automatic", "start": 0, "stop": 0,
                 "duration": 0}]
    comments += [_comment(e) for e in report["events"]]
    payload: dict[str, Any] = {"status": status, "comments": comments}
    if human and review["status"] == "completed" and review["reviewer"] and EMAIL.match(review["reviewer"]):
        payload["reviewed_by"] = review["reviewer"]  # an LMS user's email: edX records who reviewed
    return payload


class EdxChannel:
    """The deliverer's edX side: the LMS's review callback for an attempt's end and its reviews,
    authenticated with a JWT from the LMS's own client-credentials endpoint."""

    name = "edx"

    def __init__(self, store: SessionStoreBase, cfg: EdxConfig, webhooks: WebhooksConfig):
        self.store = store
        self.cfg = cfg
        self.webhooks = webhooks
        self._token: tuple[str, float] | None = None  # (token, expires at)

    def fan_out(self, event: OutboxEvent) -> list[dict[str, Any]]:
        if event.type not in (SESSION_ENDED, REVIEW_COMPLETED):
            return []
        if event.type == SESSION_ENDED and (not self.cfg.result_on_end or event.data.get("status") == "error"):
            return []
        if self.store.edx_attempt(event.session_id) is None:
            return []
        report = build_report(self.store, event.session_id, f"/sessions/{event.session_id}/report")
        if report is None:
            return []  # deleted meanwhile: nothing to report
        body = json.dumps(review_payload(report, human=event.type == REVIEW_COMPLETED))
        return [{"delivery_id": delivery_id(event.message_id, self.name), "event_type": event.type,
                 "channel": self.name, "endpoint_id": None, "url": review_url(self.cfg.lms_url, event.session_id),
                 "body": body}]

    async def _access_token(self, client: httpx.AsyncClient) -> str | Answer:
        if self._token is not None and self._token[1] > time.time() + 5:
            return self._token[0]
        form = {"grant_type": "client_credentials", "client_id": self.cfg.lms_client_id,
                "client_secret": self.cfg.lms_client_secret, "token_type": "jwt"}
        answer = await post(client, f"{self.cfg.lms_url}/oauth2/access_token",
                            urlencode(form).encode(),
                            {"content-type": "application/x-www-form-urlencoded"},
                            allow_loopback=self.webhooks.allow_loopback, timeout_s=self.webhooks.timeout_s)
        if not answer.ok:
            return Answer(answer.status, answer.retry_after_s,
                          f"LMS token: {answer.error or f'HTTP {answer.status}: {answer.text[:150]}'}")
        try:
            data = json.loads(answer.text)
            self._token = (data["access_token"], time.time() + float(data.get("expires_in", 60)))
        except (ValueError, KeyError, TypeError):
            return Answer(None, error="LMS token: the answer is not a token")
        return self._token[0]

    async def send(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> Answer | str:
        token = await self._access_token(client)
        if isinstance(token, Answer):
            return token
        answer = await post(client, delivery["url"], delivery["body"].encode(),
                            {"content-type": "application/json", "authorization": f"JWT {token}"},
                            allow_loopback=self.webhooks.allow_loopback, timeout_s=self.webhooks.timeout_s)
        if answer.status == 401:
            self._token = None  # expired or revoked: a new one next attempt
        return answer

    async def gone(self, delivery: dict[str, Any], answer: Answer) -> None:  # never called: 410 is a failure here
        return None
