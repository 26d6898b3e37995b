"""The session store: every session, every frame's observation summary, every event and its evidence.

SQLite in WAL mode by default, so several processes on one machine (ingress replicas, session
actors) share the file and readers never block the writer. Pure code (no Ray). Raw frames are never
stored: only each event's one evidence JPEG.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id   TEXT PRIMARY KEY,
    candidate_id TEXT NOT NULL,
    started_at   REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open',   -- open | ending | ended | abandoned
    ending_since REAL,                           -- when an end was claimed (to release a stuck one)
    last_seen_at REAL,                           -- server time of the last frame
    clock_offset REAL,                           -- client capture clock -> server time
    ended_at     REAL,
    verdict      TEXT,
    summary      TEXT
);
CREATE TABLE IF NOT EXISTS observations (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    t          REAL NOT NULL,
    score      REAL NOT NULL,
    attention  REAL NOT NULL,
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
    t          REAL NOT NULL,
    confidence REAL NOT NULL,
    jpeg       BLOB NOT NULL,
    PRIMARY KEY (session_id, event_id)
);
"""


SCHEMA_VERSION = 2  # PRAGMA user_version; bump with a step in _migrate


def resolve_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class SessionStore:
    def __init__(self, path: str):
        self.path = resolve_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        self._conn.execute("PRAGMA foreign_keys=OFF")
        with self._lock:
            self._migrate()
            self._conn.executescript(_SCHEMA)
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

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

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
        self._write([("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)", (key, default))])
        return self._read("SELECT value FROM settings WHERE key = ?", (key,))[0][0]

    def open_session_count(self) -> int:
        return self._read("SELECT COUNT(*) FROM sessions WHERE status IN ('open', 'ending')")[0][0]

    def set_clock_offset(self, session_id: str, offset: float) -> None:
        self._write([("UPDATE sessions SET clock_offset = ? WHERE session_id = ?", (offset, session_id))])

    def claim_for_ending(self, session_id: str, now: float) -> bool:
        """Atomically move an open session to 'ending'; False when someone else got there first."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE sessions SET status = 'ending', ending_since = ? WHERE session_id = ? AND status = 'open'",
                (now, session_id))
            return cur.rowcount == 1

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
            ("INSERT OR REPLACE INTO observations (session_id, seq, t, score, attention, data) VALUES (?, ?, ?, ?, ?, ?)",
             (session_id, seq, t, score, attention, json.dumps(observation))),
            ("UPDATE sessions SET last_seen_at = ? WHERE session_id = ?", (seen_at, session_id)),
        ]
        statements += [self._event_upsert(session_id, e) for e in events]
        statements += [("INSERT OR REPLACE INTO evidence (session_id, event_id, t, confidence, jpeg) VALUES (?, ?, ?, ?, ?)",
                        (session_id, event_id, t_ev, conf, jpeg)) for event_id, t_ev, conf, jpeg in evidence]
        self._write(statements)

    def save_events(self, session_id: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._write([self._event_upsert(session_id, e) for e in events])

    @staticmethod
    def _event_upsert(session_id: str, event: dict[str, Any]) -> tuple[str, tuple]:
        return ("INSERT OR REPLACE INTO events (session_id, event_id, type, data) VALUES (?, ?, ?, ?)",
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
        return rows[0][0] if rows else None

    def evidence_confidences(self, session_id: str) -> dict[str, float]:
        return dict(self._read("SELECT event_id, confidence FROM evidence WHERE session_id = ?", (session_id,)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

