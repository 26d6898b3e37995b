"""The session store: SQLite on one machine, PostgreSQL across many, the same methods and semantics.
`open_store(location)` picks the backend; the SQL is shared (`store.base`)."""
from __future__ import annotations

from settings import POSTGRES_SCHEMES, url_scheme
from store.base import SessionStoreBase


def open_store(location: str) -> SessionStoreBase:
    """The store at `location`: a `postgresql://` (or `postgres://`) URL, else an SQLite file path
    (relative to the project root). Pass `store.target` to another process to open the same store."""
    scheme = url_scheme(location)
    if scheme in POSTGRES_SCHEMES:
        from store.postgres import PostgresSessionStore  # psycopg only where PostgreSQL is used

        return PostgresSessionStore(location)
    if scheme is not None:
        raise ValueError(f"unsupported session store URL scheme {scheme!r}: use postgresql://... or an SQLite file path")
    from store.sqlite import SqliteSessionStore

    return SqliteSessionStore(location)
