"""Where each session's risk state lives, behind one typed client: observe, state, finish.

Today: one named, detached `RiskSession` actor per session (the design card), found by name from
any ingress replica and rebuilt from the store when it is not running. Handles are cached per
ingress replica (a cache: a miss looks the actor up again). A call that meets a crashed or
restarting actor waits and retries on a fresh handle; a domain error the actor raises (the session
has ended) comes back as itself, not wrapped in Ray's error.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import ray
from ray.exceptions import RayActorError, RayTaskError

from contracts import Detections, FaceResult, RiskUpdate
from deployments.risk_session import find_session_actor, session_actor
from errors import ProctorError, SessionUnavailable
from sessions.status import SessionStatus
from settings import RiskConfig

logger = logging.getLogger("ray.serve")


class SessionDirectory:
    def __init__(self, risk_config: RiskConfig, store_location: str, num_cpus: float, call_timeout_s: float,
                 attempts: int = 4):
        self.risk_config = risk_config
        self.store_location = store_location
        self.num_cpus = num_cpus
        self.call_timeout_s = call_timeout_s
        self.attempts = attempts
        self._handles: dict[str, Any] = {}

    def knows(self, session_id: str) -> bool:
        """This replica holds a handle: the session was open when it last looked."""
        return session_id in self._handles

    async def observe(self, session_id: str, image_bytes: bytes, face: FaceResult, detections: Detections,
                      client_timestamp: float | None, arrival: float,
                      on_retry: Callable[[], Awaitable[None]] | None = None) -> RiskUpdate:
        return await self._call(session_id, "observe", image_bytes, face, detections, client_timestamp, arrival,
                                on_retry=on_retry)

    async def state(self, session_id: str, on_retry: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
        return await self._call(session_id, "state", on_retry=on_retry)

    async def finish(self, session_id: str, now: float, status: SessionStatus) -> dict[str, Any]:
        return await self._call(session_id, "finish", now, status)

    async def remove(self, session_id: str) -> None:
        """Stop the session's actor for good (its state is in the store)."""
        self._handles.pop(session_id, None)

        def kill() -> None:
            actor = find_session_actor(session_id)
            if actor is not None:
                ray.kill(actor, no_restart=True)

        await asyncio.to_thread(kill)

    async def _handle(self, session_id: str):
        handle = self._handles.get(session_id)
        if handle is None:
            handle = await asyncio.to_thread(session_actor, session_id, self.risk_config, self.store_location,
                                             self.num_cpus)
            self._handles[session_id] = handle
        return handle

    async def _call(self, session_id: str, method: str, *args, on_retry=None):
        """The actor's method; while it is being restarted, wait and try again (`on_retry` first,
        e.g. to stop retrying a session that ended meanwhile)."""
        for attempt in range(self.attempts):
            handle = await self._handle(session_id)
            try:
                return await asyncio.wait_for(getattr(handle, method).remote(*args), timeout=self.call_timeout_s)
            except RayTaskError as exc:
                if isinstance(exc.cause, ProctorError):
                    raise exc.cause from None
                raise
            except (RayActorError, asyncio.TimeoutError) as exc:
                logger.warning("session %s: actor unavailable for %s (%s), attempt %d",
                               session_id, method, type(exc).__name__, attempt + 1)
                self._handles.pop(session_id, None)
                if on_retry is not None:
                    await on_retry()
                await asyncio.sleep(0.25 * (attempt + 1))
        raise SessionUnavailable(f"session {session_id} state is temporarily unavailable, retry")
