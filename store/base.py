"""The session store's schema and SQL, shared by both backends (`store.sqlite`, `store.postgres`).

Every session, every frame's observation summary, every event and its evidence. The SQL is written
once, in the dialect both speak (`?` placeholders, which the PostgreSQL backend turns into `%s`, and
`ON CONFLICT` upserts); a backend only runs it. Status changes are conditional UPDATEs that follow
`sessions.status.TRANSITIONS`: a change from the wrong status touches nothing and returns False, so
two replicas racing to end a session cannot both win. Frames are not stored, except each event's
one evidence frame (with its boxes, drawn when it is served). Pure code (no Ray).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    reference    TEXT                            -- a reference photo's face descriptor (JSON), if one was given
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
"""

# SQLite: PRAGMA user_version; PostgreSQL: the schema_version table. Bump with a migration step.
# 3: the leases table (created by the schema's CREATE TABLE IF NOT EXISTS).
# 4: evidence.overlay (evidence is drawn when served, not by the session actor).
# 5: sessions.reference (a reference photo's face descriptor, risk.identity).
# 6: sessions.mode and the audio_evidence table (audio events' clips: the only audio stored).
SCHEMA_VERSION = 6
SESSION_TABLES = ("audio_evidence", "evidence", "events", "observations", "sessions")
_LIVE = tuple(s.value for s in SessionStatus if s.live)


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
               reference: list[float] | None = None) -> None:
        """`mode`: interview | exam; `reference`: the face descriptor of a reference photo (never the photo)."""
        self._write([("INSERT INTO sessions (session_id, candidate_id, started_at, last_seen_at, mode, reference) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (session_id, candidate_id, started_at, started_at, mode,
                                                    json.dumps(reference) if reference is not None else None))])

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
               events: list[dict[str, Any]]) -> bool:
        """ENDING -> ENDED or ABANDONED with the verdict, summary and final events, in one transaction.
        False (and nothing written) when the session was not being ended."""
        if not allowed(SessionStatus.ENDING, status) or status not in FINAL:
            raise ValueError(f"{status.value} is not an end status")
        statements = [("UPDATE sessions SET status = ?, ended_at = ?, verdict = ?, summary = ?, ending_since = NULL "
                       "WHERE session_id = ? AND status = ?",
                       (status.value, ended_at, summary.get("verdict"), json.dumps(summary), session_id,
                        SessionStatus.ENDING.value))]
        statements += [self._event_upsert(session_id, e) for e in events]
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
        return [r[0] for r in self._read("SELECT session_id FROM sessions WHERE status IN (?, ?) AND ended_at < ?",
                                         (*(s.value for s in FINAL), ended_before))]

    def delete(self, session_id: str) -> bool:
        counts = self._write([(f"DELETE FROM {table} WHERE session_id = ?", (session_id,)) for table in SESSION_TABLES])
        return counts[-1] == 1

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

