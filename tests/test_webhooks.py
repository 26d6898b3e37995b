"""Signed webhooks without Ray: Proctor's Standard Webhooks signer against the reference library,
the SSRF guard, and the deliverer against a real session store and a real receiver on loopback
(every delivery verified by `standardwebhooks`): retries and their schedule, Retry-After, 410,
redirects, timeouts, rotation, and a deliverer that dies mid-send. The same through the running app
is in test_integrations.py."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from outbox import signing
from outbox.deliverer import Deliverer, next_attempt_at
from outbox.events import session_deleted, session_ended, session_started
from outbox.guard import TargetRefused, refusal, resolve
from outbox.http import Answer, new_client
from outbox.webhooks import WebhookChannel, WebhookRegistry
from settings import WebhooksConfig
from store import open_store
from tests.webhook_receiver import WebhookReceiver


# ---- signing -----------------------------------------------------------------------------------
def test_signatures_verify_with_the_reference_library():
    secret, other = signing.new_secret(), signing.new_secret()
    assert secret.startswith("whsec_") and len(secret) > 40 and secret != other
    body = json.dumps({"type": "session.ended", "data": {"verdict": "CLEAN", "note": "é \u2028"}})
    now = int(time.time())
    headers = signing.headers("msg_abc", now, body, [secret])
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    # the reference's own signature is the same string
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_abc", datetime.fromtimestamp(now, tz=timezone.utc), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # one byte changed
        Webhook(secret).verify(body.replace("CLEAN", "CLEAM"), headers)
    # during a rotation both sign: a receiver holding either secret verifies
    rotating = signing.headers("msg_abc", now, body, [other, secret])
    assert len(rotating["webhook-signature"].split(" ")) == 2
    assert Webhook(secret).verify(body, rotating) and Webhook(other).verify(body, rotating)


# ---- SSRF guard --------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254",
                                     "0.0.0.0", "224.0.0.1", "100.64.0.1", "100.100.100.200", "::1", "fe80::1",
                                     "fd00:ec2::254", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:a00:1::",
                                     "64:ff9b::a9fe:a9fe", "240.0.0.1"])
def test_the_guard_refuses_non_public_addresses(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is not None


def test_the_guard_allows_public_addresses_and_loopback_only_when_told():
    for address in ("93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"):
        assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) is not None  # loopback only


def test_the_guard_checks_the_url_and_every_resolved_address(monkeypatch):
    import socket

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        # The unresolvable name fails here, as a resolver would answer: no DNS query leaves the machine.
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def check(url, allow=False):
        return await resolve(url, allow)

    for url, why in (("http://93.184.215.14/hook", "https"), ("ftp://example.com/x", "https"),
                     ("https://user:pw@93.184.215.14/", "credentials"), ("https://localhost/x", "loopback"),
                     ("https://10.0.0.8/x", "private"), ("https://[::ffff:169.254.169.254]/", "metadata"),
                     ("https:///nohost", "no host"), ("https://no-such-host.invalid/x", "does not resolve"),
                     ("http://10.0.0.8/x", "https")):
        with pytest.raises(TargetRefused, match=why):
            asyncio.run(check(url))
    target = asyncio.run(check("http://localhost:8123/hook?a=1", allow=True))
    assert ipaddress.ip_address(target.url.split("//")[1].split(":")[0].strip("[]")).is_loopback
    assert target.url.endswith(":8123/hook?a=1") and target.host_header == "localhost:8123"
    with pytest.raises(TargetRefused, match="loopback targets only"):
        asyncio.run(check("http://93.184.215.14/x", allow=True))


def test_the_schedule_has_jitter_and_honours_retry_after():
    import random

    cfg = WebhooksConfig()
    rng = random.Random(1)
    waits = [next_attempt_at(cfg, n, Answer(500), 0.0, rng) for n in range(1, 10)]
    for wait, planned in zip(waits, cfg.retry_schedule_s):
        assert planned * 0.9 <= wait <= planned * 1.1
    assert next_attempt_at(cfg, 10, Answer(500), 0.0, rng) is None  # 10 attempts: the spec's ~75 h, then failed
    assert next_attempt_at(cfg, 1, Answer(429, retry_after_s=120), 0.0, rng) >= 120  # throttled: Retry-After
    assert next_attempt_at(cfg, 1, Answer(500, retry_after_s=120), 0.0, rng) < 10  # only on 429/502/503/504
    assert next_attempt_at(cfg, 1, Answer(503, retry_after_s=10 ** 9), 0.0, rng) <= cfg.max_retry_after_s


# ---- the deliverer, on a real store and a real receiver ----------------------------------------
FAST = dict(allow_loopback=True, timeout_s=2.0, retry_schedule_s=[0.2, 0.2, 0.2], jitter=0.0, poll_interval_s=0.1)


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "outbox.sqlite3"))


def _deliverer(store, **overrides) -> Deliverer:
    """A new deliverer (the previous one's lease dropped, as if it had been stopped)."""
    store._write([("DELETE FROM leases", ())])
    cfg = WebhooksConfig(**{**FAST, **overrides})
    return Deliverer(store, cfg, [WebhookChannel(store, cfg, "https://proctor.example")], retention_s=86400)


def _rounds(deliverer: Deliverer, until, timeout_s: float = 20) -> None:
    async def go():
        async with new_client() as client:
            deadline = time.time() + timeout_s
            while time.time() < deadline and not until():
                await deliverer.round(client, time.time())
                await asyncio.sleep(0.05)

    asyncio.run(go())


def _register(store, receiver, events=None) -> dict:
    cfg = WebhooksConfig(**FAST)
    endpoint = asyncio.run(WebhookRegistry(store, cfg).register("key_a", receiver.url + "/hook", events))
    receiver.secrets.append(endpoint["secret"])
    return endpoint


def _emit_session(store, sid="s1") -> list[str]:
    started = session_started(sid, "cand", 100.0)
    store.create(sid, "cand", 100.0, outbox=[started])
    assert store.transition(sid, *_open_ending(), 101.0)
    ended = session_ended(sid, "cand", {"status": "ended", "verdict": "SUSPICIOUS", "peak_risk_score": 42,
                                        "verdict_reasons": ["peak risk score 42 >= 30"], "violations_by_type": {}})
    from sessions.status import SessionStatus

    assert store.finish(sid, SessionStatus.ENDED, 102.0, {"verdict": "SUSPICIOUS", "peak_risk_score": 42}, [],
                        outbox=[ended])
    deleted = session_deleted(sid, "cand", "on request")
    assert store.delete(sid, outbox=[deleted])
    return [started.message_id, ended.message_id, deleted.message_id]


def _open_ending():
    from sessions.status import SessionStatus

    return SessionStatus.OPEN, SessionStatus.ENDING


def test_every_event_arrives_signed(store):
    with WebhookReceiver() as receiver:
        _register(store, receiver)
        ids = _emit_session(store)
        deliverer = _deliverer(store)
        _rounds(deliverer, lambda: len(receiver.received) >= 3)
        got = sorted(receiver.received, key=lambda r: ids.index(r.message_id))  # sent concurrently: any order
        assert [r.message_id for r in got] == ids and all(r.verified for r in got)
        assert [r.payload["type"] for r in got] == ["session.started", "session.ended", "session.deleted"]
        ended = got[1].payload["data"]
        assert ended["verdict"] == "SUSPICIOUS" and ended["peak_risk_score"] == 42
        assert ended["report_url"] == "https://proctor.example/sessions/s1/report.html"
        assert "report_url" not in got[2].payload["data"]  # nothing left to link to
        assert all(r.headers["content-type"] == "application/json" for r in got)
        assert {d["state"] for d in store.deliveries("key_a", None, 10)} == {"delivered"}


def test_failures_retry_on_the_schedule_with_the_same_id_then_fail_and_are_retriable(store):
    with WebhookReceiver() as receiver:
        receiver.script = lambda r: (500, {}, 0.0)
        _register(store, receiver, ["session.started"])
        store.create("s1", "c", 1.0, outbox=[session_started("s1", "c", 1.0)])
        deliverer = _deliverer(store)
        _rounds(deliverer, lambda: store.deliveries("key_a", "failed", 5) != [])
        assert len(receiver.received) == 4  # at once, then the 3 waits of the schedule
        assert len({r.message_id for r in receiver.received}) == 1
        assert len({r.headers["webhook-timestamp"] for r in receiver.received}) >= 1
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:])]
        assert all(g >= 0.15 for g in gaps), gaps
        failed = store.deliveries("key_a", "failed", 5)[0]
        assert failed["attempts"] == 4 and failed["last_status"] == 500
        # manual retry: back in the queue, delivered once the receiver is well
        receiver.script = lambda r: (200, {}, 0.0)
        registry = WebhookRegistry(store, WebhooksConfig(**FAST))
        assert asyncio.run(registry.retry("key_a", failed["delivery_id"]))["state"] == "pending"
        with pytest.raises(Exception, match="no delivery"):
            asyncio.run(registry.retry("key_b", failed["delivery_id"]))  # not another key's
        _rounds(deliverer, lambda: store.delivery(failed["delivery_id"])["state"] == "delivered")
        assert receiver.received[-1].message_id == receiver.received[0].message_id


def test_retry_after_410_redirects_and_timeouts(store):
    with WebhookReceiver() as receiver:
        answers = iter([(503, {"Retry-After": "1"}, 0.0), (200, {}, 0.0)])
        receiver.script = lambda r: next(answers)
        _register(store, receiver, ["session.started"])
        store.create("s1", "c", 1.0, outbox=[session_started("s1", "c", 1.0)])
        _rounds(_deliverer(store), lambda: len(receiver.received) == 2)
        assert receiver.received[1].at - receiver.received[0].at >= 0.95  # not the schedule's 0.2 s

    with WebhookReceiver() as receiver:  # a redirect is a failure, never followed
        receiver.script = lambda r: ((302, {"Location": receiver.url + "/elsewhere"}, 0.0) if r.path == "/hook"
                                     else (200, {}, 0.0))
        _register(store, receiver, ["session.deleted"])
        store.create("s2", "c", 1.0)
        store.delete("s2", outbox=[session_deleted("s2", "c", "x")])
        _rounds(_deliverer(store), lambda: any(d["state"] == "failed" and d["event_type"] == "session.deleted"
                                               for d in store.deliveries("key_a", None, 50)))
        assert {r.path for r in receiver.received} == {"/hook"}

    with WebhookReceiver() as receiver:  # a receiver slower than timeout_s: bounded, then retried
        receiver.script = lambda r: (200, {}, 3.0 if len(receiver.received) == 1 else 0.0)
        _register(store, receiver, ["session.started"])
        store.create("s3", "c", 1.0, outbox=[session_started("s3", "c", 1.0)])
        started = time.time()
        deliverer = _deliverer(store, timeout_s=1.0)
        _rounds(deliverer, lambda: any(d["state"] == "delivered" and d["url"] == receiver.url + "/hook"
                                       for d in store.deliveries("key_a", None, 50)))
        assert len(receiver.received) == 2 and time.time() - started < 8
        row = [d for d in store.deliveries("key_a", None, 50) if d["url"] == receiver.url + "/hook"][0]
        assert row["attempts"] == 2

    with WebhookReceiver() as receiver:  # 410 Gone disables the endpoint
        receiver.script = lambda r: (410, {}, 0.0)
        endpoint = _register(store, receiver, ["session.started"])
        store.create("s4", "c", 1.0, outbox=[session_started("s4", "c", 1.0)])
        store.create("s5", "c", 1.0, outbox=[session_started("s5", "c", 1.0)])
        _rounds(_deliverer(store), lambda: store.endpoint(endpoint["id"])["disabled_at"] is not None)
        _rounds(_deliverer(store), lambda: False, timeout_s=1)
        assert store.endpoint(endpoint["id"])["disabled_reason"].startswith("the receiver answered 410")
        mine = [d for d in store.deliveries("key_a", None, 50) if d["endpoint_id"] == endpoint["id"]]
        assert {d["state"] for d in mine} == {"disabled"} and len(receiver.received) <= 2


def test_rotation_signs_with_both_secrets_during_the_overlap(store):
    with WebhookReceiver() as receiver:
        endpoint = _register(store, receiver, ["session.started"])
        old = receiver.secrets.pop()
        rotated = asyncio.run(WebhookRegistry(store, WebhooksConfig(**FAST)).rotate("key_a", endpoint["id"]))
        receiver.secrets = [old]  # a receiver still on the old secret ...
        store.create("s1", "c", 1.0, outbox=[session_started("s1", "c", 1.0)])
        _rounds(_deliverer(store), lambda: len(receiver.received) == 1)
        assert receiver.received[0].verified and len(receiver.received[0].headers["webhook-signature"].split()) == 2
        assert Webhook(rotated["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)
        # ... until the overlap ends: then only the new secret signs
        store._write([("UPDATE webhook_endpoints SET old_secret_until = 0", ())])
        store.create("s2", "c", 1.0, outbox=[session_started("s2", "c", 1.0)])
        _rounds(_deliverer(store), lambda: len(receiver.received) == 2)
        assert not receiver.received[1].verified and len(receiver.received[1].headers["webhook-signature"].split()) == 1


def test_a_deliverer_killed_mid_send_is_replaced_and_the_event_arrives_with_its_id(store):
    """Deliverer A claims a delivery and dies before it is settled (as a killed replica would); B
    takes the lease once it expires and sends it again when A's claim has expired: same webhook-id."""
    with WebhookReceiver() as receiver:
        _register(store, receiver, ["session.started"])
        event = session_started("s1", "c", 1.0)
        store.create("s1", "c", 1.0, outbox=[event])
        a = _deliverer(store)
        b = Deliverer(store, a.cfg, list(a.channels.values()), retention_s=86400)
        now = time.time()
        assert store.take_lease("outbox-deliverer", a.holder, now, a.lease_s)
        asyncio.run(a.dispatch(now))
        now = time.time()
        claimed = store.claim_deliveries(f"{a.holder}:x", now, now + 1.5, 10)  # A's claim; then A dies
        assert len(claimed) == 1
        assert asyncio.run(_one_round(b)) is False  # A's lease still holds
        store._write([("UPDATE leases SET expires_at = 0", ())])  # A's lease runs out
        _rounds(b, lambda: len(receiver.received) == 1)
        assert receiver.received[0].at >= now + 1.5  # not before A's claim expired
        assert receiver.received[0].message_id == event.message_id and receiver.received[0].verified
        # A comes back from the dead with its stale claim: it cannot settle the row any more
        assert not store.settle_delivery(claimed[0]["delivery_id"], f"{a.holder}:x", "failed", 1, now, 500, "x", now)
        assert store.delivery(claimed[0]["delivery_id"])["state"] == "delivered"


async def _one_round(deliverer: Deliverer) -> bool:
    async with new_client() as client:
        return await deliverer.round(client, time.time())
