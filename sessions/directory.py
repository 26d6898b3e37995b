"""Where each session's risk state lives, behind one typed client: observe, state, finish.

Today: one named, detached `RiskSession` actor per session (the design card), found by name from
any ingress replica and rebuilt from the store when it is not running. Handles are cached per
ingress replica (a cache: a miss looks the actor up again). A call that meets a crashed or
restarting actor waits and retries on a fresh handle; a domain error the actor raises (the session
has ended) comes back as itself, not wrapped in Ray's error.

Starting an actor is starting a process (0.5-1.5 s), so each replica keeps `warm` actors started
ahead, each under a session id made in advance (its actor's name): `reserve` hands one out.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from typing import Any, Awaitable, Callable

import ray
from ray.exceptions import RayActorError, RayTaskError

from contracts import AudioChunk, AudioUpdate, Detections, FaceResult, RiskUpdate
from deployments.risk_session import find_session_actor, session_actor
from errors import ProctorError, SessionUnavailable
from sessions.status import SessionStatus
from settings import RiskConfig

logger = logging.getLogger("ray.serve")


class SessionDirectory:
    def __init__(self, risk_config: RiskConfig, store_location: str, num_cpus: float, call_timeout_s: float,
                 attempts: int = 4, warm: int = 0, warm_ttl_s: float = 600.0):
        self.risk_config = risk_config
        self.store_location = store_location
        self.num_cpus = num_cpus
        self.call_timeout_s = call_timeout_s
        self.attempts = attempts
        self._handles: dict[str, Any] = {}
        self.warm = warm
        self.warm_ttl_s = warm_ttl_s
        self._warm: deque[tuple[str, Any, float]] = deque()  # (session id, handle, started), oldest first
        self._warming = 0
        self._refill: asyncio.Task | None = None

    async def reserve(self) -> str:
        """A new session's id; its actor is running already when a warm one was left. The caller
        creates the session in the store before any call to it."""
        session_id = None
        while self._warm and session_id is None:
            candidate, handle, started = self._warm.popleft()
            if time.monotonic() - started < self.warm_ttl_s / 2:
                session_id, self._handles[candidate] = candidate, handle
            else:
                ray.kill(handle, no_restart=True)  # too near its own exit to hand out
        self.top_up()
        return session_id or str(uuid.uuid4())

    def top_up(self) -> None:
        """Start warm actors in the background until `warm` are ready or starting."""
        if self.warm and (self._refill is None or self._refill.done()):
            self._refill = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while len(self._warm) + self._warming < self.warm:
            self._warming += 1
            session_id = str(uuid.uuid4())
            try:
                handle = await asyncio.to_thread(session_actor, session_id, self.risk_config, self.store_location,
                                                 self.num_cpus, self.warm_ttl_s)
                await asyncio.wait_for(handle.warm.remote(), timeout=self.call_timeout_s)
                self._warm.append((session_id, handle, time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - a failed warm-up only means a cold start later
                logger.warning("warm session actor did not start (%s): starts make their own", exc)
                return
            finally:
                self._warming -= 1

    def close(self) -> None:
        """Stop the warm actors (the replica is going away; unclaimed ones would leave on their own)."""
        if self._refill is not None:
            self._refill.cancel()
        while self._warm:
            ray.kill(self._warm.popleft()[1], no_restart=True)

    def knows(self, session_id: str) -> bool:
        """This replica holds a handle: the session was open when it last looked."""
        return session_id in self._handles

    async def observe(self, session_id: str, image_bytes: bytes, face: FaceResult, detections: Detections,
                      client_timestamp: float | None, arrival: float,
                      on_retry: Callable[[], Awaitable[None]] | None = None) -> RiskUpdate:
        return await self._call(session_id, "observe", image_bytes, face, detections, client_timestamp, arrival,
                                on_retry=on_retry)

    async def identity_result(self, session_id: str, result: dict[str, Any]) -> None:
        await self._call(session_id, "identity_result", result)

    async def observe_audio(self, session_id: str, chunk: AudioChunk, arrival: float,
                            on_retry: Callable[[], Awaitable[None]] | None = None) -> AudioUpdate:
        return await self._call(session_id, "observe_audio", chunk, arrival, on_retry=on_retry)

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
