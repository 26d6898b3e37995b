"""The session store: every session, every frame's observation summary, every event and its evidence.

Two backends with the same methods and semantics, picked by `open_store(location)`:
- SQLite in WAL mode (`SessionStore`, the default): a file path. Several processes on one machine
  (ingress replicas, session actors) share the file and readers never block the writer.
- PostgreSQL (`store.postgres.PostgresSessionStore`): a `postgresql://` URL, for a cluster that
  spans machines.
The SQL lives once, in `BaseSessionStore`, in the dialect both speak (`?` placeholders, which the
PostgreSQL backend turns into `%s`, and `ON CONFLICT` upserts); a backend only runs it. Pure code (no
Ray). Raw frames are never stored: only each event's one evidence JPEG.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STORE_URL_ENV = "PROCTOR_STORE_URL"  # overrides ingress.store_url (a database URL may hold a password)
POSTGRES_SCHEMES = ("postgresql", "postgres")

# {real}: 8-byte floats (SQLite REAL, PostgreSQL DOUBLE PRECISION); {blob}: bytes (BLOB, BYTEA).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id   TEXT PRIMARY KEY,
    candidate_id TEXT NOT NULL,
    started_at   {real} NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open',   -- open | ending | ended | abandoned
    ending_since {real},                         -- when an end was claimed (to release a stuck one)
    last_seen_at {real},                         -- server time of the last frame
    clock_offset {real},                         -- client capture clock -> server time
    ended_at     {real},
    verdict      TEXT,
    summary      TEXT
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
    jpeg       {blob} NOT NULL,
    PRIMARY KEY (session_id, event_id)
);
"""


def schema(real: str, blob: str) -> str:
    return _SCHEMA.format(real=real, blob=blob)


SCHEMA_VERSION = 2  # SQLite: PRAGMA user_version; PostgreSQL: the schema_version table. Bump with a migration step.


def resolve_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def url_scheme(location: str) -> str | None:
    """`postgresql` for `postgresql://...`; None for a plain path."""
    return location.split("://", 1)[0].lower() if "://" in location else None


def open_store(location: str) -> BaseSessionStore:
    """The store at `location`: a `postgresql://` (or `postgres://`) URL, else an SQLite file path
    (relative to the project root). Pass `store.target` to another process to open the same store."""
    scheme = url_scheme(location)
    if scheme in POSTGRES_SCHEMES:
        from store.postgres import PostgresSessionStore

        return PostgresSessionStore(location)
    if scheme is not None:
        raise ValueError(f"unsupported session store URL scheme {scheme!r}: use postgresql://... or an SQLite file path")
    return SessionStore(location)


class BaseSessionStore:
    """Every public method, as SQL both backends run. A backend provides `_write` (statements in one
    transaction, returning each one's row count), `_read`, `close` and `target` (what `open_store`
    takes to open this same store from another process)."""

    target: str

    def _write(self, statements: list[tuple[str, tuple]]) -> list[int]:
        raise NotImplementedError

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ---- sessions -----------------------------------------------------------------------------
    def create(self, session_id: str, candidate_id: str, started_at: float) -> None:
        self._write([("INSERT INTO sessions (session_id, candidate_id, started_at, last_seen_at) VALUES (?, ?, ?, ?)",
                      (session_id, candidate_id, started_at, started_at))])

    def get(self, session_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT session_id, candidate_id, started_at, status, last_seen_at, clock_offset, ended_at, verdict, summary "
            "FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        keys = ("session_id", "candidate_id", "started_at", "status", "last_seen_at", "clock_offset",
                "ended_at", "verdict", "summary")
        record = dict(zip(keys, rows[0]))
        record["summary"] = json.loads(record["summary"]) if record["summary"] else None
        return record

    def setting(self, key: str, default: str) -> str:
        """A shared value: the stored one, or `default` stored now (the first writer wins)."""
        self._write([("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))])
        return self._read("SELECT value FROM settings WHERE key = ?", (key,))[0][0]

    def open_session_count(self) -> int:
        return self._read("SELECT COUNT(*) FROM sessions WHERE status IN ('open', 'ending')")[0][0]

    def set_clock_offset(self, session_id: str, offset: float) -> None:
        self._write([("UPDATE sessions SET clock_offset = ? WHERE session_id = ?", (offset, session_id))])

    def claim_for_ending(self, session_id: str, now: float) -> bool:
        """Atomically move an open session to 'ending'; False when someone else got there first.
        One conditional UPDATE: a second claimer waits for the first one's row lock, then finds the
        status no longer 'open' and updates nothing."""
        return self._write([("UPDATE sessions SET status = 'ending', ending_since = ? "
                             "WHERE session_id = ? AND status = 'open'", (now, session_id))])[0] == 1

    def reopen(self, session_id: str) -> None:
        self._write([("UPDATE sessions SET status = 'open', ending_since = NULL "
                      "WHERE session_id = ? AND status = 'ending'", (session_id,))])

    def release_stuck_endings(self, claimed_before: float) -> list[str]:
        """Sessions whose end was claimed long ago and never finished (the claimer died): open again,
        so the integrator's retry or the idle sweep can end them."""
        stuck = [r[0] for r in self._read(
            "SELECT session_id FROM sessions WHERE status = 'ending' AND ending_since < ?", (claimed_before,))]
        for session_id in stuck:
            self.reopen(session_id)
        return stuck

    def end(self, session_id: str, ended_at: float, summary: dict[str, Any], status: str = "ended") -> None:
        self._write([("UPDATE sessions SET status = ?, ended_at = ?, verdict = ?, summary = ? WHERE session_id = ?",
                      (status, ended_at, summary.get("verdict"), json.dumps(summary), session_id))])

    def idle_sessions(self, older_than: float) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT session_id FROM sessions WHERE status = 'open' AND last_seen_at < ?", (older_than,))]

    def expired_sessions(self, ended_before: float) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT session_id FROM sessions WHERE status IN ('ended', 'abandoned') AND ended_at < ?", (ended_before,))]

    def delete(self, session_id: str) -> bool:
        existed = bool(self._read("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)))
        self._write([(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
                     for table in ("evidence", "events", "observations", "sessions")])
        return existed

    # ---- frames and events (written by the session's actor, before its response returns) ------
    def record_frame(self, session_id: str, seq: int, t: float, score: float, attention: float,
                     observation: dict[str, Any], events: list[dict[str, Any]],
                     evidence: list[tuple[str, float, float, bytes]], seen_at: float) -> None:
        statements = [
            ("INSERT INTO observations (session_id, seq, t, score, attention, data) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (session_id, seq) DO UPDATE SET t = excluded.t, score = excluded.score, "
             "attention = excluded.attention, data = excluded.data",
             (session_id, seq, t, score, attention, json.dumps(observation))),
            ("UPDATE sessions SET last_seen_at = ? WHERE session_id = ?", (seen_at, session_id)),
        ]
        statements += [self._event_upsert(session_id, e) for e in events]
        statements += [("INSERT INTO evidence (session_id, event_id, t, confidence, jpeg) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (session_id, event_id) DO UPDATE SET t = excluded.t, "
                        "confidence = excluded.confidence, jpeg = excluded.jpeg",
                        (session_id, event_id, t_ev, conf, jpeg)) for event_id, t_ev, conf, jpeg in evidence]
        self._write(statements)

    def save_events(self, session_id: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._write([self._event_upsert(session_id, e) for e in events])

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

    def evidence(self, session_id: str, event_id: str) -> bytes | None:
        rows = self._read("SELECT jpeg FROM evidence WHERE session_id = ? AND event_id = ?", (session_id, event_id))
        return bytes(rows[0][0]) if rows else None

    def evidence_confidences(self, session_id: str) -> dict[str, float]:
        return dict(self._read("SELECT event_id, confidence FROM evidence WHERE session_id = ?", (session_id,)))


class SessionStore(BaseSessionStore):
    """SQLite in WAL mode: one file shared by the processes of one machine."""

    def __init__(self, path: str):
        self.path = resolve_path(path)
        self.target = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._conn.execute("PRAGMA foreign_keys=OFF")
        with self._lock:
            self._migrate()
            self._conn.executescript(schema(real="REAL", blob="BLOB"))
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Bring a store written by an older Proctor up to date, keeping every session."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and "sessions" in tables:
            # v0 (the first release) had sessions(session_id, candidate_id, started_at, ended_at, verdict, summary).
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(sessions)")}
            for column, ddl in (("status", "TEXT NOT NULL DEFAULT 'open'"), ("last_seen_at", "REAL"),
                                ("clock_offset", "REAL")):
                if column not in columns:
                    self._conn.execute(f"ALTER TABLE sessions ADD COLUMN {column} {ddl}")
            self._conn.execute("UPDATE sessions SET status = 'ended' WHERE ended_at IS NOT NULL")
            self._conn.execute("UPDATE sessions SET last_seen_at = started_at WHERE last_seen_at IS NULL")
        if version < 2 and "sessions" in tables:
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(sessions)")}
            if "ending_since" not in columns:
                self._conn.execute("ALTER TABLE sessions ADD COLUMN ending_since REAL")

    def _write(self, statements: list[tuple[str, tuple]]) -> list[int]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._conn.execute(sql, params).rowcount for sql, params in statements]
                self._conn.execute("COMMIT")
                return counts
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
