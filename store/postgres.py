"""The session store on PostgreSQL, for a cluster that spans machines: same methods and semantics as
the SQLite store (the SQL is shared, in `store.base`); this module only runs it.

- One connection per store object, behind a lock (the ingress's event loop and its reaper thread
  share one store); every write batch is one transaction. Several processes on several machines
  write at once: `claim_for_ending` is one conditional UPDATE, so exactly one claimer wins.
- A session actor may live for hours: when the connection has dropped (server restart, idle
  timeout), the call reconnects and runs again, once. A transaction the server rolled back
  (serialization failure, deadlock) is also run again, once. A write whose COMMIT was lost with the
  connection is in doubt: the retry of an upsert is harmless, a retried `create` fails loudly, and a
  retried `claim_for_ending` answers False; that claim is then released after `ending_timeout_s`.
- The schema is created on first use, and its version kept in the `schema_version` table, under an
  advisory lock so processes starting together do not race.
Pure code (no Ray).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from store.base import SCHEMA_VERSION, SessionStoreBase, schema

T = TypeVar("T")

_SCHEMA_LOCK_KEY = 0x50524F43  # pg_advisory_xact_lock key while the schema is created or migrated ("PROC")


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def _pg(sql: str) -> str:
    """The shared SQL's `?` placeholders in psycopg's style (the shared SQL has no literal ? or %)."""
    return sql.replace("?", "%s")


class PostgresSessionStore(SessionStoreBase):
    integrity_errors = (psycopg.IntegrityError,)

    def __init__(self, url: str, connect_timeout_s: float = 10):
        self.target = url
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._run(self._create_schema)

    def __repr__(self) -> str:
        return f"PostgresSessionStore({redact_url(self.target)!r})"

    def _connect(self) -> psycopg.Connection:
        if self._conn is not None:
            self._conn.close()
        self._conn = psycopg.connect(self.target, autocommit=True, connect_timeout=int(self._connect_timeout_s),
                                     application_name="proctor")
        return self._conn

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """work(connection) under the lock; once more, on a fresh connection if it dropped, when it
        fails with an OperationalError (lost connection, rolled-back transaction)."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._conn if self._conn is not None and not self._conn.closed else self._connect()
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _create_schema(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            conn.execute(schema(real="DOUBLE PRECISION", blob="BYTEA"))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif row[0] < SCHEMA_VERSION:
                self._migrate(conn, row[0])
                conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    def _migrate(self, conn: psycopg.Connection, version: int) -> None:
        """Bring a database written by an older Proctor up to `SCHEMA_VERSION`, inside the schema
        transaction. The PostgreSQL store started at version 2; version 3's leases table comes with
        the schema's CREATE TABLE IF NOT EXISTS."""
        if version < 4:
            conn.execute("ALTER TABLE evidence ADD COLUMN IF NOT EXISTS overlay TEXT")
        if version < 5:
            conn.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS reference TEXT")
        if version < 6:  # audio_evidence comes with the schema
            conn.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS mode TEXT NOT NULL DEFAULT 'interview'")
        if version < 7:
            for column, ddl in (("peak_risk_score", "DOUBLE PRECISION"), ("review_outcome", "TEXT"),
                                ("reviewed_at", "DOUBLE PRECISION")):
                conn.execute(f"ALTER TABLE sessions ADD COLUMN IF NOT EXISTS {column} {ddl}")
            conn.execute("UPDATE sessions SET peak_risk_score = (summary::json ->> 'peak_risk_score')::double precision "
                         "WHERE summary IS NOT NULL AND peak_risk_score IS NULL")

    def _write(self, statements: list[tuple[str, tuple]], require_first: bool = False) -> list[int] | None:
        def work(conn: psycopg.Connection) -> list[int] | None:
            with conn.transaction() as tx:
                counts = []
                for sql, params in statements:
                    counts.append(conn.execute(_pg(sql), params).rowcount)
                    if require_first and counts == [0]:
                        raise psycopg.Rollback(tx)  # leaves the block, rolled back
                return counts
            return None

        return self._run(work)

    def _read(self, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(_pg(sql), params).fetchall())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
