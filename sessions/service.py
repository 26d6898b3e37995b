"""The one owner of session lifecycle: start, require-open, observe, end, delete.

`/start-session`, `/end-session`, `DELETE /sessions/{id}`, the frame pipeline (HTTP and WebSocket)
and the reaper all come here, so a session ends the same way whoever ends it: the same claim, the
same actor call and retries, the same log line and metrics, its rate-limit bucket and detector-gate view forgotten.

Who decides whether a session is open: the store's status (`sessions.status`), changed only by the
store's conditional updates. The directory's handle cache is an optimisation of that answer, and
the session's actor refuses frames once it has finished (calls to it run one at a time), which
closes the race with frames still in the models when the end runs. Store calls run off the event
loop (`asyncio.to_thread`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from contracts import AudioChunk, AudioUpdate, Detections, FaceResult, RiskUpdate
from errors import SessionClosed, SessionNotFound, TooManySessions
from observability import ProctorMetrics
from outbox.events import session_deleted, session_started
from reviews.model import final_verdict, fold
from sessions.directory import SessionDirectory
from sessions.status import SessionStatus
from store.base import SessionStoreBase

logger = logging.getLogger("ray.serve")


class PerSessionCache(Protocol):
    """Replica memory keyed by session (the rate limiter's buckets, the detector gate's views)."""

    def forget(self, session_id: str) -> None: ...


@dataclass(frozen=True)
class StartedSession:
    session_id: str
    candidate_id: str
    started_at: float
    mode: str = "interview"


class SessionService:
    def __init__(self, store: SessionStoreBase, directory: SessionDirectory, caches: Sequence[PerSessionCache],
                 metrics: ProctorMetrics, max_open_sessions: int):
        self.store = store
        self.directory = directory
        self.caches = caches  # forgotten when a session ends or is deleted
        self.metrics = metrics
        self.max_open_sessions = max_open_sessions

    async def start(self, candidate_id: str, mode: str = "interview",
                    reference: list[float] | None = None) -> StartedSession:
        """`mode` (interview | exam) sets which audio events count; `reference`: a reference photo's
        face descriptor (pipeline.identity), compared with the enrolled face once it has enrolled."""
        # Check-then-insert: replicas racing at the limit may pass it by one each (documented).
        if await asyncio.to_thread(self.store.open_session_count) >= self.max_open_sessions:
            raise TooManySessions(f"too many open sessions (limit {self.max_open_sessions}): "
                                  "end finished sessions or try again later")
        session = StartedSession(await self.directory.reserve(), candidate_id, time.time(), mode)
        await asyncio.to_thread(self.store.create, session.session_id, candidate_id, session.started_at, mode,
                                reference, outbox=[session_started(session.session_id, candidate_id, session.started_at)])
        await self.directory.state(session.session_id)  # the actor is up before the client sends frames
        await self.refresh_open_count()
        logger.info("session %s started for candidate %s (%s)", session.session_id, candidate_id, mode)
        return session

    async def open(self, session_id: str) -> bool:
        """A REGISTERED session (created ahead, e.g. an edX attempt) opens: its clock starts now and its
        actor is started. False when it was not registered (opened already, or ended)."""
        if await asyncio.to_thread(self.store.open_session_count) >= self.max_open_sessions:
            raise TooManySessions(f"too many open sessions (limit {self.max_open_sessions}): try again later")
        record = await self.record(session_id)
        now = time.time()
        if not await asyncio.to_thread(self.store.open_registered, session_id, now,
                                       [session_started(session_id, record["candidate_id"], now)]):
            return False
        await self.directory.state(session_id)  # the actor is up before frames come
        await self.refresh_open_count()
        logger.info("session %s opened for candidate %s", session_id, record["candidate_id"])
        return True

    async def record(self, session_id: str) -> dict[str, Any]:
        record = await asyncio.to_thread(self.store.get, session_id)
        if record is None:
            raise SessionNotFound(session_id)
        return record

    async def require_open(self, session_id: str) -> None:
        """SessionNotFound or SessionClosed unless the session takes frames. A replica that holds the
        session's handle skips the store read (the actor guards the end itself)."""
        if self.directory.knows(session_id):
            return
        record = await self.record(session_id)
        if record["status"] is not SessionStatus.OPEN:
            raise SessionClosed(_not_open(session_id, record["status"]))

    async def _still_open(self, session_id: str) -> None:
        record = await self.record(session_id)
        if record["status"] is not SessionStatus.OPEN:
            raise SessionClosed(f"session {session_id} has ended ({record['status'].value})")

    async def observe(self, session_id: str, image_bytes: bytes, face: FaceResult, detections: Detections,
                      client_timestamp: float | None, arrival: float) -> RiskUpdate:
        """Score one frame in the session's state. If the actor dies mid-call and the frame was stored
        before the crash, the retry is a duplicate (same capture time, same pixels): not scored twice."""
        return await self.directory.observe(session_id, image_bytes, face, detections, client_timestamp, arrival,
                                            on_retry=lambda: self._still_open(session_id))

    async def identity_result(self, session_id: str, result: dict[str, Any]) -> None:
        """A face descriptor the session's engine asked for; scored with its next frame."""
        await self.directory.identity_result(session_id, result)

    async def observe_audio(self, session_id: str, chunk: AudioChunk, arrival: float) -> AudioUpdate:
        """Score one audio chunk's speech in the session's state (a retried chunk is a duplicate)."""
        return await self.directory.observe_audio(session_id, chunk, arrival, on_retry=lambda: self._still_open(session_id))

    async def state(self, session_id: str) -> dict[str, Any]:
        """The record's fields plus the live state of an open session, or an ended one's summary."""
        record = await self.record(session_id)
        base = {k: record[k] for k in ("session_id", "candidate_id", "started_at", "ended_at", "verdict", "mode")}
        base["status"] = record["status"].value
        if record["status"].live:
            return {**base, **await self.directory.state(session_id)}
        if record["status"] is SessionStatus.REGISTERED:
            return base
        review, _, _ = fold(await asyncio.to_thread(self.store.review_actions, session_id))
        return {**base, **(record["summary"] or {}), "review": review,
                "final_verdict": final_verdict(record["verdict"], review)}

    async def end(self, session_id: str, status: SessionStatus = SessionStatus.ENDED) -> dict[str, Any]:
        """End the session: claim it (one claimer wins), let its actor give the verdict and store it,
        then free the actor. A failure puts the session back to open: nothing is lost, it can be
        ended again."""
        now = time.time()
        if not await asyncio.to_thread(self.store.transition, session_id, SessionStatus.OPEN, SessionStatus.ENDING, now):
            record = await self.record(session_id)
            raise SessionClosed(_not_open(session_id, record["status"]))
        try:
            summary = await self.directory.finish(session_id, now, status)
        except BaseException:
            await asyncio.to_thread(self.store.transition, session_id, SessionStatus.ENDING, SessionStatus.OPEN, now)
            raise
        await self.directory.remove(session_id)  # the summary is in the store; the actor's work is done
        self._forget(session_id)
        await self.refresh_open_count()
        logger.info("session %s %s: %s", session_id, status.value, summary["verdict"])
        return summary

    async def delete(self, session_id: str, reason: str = "on request") -> None:
        """Remove every trace of the session: its actor, observations, events, evidence and review
        (session.deleted goes out with the deletion)."""
        record = await self.record(session_id)
        await self.directory.remove(session_id)
        if not await asyncio.to_thread(self.store.delete, session_id,
                                       [session_deleted(session_id, record["candidate_id"], reason)]):
            raise SessionNotFound(session_id)  # deleted by another caller meanwhile
        self._forget(session_id)
        await self.refresh_open_count()
        logger.info("session %s deleted %s", session_id, reason)

    def _forget(self, session_id: str) -> None:
        for cache in self.caches:
            cache.forget(session_id)

    async def refresh_open_count(self) -> None:
        self.metrics.open_sessions(await asyncio.to_thread(self.store.open_session_count))


def _not_open(session_id: str, status: SessionStatus) -> str:
    if status is SessionStatus.REGISTERED:
        return f"session {session_id} has not started yet (registered): it takes no frames until it is opened"
    if status is SessionStatus.ENDING:
        return f"session {session_id} is being ended"
    return f"session {session_id} has ended ({status.value})"
