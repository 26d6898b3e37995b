"""The edX provider calls, mapped onto Proctor's sessions: an exam is stored as the LMS sent it; an
attempt is a session created REGISTERED (attempt id = session id); `started` opens it (frames
accepted), `submitted` ends it (verdict, report, and the result to the LMS through the outbox),
`error` ends it with status error (no result sent); deleting an attempt deletes the session, and
retiring a user deletes all of theirs. Store calls run off the event loop."""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from auth.tokens import AccessPolicy
from errors import Conflict, InvalidRequest, NotFound
from sessions.service import SessionService
from sessions.status import SessionStatus
from settings import EdxConfig
from store.base import SessionStoreBase

# What the LMS shows instructors as this provider's rules (edx-proctoring's `rules`), and what
# Proctor watches for whatever they are set to: the rules are stored with the exam, not scored.
RULES = {
    "face_visible": "Your face must stay visible to the webcam.",
    "no_other_people": "No other person may be in view.",
    "no_phone": "No phone, tablet or second screen may be in view.",
    "no_books_or_notes": "No books or notes may be in view.",
    "look_at_screen": "Keep your eyes on the exam, not away from the screen for long.",
}
INSTRUCTIONS = [
    "Allow this page to use your webcam when your browser asks.",
    "Sit facing the camera in a lit room, alone, with no phone, books or notes in view.",
    "Keep the webcam page open until you have submitted the exam.",
]
EDX_STATUS = {SessionStatus.REGISTERED: "created", SessionStatus.OPEN: "started", SessionStatus.ENDING: "submitted",
              SessionStatus.ENDED: "submitted", SessionStatus.ABANDONED: "submitted", SessionStatus.ERROR: "error"}
USER_ID = re.compile(r"^[A-Za-z0-9._:@+-]{1,100}$")


class EdxProvider:
    def __init__(self, store: SessionStoreBase, sessions: SessionService, access: AccessPolicy, cfg: EdxConfig):
        self.store = store
        self.sessions = sessions
        self.access = access
        self.cfg = cfg

    def config(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"name": "Proctor", "rules": RULES, "instructions": INSTRUCTIONS}
        if self.cfg.capture_url:
            answer["download_url"] = self.cfg.capture_url
        return answer

    # ---- exams ------------------------------------------------------------------------------
    async def save_exam(self, exam: dict[str, Any], exam_id: str | None = None) -> dict[str, Any]:
        """Create (no id) or update the exam; its id is Proctor's (the LMS keeps it as external_id)."""
        create = exam_id is None
        exam_id = exam_id or uuid.uuid4().hex
        stored = {k: exam.get(k) for k in ("id", "name", "course_id", "rules", "rule_summary", "is_practice",
                                           "is_proctored", "time_limit_mins", "is_active") if k in exam}
        if not await asyncio.to_thread(self.store.put_edx_exam, exam_id, str(exam.get("course_id") or ""), stored,
                                       time.time(), create):
            raise NotFound(f"no exam {exam_id!r}")
        return {"id": exam_id}

    async def exam(self, exam_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(self.store.edx_exam, exam_id)
        if found is None:
            raise NotFound(f"no exam {exam_id!r}")
        return {"id": exam_id, "external_id": exam_id, "course_id": found["course_id"],
                "name": found.get("name"), "rules": found.get("rules") or {}, "is_practice": found.get("is_practice")}

    # ---- attempts ---------------------------------------------------------------------------
    async def create_attempt(self, exam_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.exam(exam_id)
        lms_host = str(body.get("lms_host") or "").rstrip("/")
        if lms_host != self.cfg.lms_url:
            raise InvalidRequest(f"lms_host: {lms_host!r} is not the configured LMS (edx.lms_url)")
        user_id = str(body.get("user_id") or "")
        if not USER_ID.match(user_id):
            raise InvalidRequest("user_id: 1-100 of A-Z a-z 0-9 . _ : @ + -")
        session_id = str(uuid.uuid4())
        # Kept: what the review needs. Not kept: the learner's name and email (the LMS has them).
        data = {k: body.get(k) for k in ("time_limit_mins", "is_sample_attempt", "review_policy",
                                         "review_policy_exception")}
        await asyncio.to_thread(self.store.create_edx_attempt, session_id, f"edx:{user_id}", time.time(), exam_id,
                                user_id, lms_host, data)
        return {"id": session_id}

    async def _attempt(self, exam_id: str, attempt_id: str) -> dict[str, Any]:
        attempt = await asyncio.to_thread(self.store.edx_attempt, attempt_id)
        if attempt is None or attempt["exam_id"] != exam_id:
            raise NotFound(f"no attempt {attempt_id!r} of exam {exam_id!r}")
        return attempt

    async def _status(self, attempt_id: str) -> SessionStatus:
        return (await self.sessions.record(attempt_id))["status"]

    async def update_attempt(self, exam_id: str, attempt_id: str, status: str) -> dict[str, Any]:
        await self._attempt(exam_id, attempt_id)
        current = await self._status(attempt_id)
        if status == "started":
            if current is SessionStatus.REGISTERED:
                await self.sessions.open(attempt_id)
            elif current is not SessionStatus.OPEN:
                raise Conflict(f"attempt {attempt_id} is {EDX_STATUS[current]}: it cannot start again")
            return {"status": "started"}
        end_status = SessionStatus.ERROR if status == "error" else SessionStatus.ENDED
        if current is SessionStatus.REGISTERED:
            await self.sessions.open(attempt_id)  # never started: ended at once, with no frames
            current = SessionStatus.OPEN
        if current is SessionStatus.OPEN:
            await self.sessions.end(attempt_id, end_status)
            return {"status": status}
        return {"status": EDX_STATUS[current]}  # ended already: the same answer again

    async def attempt(self, exam_id: str, attempt_id: str) -> dict[str, Any]:
        await self._attempt(exam_id, attempt_id)
        record = await self.sessions.record(attempt_id)
        answer: dict[str, Any] = {"id": attempt_id, "status": EDX_STATUS[record["status"]],
                                  "instructions": INSTRUCTIONS}
        if record["verdict"] is not None:
            answer["verdict"] = record["verdict"]
        if self.cfg.capture_url and record["status"] in (SessionStatus.REGISTERED, SessionStatus.OPEN):
            token, _ = self.access.session_token(attempt_id, time.time())
            answer["download_url"] = f"{self.cfg.capture_url}?{urlencode({'session_id': attempt_id, 'token': token})}"
        return answer

    async def delete_attempt(self, exam_id: str, attempt_id: str) -> dict[str, Any]:
        await self._attempt(exam_id, attempt_id)
        await self.sessions.delete(attempt_id, "at the LMS's request (attempt deleted)")
        return {"status": "deleted"}

    async def retire_user(self, user_id: str) -> bool:
        """Every session of the user deleted; True when there was any."""
        session_ids = await asyncio.to_thread(self.store.edx_sessions_of_user, user_id)
        for session_id in session_ids:
            try:
                await self.sessions.delete(session_id, "at the LMS's request (user retired)")
            except NotFound:
                pass  # deleted meanwhile
        return bool(session_ids)
