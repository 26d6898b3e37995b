"""Webhook endpoints (per API key) and the webhook channel of the deliverer: each event goes to
every enabled endpoint subscribed to its type, as the same signed bytes on every attempt."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

import httpx

from errors import Conflict, InvalidRequest, NotFound
from outbox import signing
from outbox.events import EVENT_TYPES, SESSION_DELETED, OutboxEvent, webhook_body
from outbox.guard import TargetRefused, resolve
from outbox.http import Answer, post
from settings import WebhooksConfig
from store.base import SessionStoreBase

STATES = ("pending", "delivered", "failed", "disabled")


def delivery_id(message_id: str, target: str) -> str:
    """The same event to the same target always has the same delivery id (a re-run fan-out adds nothing)."""
    return "dl_" + hashlib.sha256(f"{message_id}|{target}".encode()).hexdigest()[:24]


def report_url(public_url: str | None, session_id: str) -> str:
    return f"{public_url or ''}/sessions/{session_id}/report.html"


def _events_column(events: list[str] | None) -> str:
    return "*" if not events or set(events) >= set(EVENT_TYPES) else "," + ",".join(sorted(set(events))) + ","


def endpoint_view(row: dict[str, Any], now: float) -> dict[str, Any]:
    events = list(EVENT_TYPES) if row["events"] == "*" else [e for e in row["events"].split(",") if e]
    rotating = row["old_secret"] is not None and (row["old_secret_until"] or 0) > now
    return {"id": row["endpoint_id"], "url": row["url"], "events": events, "created_at": row["created_at"],
            "disabled": row["disabled_at"] is not None, "disabled_reason": row["disabled_reason"],
            "previous_secret_expires_at": row["old_secret_until"] if rotating else None}


def delivery_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["delivery_id"], "message_id": row["message_id"], "event_type": row["event_type"],
            "channel": row["channel"], "endpoint_id": row["endpoint_id"], "url": row["url"], "state": row["state"],
            "attempts": row["attempts"], "next_attempt_at": row["next_at"] if row["state"] == "pending" else None,
            "last_status": row["last_status"], "last_error": row["last_error"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


class WebhookRegistry:
    """POST/GET/DELETE /webhooks, rotation, and the deliveries list with manual retry; an owner (an
    API key's fingerprint) sees and changes only its own endpoints."""

    def __init__(self, store: SessionStoreBase, cfg: WebhooksConfig):
        self.store = store
        self.cfg = cfg

    async def register(self, owner: str, url: str, events: list[str] | None) -> dict[str, Any]:
        try:
            await asyncio.wait_for(resolve(url, self.cfg.allow_loopback), self.cfg.timeout_s)
        except TargetRefused as exc:
            raise InvalidRequest(f"url: {exc}") from None
        except asyncio.TimeoutError:
            raise InvalidRequest(f"url: its host did not resolve within {self.cfg.timeout_s:g} s") from None
        now = time.time()
        row = {"endpoint_id": f"ep_{uuid.uuid4().hex}", "owner": owner, "url": url, "events": _events_column(events),
               "secret": signing.new_secret(), "created_at": now}
        if not await asyncio.to_thread(self.store.add_endpoint, row, self.cfg.max_endpoints_per_key):
            raise Conflict(f"this API key has {self.cfg.max_endpoints_per_key} endpoints already "
                           "(webhooks.max_endpoints_per_key): delete one first")
        stored = await asyncio.to_thread(self.store.endpoint, row["endpoint_id"])
        return {**endpoint_view(stored, now), "secret": row["secret"]}

    async def _own(self, owner: str, endpoint_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self.store.endpoint, endpoint_id)
        if row is None or row["owner"] != owner:
            raise NotFound(f"no webhook endpoint {endpoint_id!r} for this API key")
        return row

    async def list(self, owner: str) -> list[dict[str, Any]]:
        now = time.time()
        return [endpoint_view(r, now) for r in await asyncio.to_thread(self.store.endpoints, owner)]

    async def delete(self, owner: str, endpoint_id: str) -> None:
        if not await asyncio.to_thread(self.store.delete_endpoint, endpoint_id, owner):
            raise NotFound(f"no webhook endpoint {endpoint_id!r} for this API key")

    async def rotate(self, owner: str, endpoint_id: str) -> dict[str, Any]:
        await self._own(owner, endpoint_id)
        secret, until = signing.new_secret(), time.time() + self.cfg.rotation_overlap_s
        if not await asyncio.to_thread(self.store.rotate_endpoint, endpoint_id, owner, secret, until):
            raise NotFound(f"no webhook endpoint {endpoint_id!r} for this API key")
        return {"id": endpoint_id, "secret": secret, "previous_secret_expires_at": until}

    async def deliveries(self, owner: str, state: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        rows = await asyncio.to_thread(self.store.deliveries, owner, state, limit + 1, cursor)
        page = rows[:limit]
        return {"deliveries": [delivery_view(r) for r in page],
                "next_cursor": page[-1]["delivery_id"] if len(rows) > limit else None}

    async def retry(self, owner: str, delivery_id: str) -> dict[str, Any]:
        row = await asyncio.to_thread(self.store.delivery, delivery_id)
        if row is not None and row["channel"] == "webhook":
            endpoint = await asyncio.to_thread(self.store.endpoint, row["endpoint_id"])
            if endpoint is None or endpoint["owner"] != owner:
                row = None
            elif endpoint["disabled_at"] is not None:
                raise Conflict(f"endpoint {endpoint['endpoint_id']} is disabled ({endpoint['disabled_reason']}): "
                               "register the URL again")
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r} for this API key")
        if not await asyncio.to_thread(self.store.retry_delivery, delivery_id, time.time()):
            raise Conflict(f"delivery {delivery_id} is {row['state']}: only failed or disabled deliveries are retried")
        return delivery_view(await asyncio.to_thread(self.store.delivery, delivery_id))


class WebhookChannel:
    """The deliverer's webhook side: fan-out to subscribed endpoints, and one signed attempt."""

    name = "webhook"

    def __init__(self, store: SessionStoreBase, cfg: WebhooksConfig, public_url: str | None):
        self.store = store
        self.cfg = cfg
        self.public_url = public_url

    def fan_out(self, event: OutboxEvent) -> list[dict[str, Any]]:
        endpoints = self.store.subscribed_endpoints(event.type)
        if not endpoints:
            return []
        link = None if event.type == SESSION_DELETED else report_url(self.public_url, event.session_id)
        body = webhook_body(event, link)
        return [{"delivery_id": delivery_id(event.message_id, e["endpoint_id"]), "event_type": event.type,
                 "channel": self.name, "endpoint_id": e["endpoint_id"], "url": e["url"], "body": body}
                for e in endpoints]

    async def send(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> Answer | str:
        """The attempt's answer, or the final state when there is nothing to send to any more."""
        endpoint = await asyncio.to_thread(self.store.endpoint, delivery["endpoint_id"])
        if endpoint is None or endpoint["disabled_at"] is not None:
            return "disabled"
        now = time.time()
        secrets_in_use = [endpoint["secret"]]
        if endpoint["old_secret"] and (endpoint["old_secret_until"] or 0) > now:
            secrets_in_use.append(endpoint["old_secret"])
        headers = {"content-type": "application/json",
                   **signing.headers(delivery["message_id"], int(now), delivery["body"], secrets_in_use)}
        return await post(client, delivery["url"], delivery["body"].encode(), headers,
                          allow_loopback=self.cfg.allow_loopback, timeout_s=self.cfg.timeout_s)

    async def gone(self, delivery: dict[str, Any], answer: Answer) -> None:
        """410 Gone: the receiver asks for no more deliveries."""
        await asyncio.to_thread(self.store.disable_endpoint, delivery["endpoint_id"],
                                f"the receiver answered 410 Gone at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                                time.time())
