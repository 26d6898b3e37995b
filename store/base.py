"""The session store's schema and SQL, shared by both backends (`store.sqlite`, `store.postgres`).

Every session, every frame's observation summary, every event and its evidence; the human reviews;
the outbox of events to send (webhooks, edX results), the webhook endpoints and their deliveries; the
edX exams and attempts. The SQL is written
once, in the dialect both speak (`?` placeholders, which the PostgreSQL backend turns into `%s`, and
`ON CONFLICT` upserts); a backend only runs it. Status changes are conditional UPDATEs that follow
`sessions.status.TRANSITIONS`: a change from the wrong status touches nothing and returns False, so
two replicas racing to end a session cannot both win. Frames are not stored, except each event's
one evidence frame (with its boxes, drawn when it is served). Pure code (no Ray).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from outbox.events import OutboxEvent
from sessions.status import FINAL, SessionStatus, allowed
from settings import PROJECT_ROOT

# {real}: 8-byte floats (SQLite REAL, PostgreSQL DOUBLE PRECISION); {blob}: bytes (BLOB, BYTEA).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id   TEXT PRIMARY KEY,
    candidate_id TEXT NOT NULL,
    started_at   {real} NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open',   -- sessions.status.SessionStatus
    ending_since {real},                         -- when an end was claimed (to release a stuck one)
    last_seen_at {real},                         -- server time of the last frame
    clock_offset {real},                         -- client capture clock -> server time
    mode         TEXT NOT NULL DEFAULT 'interview', -- interview | exam: which audio events count
    ended_at     {real},
    verdict      TEXT,
    summary      TEXT,
    reference    TEXT,                           -- a reference photo's face descriptor (JSON), if one was given
    peak_risk_score {real},                      -- the review queue's priority (v7)
    review_outcome  TEXT,                        -- a human review's outcome; NULL: not reviewed (v7)
    reviewed_at     {real}                       -- (v7)
);
CREATE TABLE IF NOT EXISTS observations (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    t          {real} NOT NULL,
    score      {real} NOT NULL,
    attention  {real} NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, event_id)
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    session_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    t          {real} NOT NULL,
    confidence {real} NOT NULL,
    jpeg       {blob} NOT NULL,                  -- the frame as it arrived (JPEG or PNG) ...
    overlay    TEXT,                             -- ... and the boxes and caption drawn on it when served
                                                 -- (JSON; NULL: a v3 row, already drawn)
    PRIMARY KEY (session_id, event_id)
);
CREATE TABLE IF NOT EXISTS audio_evidence (
    session_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    t_start    {real} NOT NULL,                  -- the clip's span on the session's clock
    t_end      {real} NOT NULL,
    wav        {blob},                           -- 16 kHz mono 16-bit WAV; NULL: times only (no clip kept)
    PRIMARY KEY (session_id, event_id)
);
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,                 -- a job one process of the application runs (the reaper)
    holder     TEXT NOT NULL,
    expires_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS review_actions (      -- every reviewer action, in order: the review is their fold
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at         {real} NOT NULL,
    reviewer   TEXT NOT NULL,
    action     TEXT NOT NULL,                    -- event_reviewed | event_added | outcome (reviews.model)
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS outbox (              -- events, written with the change they report
    message_id    TEXT PRIMARY KEY,              -- the webhook-id of every delivery of it
    type          TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    created_at    {real} NOT NULL,
    data          TEXT NOT NULL,
    dispatched_at {real}                         -- fanned out to deliveries
);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    endpoint_id      TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,              -- the API key's fingerprint (auth.tokens.key_fingerprint)
    url              TEXT NOT NULL,
    events           TEXT NOT NULL,              -- ',session.ended,review.completed,' or '*'
    secret           TEXT NOT NULL,              -- whsec_...
    old_secret       TEXT,                       -- still signing until old_secret_until (rotation)
    old_secret_until {real},
    created_at       {real} NOT NULL,
    disabled_at      {real},
    disabled_reason  TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (          -- one event to one target, retried until it arrives
    delivery_id   TEXT PRIMARY KEY,
    message_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    channel       TEXT NOT NULL,                 -- webhook | edx
    endpoint_id   TEXT,                          -- webhook: the endpoint
    url           TEXT NOT NULL,
    body          TEXT NOT NULL,                 -- the exact bytes sent (and signed) on every attempt
    state         TEXT NOT NULL,                 -- pending | delivered | failed | disabled
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       {real} NOT NULL,
    claimed_by    TEXT,                          -- the deliverer sending it now ...
    claimed_until {real},                        -- ... until then; after it, another may send it again
    last_status   INTEGER,
    last_error    TEXT,
    created_at    {real} NOT NULL,
    updated_at    {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE INDEX IF NOT EXISTS outbox_undispatched ON outbox (dispatched_at, created_at);
CREATE TABLE IF NOT EXISTS edx_exams (
    exam_id    TEXT PRIMARY KEY,
    course_id  TEXT NOT NULL,
    data       TEXT NOT NULL,                    -- the LMS's exam dict as it was sent
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS edx_attempts (        -- an edX attempt is a session: attempt id = session id
    session_id TEXT PRIMARY KEY,
    exam_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,                    -- the LMS's obscured user id
    lms_host   TEXT NOT NULL,
    data       TEXT NOT NULL                     -- time limit, sample attempt, review policy (no name or email)
);
"""

# SQLite: PRAGMA user_version; PostgreSQL: the schema_version table. Bump with a migration step.
# 3: the leases table (created by the schema's CREATE TABLE IF NOT EXISTS).
# 4: evidence.overlay (evidence is drawn when served, not by the session actor).
# 5: sessions.reference (a reference photo's face descriptor, risk.identity).
# 6: sessions.mode and the audio_evidence table (audio events' clips: the only audio stored).
# 7: sessions.peak_risk_score / review_outcome / reviewed_at (filled from the summaries); the review,
#    outbox, webhook and edX tables (created by the schema).
SCHEMA_VERSION = 7
SESSION_TABLES = ("audio_evidence", "evidence", "events", "observations", "review_actions", "edx_attempts")  # and sessions
_LIVE = tuple(s.value for s in SessionStatus if s.live)
_FINAL = tuple(s.value for s in FINAL)


def _marks(values: tuple) -> str:
    return ", ".join("?" * len(values))


def _outbox_insert(event: OutboxEvent) -> tuple[str, tuple]:
    return ("INSERT INTO outbox (message_id, type, session_id, created_at, data) VALUES (?, ?, ?, ?, ?)", event.row())


class ConflictRetry(Exception):
    """Two writers took the same review sequence number; the later one tries again."""


def schema(real: str, blob: str) -> str:
    return _SCHEMA.format(real=real, blob=blob)


def resolve_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class SessionStoreBase:
    """Every public method, as SQL both backends run. A backend provides `_write` (statements in one
    transaction, returning each one's row count), `_read`, `close` and `target` (what `open_store`
    takes to open this same store from another process)."""

    target: str
    integrity_errors: tuple[type[Exception], ...] = ()  # the backend's unique-violation errors

    def _write(self, statements: list[tuple[str, tuple]], require_first: bool = False) -> list[int] | None:
        """Run the statements in one transaction; their row counts. With `require_first`, a first
        statement that changes no row rolls the transaction back and returns None."""
        raise NotImplementedError

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- sessions -----------------------------------------------------------------------------
    def create(self, session_id: str, candidate_id: str, started_at: float, mode: str = "interview",
               reference: list[float] | None = None, status: SessionStatus = SessionStatus.OPEN,
               outbox: Iterable[OutboxEvent] = ()) -> None:
        """A new session (OPEN, or REGISTERED: created ahead, opened later) with its events. `mode`:
        interview | exam; `reference`: the face descriptor of a reference photo (never the photo)."""
        if status not in (SessionStatus.OPEN, SessionStatus.REGISTERED):
            raise ValueError(f"a session starts open or registered, not {status.value}")
        self._write([("INSERT INTO sessions (session_id, candidate_id, started_at, last_seen_at, status, mode, "
                      "reference) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (session_id, candidate_id, started_at, started_at, status.value, mode,
                       json.dumps(reference) if reference is not None else None)),
                     *map(_outbox_insert, outbox)])

    def open_registered(self, session_id: str, now: float, outbox: Iterable[OutboxEvent] = ()) -> bool:
        """REGISTERED -> OPEN, its clock starting now (frames count from here); False when it was not
        registered."""
        return self._write([("UPDATE sessions SET status = ?, started_at = ?, last_seen_at = ? "
                             "WHERE session_id = ? AND status = ?",
                             (SessionStatus.OPEN.value, now, now, session_id, SessionStatus.REGISTERED.value)),
                            *map(_outbox_insert, outbox)], require_first=True) is not None

    def get(self, session_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT session_id, candidate_id, started_at, status, last_seen_at, clock_offset, ended_at, verdict, summary, "
            "mode, reference FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        keys = ("session_id", "candidate_id", "started_at", "status", "last_seen_at", "clock_offset",
                "ended_at", "verdict", "summary", "mode", "reference")
        record = dict(zip(keys, rows[0]))
        record["status"] = SessionStatus(record["status"])
        record["summary"] = json.loads(record["summary"]) if record["summary"] else None
        record["reference"] = json.loads(record["reference"]) if record["reference"] else None
        return record

    def setting(self, key: str, default: str) -> str:
        """A shared value: the stored one, or `default` stored now (the first writer wins)."""
        self._write([("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))])
        return self._read("SELECT value FROM settings WHERE key = ?", (key,))[0][0]

    def open_session_count(self) -> int:
        return self._read(f"SELECT COUNT(*) FROM sessions WHERE status IN ({', '.join('?' * len(_LIVE))})", _LIVE)[0][0]

    def transition(self, session_id: str, old: SessionStatus, new: SessionStatus, now: float) -> bool:
        """Move the session from `old` to `new` if it is in `old`; False when it was not (someone else
        got there first: a second claimer waits for the first one's row lock, then finds the status
        changed and updates nothing). Ending statuses go through `finish`, which stores the summary."""
        if not allowed(old, new) or new in FINAL:
            raise ValueError(f"no transition {old.value} -> {new.value} here")
        ending_since = now if new is SessionStatus.ENDING else None
        return self._write([("UPDATE sessions SET status = ?, ending_since = ? WHERE session_id = ? AND status = ?",
                             (new.value, ending_since, session_id, old.value))])[0] == 1

    def finish(self, session_id: str, status: SessionStatus, ended_at: float, summary: dict[str, Any],
               events: list[dict[str, Any]], outbox: Iterable[OutboxEvent] = ()) -> bool:
        """ENDING -> ENDED, ABANDONED or ERROR with the verdict, summary, final events and the events
        out (session.ended), in one transaction. False (and nothing written) when the session was
        not being ended."""
        if not allowed(SessionStatus.ENDING, status) or status not in FINAL:
            raise ValueError(f"{status.value} is not an end status")
        statements = [("UPDATE sessions SET status = ?, ended_at = ?, verdict = ?, summary = ?, ending_since = NULL, "
                       "peak_risk_score = ? WHERE session_id = ? AND status = ?",
                       (status.value, ended_at, summary.get("verdict"), json.dumps(summary),
                        summary.get("peak_risk_score"), session_id, SessionStatus.ENDING.value))]
        statements += [self._event_upsert(session_id, e) for e in events]
        statements += [_outbox_insert(e) for e in outbox]
        return self._write(statements, require_first=True) is not None

    def release_stuck_endings(self, claimed_before: float) -> list[str]:
        """Sessions whose end was claimed long ago and never finished (the claimer died): open again,
        so the integrator's retry or the idle sweep can end them."""
        stuck = [r[0] for r in self._read(
            "SELECT session_id FROM sessions WHERE status = ? AND ending_since < ?",
            (SessionStatus.ENDING.value, claimed_before))]
        return [sid for sid in stuck if self.transition(sid, SessionStatus.ENDING, SessionStatus.OPEN, claimed_before)]

    def idle_sessions(self, older_than: float) -> list[str]:
        return [r[0] for r in self._read("SELECT session_id FROM sessions WHERE status = ? AND last_seen_at < ?",
                                         (SessionStatus.OPEN.value, older_than))]

    def expired_sessions(self, ended_before: float) -> list[str]:
        return [r[0] for r in self._read(f"SELECT session_id FROM sessions WHERE status IN ({_marks(_FINAL)}) "
                                         "AND ended_at < ?", (*_FINAL, ended_before))]

    def delete(self, session_id: str, outbox: Iterable[OutboxEvent] = ()) -> bool:
        """Everything stored about the session (its review and edX attempt too), and its events out
        (session.deleted), in one transaction; False when there was no such session."""
        statements = [("DELETE FROM sessions WHERE session_id = ?", (session_id,))]
        statements += [(f"DELETE FROM {table} WHERE session_id = ?", (session_id,)) for table in SESSION_TABLES]
        statements += [_outbox_insert(e) for e in outbox]
        return self._write(statements, require_first=True) is not None

    # ---- frames and events (written by the session's actor, before its response returns) ------
    def record_frame(self, session_id: str, seq: int, t: float, score: float, attention: float,
                     observation: dict[str, Any], events: list[dict[str, Any]],
                     evidence: list[tuple[str, float, float, bytes, dict[str, Any]]], seen_at: float,
                     clock_offset: float | None = None,
                     audio_evidence: list[tuple[str, float, float, bytes | None]] = ()) -> None:
        """One frame or audio chunk, one transaction: its observation, the session's last-seen time
        (and, on the first timestamped one, the clock offset), the events it changed, their evidence
        (frames; audio clips: (event id, start, end, WAV or None))."""
        statements = [
            ("INSERT INTO observations (session_id, seq, t, score, attention, data) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (session_id, seq) DO UPDATE SET t = excluded.t, score = excluded.score, "
             "attention = excluded.attention, data = excluded.data",
             (session_id, seq, t, score, attention, json.dumps(observation))),
            ("UPDATE sessions SET last_seen_at = ? WHERE session_id = ?", (seen_at, session_id)),
        ]
        if clock_offset is not None:
            statements.append(("UPDATE sessions SET clock_offset = ? WHERE session_id = ?", (clock_offset, session_id)))
        statements += [self._event_upsert(session_id, e) for e in events]
        statements += [("INSERT INTO evidence (session_id, event_id, t, confidence, jpeg, overlay) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, event_id) DO UPDATE SET "
                        "t = excluded.t, confidence = excluded.confidence, jpeg = excluded.jpeg, "
                        "overlay = excluded.overlay",
                        (session_id, event_id, t_ev, conf, frame, json.dumps(overlay)))
                       for event_id, t_ev, conf, frame, overlay in evidence]
        statements += [("INSERT INTO audio_evidence (session_id, event_id, t_start, t_end, wav) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (session_id, event_id) DO UPDATE SET t_start = excluded.t_start, "
                        "t_end = excluded.t_end, wav = excluded.wav", (session_id, event_id, t0, t1, wav))
                       for event_id, t0, t1, wav in audio_evidence]
        self._write(statements)

    @staticmethod
    def _event_upsert(session_id: str, event: dict[str, Any]) -> tuple[str, tuple]:
        return ("INSERT INTO events (session_id, event_id, type, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (session_id, event_id) DO UPDATE SET type = excluded.type, data = excluded.data",
                (session_id, event["id"], event["type"], json.dumps(event)))

    def observations(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT seq, t, score, attention, data FROM observations WHERE session_id = ? ORDER BY seq",
                          (session_id,))
        return [{"seq": seq, "t": t, "score": score, "attention": attention, "observation": json.loads(data)}
                for seq, t, score, attention, data in rows]

    def events(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT data FROM events WHERE session_id = ? ORDER BY event_id", (session_id,))
        return [json.loads(r[0]) for r in rows]

    def evidence(self, session_id: str, event_id: str) -> tuple[bytes, dict[str, Any] | None] | None:
        """The evidence frame and what to draw on it (None: drawn already, a v3 row)."""
        rows = self._read("SELECT jpeg, overlay FROM evidence WHERE session_id = ? AND event_id = ?",
                          (session_id, event_id))
        if not rows:
            return None
        frame, overlay = rows[0]
        return bytes(frame), (json.loads(overlay) if overlay is not None else None)

    def audio_spans(self, session_id: str) -> dict[str, tuple[float, float, bool]]:
        """Per audio event with evidence: (start, end, whether a clip is kept)."""
        rows = self._read("SELECT event_id, t_start, t_end, wav IS NOT NULL FROM audio_evidence WHERE session_id = ?",
                          (session_id,))
        return {event_id: (t0, t1, bool(has_clip)) for event_id, t0, t1, has_clip in rows}

    def audio_clip(self, session_id: str, event_id: str) -> bytes | None:
        """An audio event's evidence clip (a WAV); None when there is none."""
        rows = self._read("SELECT wav FROM audio_evidence WHERE session_id = ? AND event_id = ?", (session_id, event_id))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def evidence_confidences(self, session_id: str) -> dict[str, float]:
        return dict(self._read("SELECT event_id, confidence FROM evidence WHERE session_id = ?", (session_id,)))

    # ---- leases: one process of the application runs a job -----------------------------------
    def take_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        """True when `holder` holds the lease `name` until now + ttl_s: it was free, expired, or
        already its own. Every replica asks each round; exactly one holds it at a time, and when that
        one dies another takes over once the lease expires."""
        return self._write([(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
            (name, holder, now + ttl_s, now))])[0] == 1


    # ---- human review ---------------------------------------------------------------------------
    def review_actions(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT seq, at, reviewer, action, data FROM review_actions WHERE session_id = ? ORDER BY seq",
                          (session_id,))
        return [{"seq": seq, "at": at, "reviewer": reviewer, "action": action, **json.loads(data)}
                for seq, at, reviewer, action, data in rows]

    def add_review_action(self, session_id: str, at: float, reviewer: str, action: str, data: dict[str, Any],
                          outcome: str | None = None, outbox: Iterable[OutboxEvent] = ()) -> bool:
        """Append one reviewer action (and, for an outcome, the session's review columns and the
        review.completed event) in one transaction; False when the session has not ended. Two
        reviewers at once: the second takes the next sequence number."""
        ended = f"WHERE session_id = ? AND status IN ({_marks(_FINAL)})"
        guard = ((f"UPDATE sessions SET review_outcome = ?, reviewed_at = ? {ended}", (outcome, at, session_id, *_FINAL))
                 if outcome else (f"UPDATE sessions SET review_outcome = review_outcome {ended}", (session_id, *_FINAL)))
        insert = ("INSERT INTO review_actions (session_id, seq, at, reviewer, action, data) "
                  "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM review_actions WHERE session_id = ?",
                  (session_id, at, reviewer, action, json.dumps(data), session_id))
        for attempt in range(5):
            try:
                return self._write([guard, insert, *map(_outbox_insert, outbox)], require_first=True) is not None
            except self.integrity_errors:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def review_queue(self, reviewed: bool, limit: int, after: tuple[float, str] | None = None) -> list[dict[str, Any]]:
        """Ended sessions not yet reviewed (or reviewed), highest peak risk score first, then by id;
        `after`: the (peak, session id) of the last one of the previous page."""
        where = f"status IN ({_marks(_FINAL)}) AND review_outcome IS {'NOT ' if reviewed else ''}NULL"
        params: tuple = _FINAL
        if after is not None:
            where += (" AND (COALESCE(peak_risk_score, 0) < ? OR "
                      "(COALESCE(peak_risk_score, 0) = ? AND session_id > ?))")
            params += (after[0], after[0], after[1])
        rows = self._read(
            "SELECT session_id, candidate_id, status, started_at, ended_at, verdict, COALESCE(peak_risk_score, 0), "
            f"review_outcome, reviewed_at FROM sessions WHERE {where} "
            "ORDER BY COALESCE(peak_risk_score, 0) DESC, session_id LIMIT ?", (*params, limit))
        keys = ("session_id", "candidate_id", "status", "started_at", "ended_at", "verdict", "peak_risk_score",
                "review_outcome", "reviewed_at")
        return [dict(zip(keys, row)) for row in rows]

    # ---- the outbox and its deliveries ------------------------------------------------------
    def undispatched(self, limit: int) -> list[OutboxEvent]:
        rows = self._read("SELECT message_id, type, session_id, created_at, data FROM outbox "
                          "WHERE dispatched_at IS NULL ORDER BY created_at, message_id LIMIT ?", (limit,))
        return [OutboxEvent(type=kind, session_id=sid, data=json.loads(data), message_id=mid, created_at=created)
                for mid, kind, sid, created, data in rows]

    def dispatch(self, message_id: str, deliveries: list[dict[str, Any]], now: float) -> None:
        """The event's deliveries, and the event marked dispatched, in one transaction (run again
        after a crash, it adds nothing twice: a delivery's id is made from the event and target)."""
        statements = [("INSERT INTO deliveries (delivery_id, message_id, event_type, channel, endpoint_id, url, body, "
                       "state, attempts, next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) "
                       "ON CONFLICT (delivery_id) DO NOTHING",
                       (d["delivery_id"], message_id, d["event_type"], d["channel"], d.get("endpoint_id"), d["url"],
                        d["body"], now, now, now)) for d in deliveries]
        statements.append(("UPDATE outbox SET dispatched_at = ? WHERE message_id = ?", (now, message_id)))
        self._write(statements)

    _DELIVERY_KEYS = ("delivery_id", "message_id", "event_type", "channel", "endpoint_id", "url", "body", "state",
                      "attempts", "next_at", "last_status", "last_error", "created_at", "updated_at")

    def _deliveries(self, where: str, params: tuple, limit: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join('d.' + k for k in self._DELIVERY_KEYS)} FROM deliveries d {where}"
        if limit is not None:
            sql, params = sql + " LIMIT ?", (*params, limit)
        return [dict(zip(self._DELIVERY_KEYS, row)) for row in self._read(sql, params)]

    def claim_deliveries(self, claim: str, now: float, claim_until: float, limit: int) -> list[dict[str, Any]]:
        """Due deliveries, claimed under `claim` until `claim_until`: no other deliverer sends them
        meanwhile. A claim that outlives its deliverer (killed mid-send) expires, and the delivery
        is sent again, same body, same webhook-id."""
        free = "state = 'pending' AND next_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"
        self._write([(f"UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE {free} AND delivery_id IN "
                      f"(SELECT delivery_id FROM deliveries WHERE {free} ORDER BY next_at LIMIT ?)",
                      (claim, claim_until, now, now, now, now, limit))])
        return self._deliveries("WHERE d.claimed_by = ? AND d.state = 'pending' ORDER BY d.next_at", (claim,))

    def settle_delivery(self, delivery_id: str, claim: str, state: str, attempts: int, next_at: float,
                        status: int | None, error: str | None, now: float) -> bool:
        """An attempt's outcome, if the claim is still ours; the claim is released."""
        return self._write([("UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?, "
                             "updated_at = ?, claimed_by = NULL, claimed_until = NULL "
                             "WHERE delivery_id = ? AND claimed_by = ?",
                             (state, attempts, next_at, status, error, now, delivery_id, claim))])[0] == 1

    def deliveries(self, owner: str, state: str | None, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        """Deliveries to the owner's endpoints and to the edX LMS, by id."""
        where = ("LEFT JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id "
                 "WHERE (e.owner = ? OR d.channel = 'edx')")
        params: tuple = (owner,)
        if state is not None:
            where, params = where + " AND d.state = ?", (*params, state)
        if after is not None:
            where, params = where + " AND d.delivery_id > ?", (*params, after)
        return self._deliveries(where + " ORDER BY d.delivery_id", params, limit)

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        found = self._deliveries("WHERE d.delivery_id = ?", (delivery_id,))
        return found[0] if found else None

    def retry_delivery(self, delivery_id: str, now: float) -> bool:
        """A failed (or disabled) delivery back in the queue, its schedule started again."""
        return self._write([("UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, updated_at = ?, "
                             "claimed_by = NULL, claimed_until = NULL WHERE delivery_id = ? AND state IN ('failed', 'disabled')",
                             (now, now, delivery_id))])[0] == 1

    def prune_outbox(self, before: float) -> None:
        """Events fanned out and deliveries finished before `before` (the retention period)."""
        self._write([("DELETE FROM deliveries WHERE state IN ('delivered', 'failed', 'disabled') AND updated_at < ?", (before,)),
                     ("DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < ?", (before,))])

    # ---- webhook endpoints ----------------------------------------------------------------------
    _ENDPOINT_KEYS = ("endpoint_id", "owner", "url", "events", "secret", "old_secret", "old_secret_until",
                      "created_at", "disabled_at", "disabled_reason")

    def _endpoints(self, where: str, params: tuple) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT {', '.join(self._ENDPOINT_KEYS)} FROM webhook_endpoints {where}", params)
        return [dict(zip(self._ENDPOINT_KEYS, row)) for row in rows]

    def add_endpoint(self, endpoint: dict[str, Any], max_per_owner: int) -> bool:
        """False when the owner has `max_per_owner` already."""
        keys = ("endpoint_id", "owner", "url", "events", "secret", "created_at")  # typed values only (PostgreSQL)
        return self._write([(
            f"INSERT INTO webhook_endpoints ({', '.join(keys)}) "
            f"SELECT {_marks(keys)} WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE owner = ?) < ?",
            (*(endpoint[k] for k in keys), endpoint["owner"], max_per_owner))])[0] == 1

    def endpoints(self, owner: str) -> list[dict[str, Any]]:
        return self._endpoints("WHERE owner = ? ORDER BY created_at, endpoint_id", (owner,))

    def endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        found = self._endpoints("WHERE endpoint_id = ?", (endpoint_id,))
        return found[0] if found else None

    def subscribed_endpoints(self, event_type: str) -> list[dict[str, Any]]:
        return self._endpoints("WHERE disabled_at IS NULL AND (events = '*' OR events LIKE ?) ORDER BY endpoint_id",
                               (f"%,{event_type},%",))

    def delete_endpoint(self, endpoint_id: str, owner: str) -> bool:
        return self._write([("DELETE FROM webhook_endpoints WHERE endpoint_id = ? AND owner = ?", (endpoint_id, owner)),
                            ("UPDATE deliveries SET state = 'disabled', last_error = 'endpoint deleted' "
                             "WHERE endpoint_id = ? AND state = 'pending'", (endpoint_id,))],
                           require_first=True) is not None

    def rotate_endpoint(self, endpoint_id: str, owner: str, secret: str, old_until: float) -> bool:
        return self._write([("UPDATE webhook_endpoints SET old_secret = secret, old_secret_until = ?, secret = ? "
                             "WHERE endpoint_id = ? AND owner = ?", (old_until, secret, endpoint_id, owner))])[0] == 1

    def disable_endpoint(self, endpoint_id: str, reason: str, now: float) -> None:
        """Gone (410): no more deliveries to it; its pending ones are disabled too."""
        self._write([("UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? "
                      "WHERE endpoint_id = ? AND disabled_at IS NULL", (now, reason, endpoint_id)),
                     ("UPDATE deliveries SET state = 'disabled', updated_at = ?, last_error = ? "
                      "WHERE endpoint_id = ? AND state = 'pending' AND claimed_by IS NULL", (now, reason, endpoint_id))])

    # ---- Open edX: exams and attempts -------------------------------------------------------
    def put_edx_exam(self, exam_id: str, course_id: str, data: dict[str, Any], now: float, create: bool) -> bool:
        """Create the exam, or update it (False when there is none to update)."""
        if create:
            self._write([("INSERT INTO edx_exams (exam_id, course_id, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                          (exam_id, course_id, json.dumps(data), now, now))])
            return True
        return self._write([("UPDATE edx_exams SET course_id = ?, data = ?, updated_at = ? WHERE exam_id = ?",
                             (course_id, json.dumps(data), now, exam_id))])[0] == 1

    def edx_exam(self, exam_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT exam_id, course_id, data FROM edx_exams WHERE exam_id = ?", (exam_id,))
        return {"exam_id": rows[0][0], "course_id": rows[0][1], **json.loads(rows[0][2])} if rows else None

    def create_edx_attempt(self, session_id: str, candidate_id: str, now: float, exam_id: str, user_id: str,
                           lms_host: str, data: dict[str, Any]) -> None:
        """A REGISTERED session and its attempt, in one transaction. An edX proctored exam is an exam:
        the session's audio mode is `exam` (speech counts)."""
        self._write([("INSERT INTO sessions (session_id, candidate_id, started_at, last_seen_at, status, mode) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      (session_id, candidate_id, now, now, SessionStatus.REGISTERED.value, "exam")),
                     ("INSERT INTO edx_attempts (session_id, exam_id, user_id, lms_host, data) VALUES (?, ?, ?, ?, ?)",
                      (session_id, exam_id, user_id, lms_host, json.dumps(data)))])

    def edx_attempt(self, session_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT session_id, exam_id, user_id, lms_host, data FROM edx_attempts WHERE session_id = ?",
                          (session_id,))
        if not rows:
            return None
        sid, exam_id, user_id, lms_host, data = rows[0]
        return {"session_id": sid, "exam_id": exam_id, "user_id": user_id, "lms_host": lms_host, **json.loads(data)}

    def edx_sessions_of_user(self, user_id: str) -> list[str]:
        return [r[0] for r in self._read("SELECT session_id FROM edx_attempts WHERE user_id = ? ORDER BY session_id",
                                         (user_id,))]
