"""The reaper: ends sessions idle past `idle_timeout_s` (verdict kept, status abandoned), releases
ends whose claimer died, and deletes sessions past `retention_days`.

One per application, not one per ingress replica: every replica's loop asks the store for the
reaper lease each round, and only its holder sweeps (another takes over when the holder dies and
the lease expires). It ends sessions through the session service, exactly as /end-session does.
An asyncio task on the replica's loop; store calls run in threads, so it never blocks requests.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

from errors import ProctorError
from sessions.service import SessionService
from sessions.status import SessionStatus
from settings import IngressConfig
from store.base import SessionStoreBase

logger = logging.getLogger("ray.serve")

LEASE = "session-reaper"


class SessionReaper:
    def __init__(self, sessions: SessionService, store: SessionStoreBase, cfg: IngressConfig):
        self.sessions = sessions
        self.store = store
        self.cfg = cfg
        self.holder = uuid.uuid4().hex  # this replica
        self.lease_s = 3 * cfg.reaper_interval_s  # outlives a slow sweep; a dead holder is replaced after it

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.reaper_interval_s)
            try:
                await self.sweep(time.time())
            except Exception:  # noqa: BLE001 - the reaper must outlive any one bad sweep
                logger.exception("session reaper sweep failed")

    async def sweep(self, now: float) -> bool:
        """One round; False when another replica holds the lease (and so does the work)."""
        if not await asyncio.to_thread(self.store.take_lease, LEASE, self.holder, now, self.lease_s):
            return False
        for session_id in await asyncio.to_thread(self.store.idle_sessions, now - self.cfg.idle_timeout_s):
            try:
                await self.sessions.end(session_id, SessionStatus.ABANDONED)
            except ProctorError as exc:  # ended meanwhile by the integrator, or its state is being rebuilt
                logger.info("session %s: idle, not ended this round (%s)", session_id, exc)
            except Exception:  # noqa: BLE001 - left open for the next sweep
                logger.exception("session %s: could not end the idle session", session_id)
        for session_id in await asyncio.to_thread(self.store.release_stuck_endings, now - self.cfg.ending_timeout_s):
            logger.warning("session %s: its end was claimed but never finished; open again", session_id)
        for session_id in await asyncio.to_thread(self.store.expired_sessions, now - self.cfg.retention_days * 86400):
            await self.sessions.delete(session_id, f"past the {self.cfg.retention_days:g}-day retention")
        await self.sessions.refresh_open_count()
        return True
