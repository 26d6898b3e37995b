"""The session store: which sessions exist, which ended, and each ended session's summary.

SQLite in WAL mode, so several processes on one machine (ingress replicas, session actors) can share
the file. Pure code (no Ray).
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
    ended_at     REAL,
    verdict      TEXT,
    summary      TEXT
);
"""


def resolve_path(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class SessionStore:
    def __init__(self, path: str):
        self.path = resolve_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    def create(self, session_id: str, candidate_id: str, started_at: float) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO sessions (session_id, candidate_id, started_at) VALUES (?, ?, ?)",
                (session_id, candidate_id, started_at),
            )

    def end(self, session_id: str, ended_at: float, summary: dict[str, Any]) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE sessions SET ended_at = ?, verdict = ?, summary = ? WHERE session_id = ?",
                (ended_at, summary.get("verdict"), json.dumps(summary), session_id),
            )

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT session_id, candidate_id, started_at, ended_at, verdict, summary "
                "FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        keys = ("session_id", "candidate_id", "started_at", "ended_at", "verdict", "summary")
        record = dict(zip(keys, row))
        record["summary"] = json.loads(record["summary"]) if record["summary"] else None
        return record

    def close(self) -> None:
        with self._lock:
            self._conn.close()
