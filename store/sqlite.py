"""The session store on SQLite in WAL mode: one file shared by the processes of one machine (ingress
replicas, session actors); readers never block the writer. Pure code (no Ray)."""
from __future__ import annotations

import sqlite3
import threading

from store.base import SCHEMA_VERSION, SessionStoreBase, resolve_path, schema


class SqliteSessionStore(SessionStoreBase):
    integrity_errors = (sqlite3.IntegrityError,)

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
        # v3 added the leases table, which the schema script creates.
        if version < 4 and "evidence" in tables:
            if "overlay" not in {r[1] for r in self._conn.execute("PRAGMA table_info(evidence)")}:
                self._conn.execute("ALTER TABLE evidence ADD COLUMN overlay TEXT")
        if version < 5 and "sessions" in tables:
            if "reference" not in {r[1] for r in self._conn.execute("PRAGMA table_info(sessions)")}:
                self._conn.execute("ALTER TABLE sessions ADD COLUMN reference TEXT")
        # v6: the session's mode (audio_evidence comes with the schema script).
        if version < 6 and "sessions" in tables:
            if "mode" not in {r[1] for r in self._conn.execute("PRAGMA table_info(sessions)")}:
                self._conn.execute("ALTER TABLE sessions ADD COLUMN mode TEXT NOT NULL DEFAULT 'interview'")
        if version < 7 and "sessions" in tables:
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(sessions)")}
            for column, ddl in (("peak_risk_score", "REAL"), ("review_outcome", "TEXT"), ("reviewed_at", "REAL")):
                if column not in columns:
                    self._conn.execute(f"ALTER TABLE sessions ADD COLUMN {column} {ddl}")
            # the review queue's priority, for sessions ended before v7
            self._conn.execute("UPDATE sessions SET peak_risk_score = json_extract(summary, '$.peak_risk_score') "
                               "WHERE summary IS NOT NULL AND peak_risk_score IS NULL")
        # v7's review, outbox, webhook and edX tables come with the schema script.

    def _write(self, statements: list[tuple[str, tuple]], require_first: bool = False) -> list[int] | None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for sql, params in statements:
                    counts.append(self._conn.execute(sql, params).rowcount)
                    if require_first and counts == [0]:
                        self._conn.execute("ROLLBACK")
                        return None
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
