"""The deliverer: fans each outbox event out to its deliveries (webhook endpoints, the edX LMS),
then sends the due ones, retrying on the Standard Webhooks schedule.

One per application: every ingress replica's loop asks the store for the lease each round and only
its holder works (as the reaper does). Deliveries are claimed in the store before they are sent, so
a deliverer killed mid-send leaves a claim that expires, and the next holder sends the delivery
again: the same body, the same webhook-id (receivers dedupe on it). Nothing is kept in memory that
a restart would lose. An asyncio task on the replica's loop; store calls run in threads.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from typing import Any, Protocol

import httpx

from outbox.http import Answer, new_client
from settings import WebhooksConfig
from store.base import SessionStoreBase

logger = logging.getLogger("ray.serve")

LEASE = "outbox-deliverer"
THROTTLED = (429, 502, 503, 504)  # statuses whose Retry-After is honoured
PRUNE_EVERY_S = 3600.0


class Channel(Protocol):
    name: str

    def fan_out(self, event) -> list[dict[str, Any]]: ...

    async def send(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> Answer | str: ...

    async def gone(self, delivery: dict[str, Any], answer: Answer) -> None: ...


def next_attempt_at(cfg: WebhooksConfig, attempts: int, answer: Answer, now: float, rng: random.Random) -> float | None:
    """When to try again after the `attempts`-th failed attempt; None: the schedule is spent."""
    if attempts > len(cfg.retry_schedule_s):
        return None
    wait = cfg.retry_schedule_s[attempts - 1] * rng.uniform(1 - cfg.jitter, 1 + cfg.jitter)
    if answer.status in THROTTLED and answer.retry_after_s is not None:
        wait = max(wait, min(answer.retry_after_s, cfg.max_retry_after_s))
    return now + wait


class Deliverer:
    def __init__(self, store: SessionStoreBase, cfg: WebhooksConfig, channels: list[Channel], retention_s: float):
        self.store = store
        self.cfg = cfg
        self.channels = {c.name: c for c in channels}
        self.retention_s = retention_s
        self.holder = uuid.uuid4().hex  # this replica
        # A round may spend timeout_s on its slowest delivery; the lease outlives that.
        self.lease_s = cfg.timeout_s + 5 * cfg.poll_interval_s + 5
        self.claim_s = cfg.timeout_s + 10  # a claim outlives one attempt
        self.rng = random.Random()
        self._pruned_at = 0.0

    async def run(self) -> None:
        async with new_client() as client:
            while True:
                try:
                    await self.round(client, time.time())
                except Exception:  # noqa: BLE001 - the deliverer must outlive any one bad round
                    logger.exception("outbox deliverer round failed")
                await asyncio.sleep(self.cfg.poll_interval_s)

    async def round(self, client: httpx.AsyncClient, now: float) -> bool:
        """One round; False when another replica holds the lease (and so does the work)."""
        if not await asyncio.to_thread(self.store.take_lease, LEASE, self.holder, now, self.lease_s):
            return False
        await self.dispatch(now)
        claim = f"{self.holder}:{uuid.uuid4().hex[:8]}"
        due = await asyncio.to_thread(self.store.claim_deliveries, claim, now, now + self.claim_s,
                                      4 * self.cfg.max_concurrent)
        limit = asyncio.Semaphore(self.cfg.max_concurrent)

        async def one(delivery: dict[str, Any]) -> None:
            async with limit:
                await self.deliver(client, delivery, claim)

        await asyncio.gather(*(one(d) for d in due))
        if now - self._pruned_at > PRUNE_EVERY_S:
            await asyncio.to_thread(self.store.prune_outbox, now - self.retention_s)
            self._pruned_at = now
        return True

    async def dispatch(self, now: float) -> int:
        """New outbox events -> their deliveries (each event in one transaction)."""
        events = await asyncio.to_thread(self.store.undispatched, 100)
        for event in events:
            def fan_out(event=event) -> None:
                deliveries = [d for channel in self.channels.values() for d in channel.fan_out(event)]
                self.store.dispatch(event.message_id, deliveries, time.time())

            await asyncio.to_thread(fan_out)
        return len(events)

    async def deliver(self, client: httpx.AsyncClient, delivery: dict[str, Any], claim: str) -> None:
        channel = self.channels.get(delivery["channel"])
        if channel is None:  # a channel this replica does not serve (edX turned off since)
            answer: Answer | str = Answer(None, error=f"the {delivery['channel']} channel is off")
        else:
            try:
                answer = await channel.send(client, delivery)
            except Exception as exc:  # noqa: BLE001 - a delivery's failure is recorded, never raised
                logger.exception("delivery %s failed unexpectedly", delivery["delivery_id"])
                answer = Answer(None, error=f"{type(exc).__name__}: {exc}"[:300])
        now = time.time()
        attempts = delivery["attempts"] + (0 if isinstance(answer, str) else 1)
        if isinstance(answer, str):
            state, next_at, status, error = answer, now, None, f"{delivery['channel']} target {answer}"
        elif answer.ok:
            state, next_at, status, error = "delivered", now, answer.status, None
        elif answer.status == 410 and channel is not None and delivery["channel"] == "webhook":
            await channel.gone(delivery, answer)
            state, next_at, status, error = "disabled", now, 410, "410 Gone: endpoint disabled"
        else:
            status = answer.status
            error = answer.error or f"HTTP {answer.status}: {answer.text[:200]}"
            retry_at = next_attempt_at(self.cfg, attempts, answer, now, self.rng)
            state, next_at = ("pending", retry_at) if retry_at is not None else ("failed", now)
        settled = await asyncio.to_thread(self.store.settle_delivery, delivery["delivery_id"], claim, state, attempts,
                                          next_at, status, error, now)
        log = logger.info if state in ("delivered", "pending") else logger.warning
        log("delivery %s (%s %s, attempt %d): %s%s", delivery["delivery_id"], delivery["channel"],
            delivery["event_type"], attempts, state, "" if error is None else f" ({error})")
        if not settled:
            logger.warning("delivery %s: its claim expired while it was sent; another deliverer sends it again",
                           delivery["delivery_id"])
