"""The session store on a real SQLite file: round trips, atomic claims, deletion, and migration."""
from __future__ import annotations

import json
import sqlite3

from store.session_store import SCHEMA_VERSION, SessionStore


def test_frames_events_and_evidence_round_trip(tmp_path):
    store = SessionStore(str(tmp_path / "s.sqlite3"))
    store.create("s1", "cand", 100.0)
    event = {"id": "0001-phone-detected", "type": "PHONE_DETECTED", "start": 100.5, "end": None}
    store.record_frame("s1", 1, 100.5, 15.0, 100.0, {"t": 100.5, "faces": 1}, [event],
                       [("0001-phone-detected", 100.5, 0.8, b"\xff\xd8jpeg")], seen_at=101.0)
    assert store.observations("s1") == [{"seq": 1, "t": 100.5, "score": 15.0, "attention": 100.0,
                                         "observation": {"t": 100.5, "faces": 1}}]
    assert store.events("s1") == [event]
    assert store.evidence("s1", "0001-phone-detected") == b"\xff\xd8jpeg"
    assert store.get("s1")["last_seen_at"] == 101.0 and store.get("s1")["status"] == "open"
    # a second process sees it (WAL)
    assert SessionStore(str(tmp_path / "s.sqlite3")).events("s1") == [event]


def test_claim_is_atomic_and_end_and_delete(tmp_path):
    store = SessionStore(str(tmp_path / "s.sqlite3"))
    other = SessionStore(str(tmp_path / "s.sqlite3"))
    store.create("s1", "cand", 100.0)
    assert store.claim_for_ending("s1", 150.0) is True
    assert other.claim_for_ending("s1", 150.0) is False  # another replica cannot end it twice
    store.end("s1", 200.0, {"verdict": "CLEAN"}, status="abandoned")
    record = other.get("s1")
    assert (record["status"], record["verdict"], record["summary"]) == ("abandoned", "CLEAN", {"verdict": "CLEAN"})
    assert store.expired_sessions(ended_before=300.0) == ["s1"] and store.expired_sessions(ended_before=150.0) == []
    assert store.delete("s1") is True and store.get("s1") is None and store.observations("s1") == []
    assert store.delete("s1") is False


def test_idle_sessions(tmp_path):
    store = SessionStore(str(tmp_path / "s.sqlite3"))
    store.create("old", "c", 100.0)
    store.create("new", "c", 500.0)
    assert store.idle_sessions(older_than=400.0) == ["old"]


def test_a_first_release_store_is_migrated_with_its_sessions(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE sessions (session_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL,
        started_at REAL NOT NULL, ended_at REAL, verdict TEXT, summary TEXT);""")
    conn.execute("INSERT INTO sessions VALUES ('a', 'c1', 10.0, 20.0, 'CLEAN', ?)", (json.dumps({"verdict": "CLEAN"}),))
    conn.execute("INSERT INTO sessions VALUES ('b', 'c2', 30.0, NULL, NULL, NULL)")
    conn.commit()
    conn.close()
    store = SessionStore(str(path))
    assert store.get("a")["status"] == "ended" and store.get("a")["summary"] == {"verdict": "CLEAN"}
    assert store.get("b")["status"] == "open" and store.get("b")["last_seen_at"] == 30.0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.claim_for_ending("b", 40.0)  # the v2 column exists after migration


def test_an_end_claimed_by_a_replica_that_died_is_released(tmp_path):
    store = SessionStore(str(tmp_path / "s.sqlite3"))
    store.create("stuck", "c", 100.0)
    store.create("ending-now", "c", 100.0)
    assert store.claim_for_ending("stuck", 200.0) and store.claim_for_ending("ending-now", 390.0)
    assert store.release_stuck_endings(claimed_before=300.0) == ["stuck"]
    assert store.get("stuck")["status"] == "open" and store.get("ending-now")["status"] == "ending"
    assert store.claim_for_ending("stuck", 400.0)  # the integrator's retry can end it now
