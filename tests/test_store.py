"""The session store on a real SQLite file and a real PostgreSQL server (tests/postgres_server.py):
round trips, atomic claims and status transitions, leases, deletion, reconnection, and the SQLite
migration."""
from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from sessions.status import SessionStatus
from store import open_store
from store.base import SCHEMA_VERSION
from store.sqlite import SqliteSessionStore

OPEN, ENDING, ENDED, ABANDONED = SessionStatus.OPEN, SessionStatus.ENDING, SessionStatus.ENDED, SessionStatus.ABANDONED


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    """Where a store lives: an SQLite path or a postgresql:// URL. Open it twice for two processes."""
    if request.param == "sqlite":
        return str(tmp_path / "s.sqlite3")
    return request.getfixturevalue("postgres_url")


def test_open_store_picks_the_backend(tmp_path, postgres_url):
    from store.postgres import PostgresSessionStore

    sqlite_store = open_store(str(tmp_path / "s.sqlite3"))
    assert type(sqlite_store) is SqliteSessionStore and sqlite_store.target == str(tmp_path / "s.sqlite3")
    pg = open_store(postgres_url)
    assert type(pg) is PostgresSessionStore and pg.target == postgres_url
    assert type(open_store(postgres_url.replace("postgresql://", "postgres://"))) is PostgresSessionStore
    with pytest.raises(ValueError, match="mysql"):
        open_store("mysql://u@h/db")


def test_frames_events_and_evidence_round_trip(location):
    store = open_store(location)
    store.create("s1", "cand", 100.0)
    event = {"id": "0001-phone-detected", "type": "PHONE_DETECTED", "start": 100.5, "end": None}
    store.record_frame("s1", 1, 100.5, 15.0, 100.0, {"t": 100.5, "faces": 1}, [event],
                       [("0001-phone-detected", 100.5, 0.8, b"\xff\xd8jpeg", {"caption": "phone"})], seen_at=101.0)
    assert store.observations("s1") == [{"seq": 1, "t": 100.5, "score": 15.0, "attention": 100.0,
                                         "observation": {"t": 100.5, "faces": 1}}]
    assert store.events("s1") == [event]
    assert store.evidence("s1", "0001-phone-detected") == (b"\xff\xd8jpeg", {"caption": "phone"})
    assert store.evidence_confidences("s1") == {"0001-phone-detected": 0.8}
    assert store.get("s1")["last_seen_at"] == 101.0 and store.get("s1")["status"] == "open"
    # the same frame recorded again (a retry) replaces, never duplicates; a closed event is updated
    closed = {**event, "end": 103.0}
    store.record_frame("s1", 1, 100.5, 16.0, 90.0, {"t": 100.5, "faces": 2}, [closed],
                       [("0001-phone-detected", 100.5, 0.9, b"\xff\xd8better", {"caption": "better"})], seen_at=102.0)
    assert [(o["seq"], o["score"], o["attention"]) for o in store.observations("s1")] == [(1, 16.0, 90.0)]
    assert store.events("s1") == [closed] and store.evidence("s1", "0001-phone-detected") == (b"\xff\xd8better", {"caption": "better"})
    # the first timestamped frame stores the clock offset in the same transaction; floats keep full
    # precision (not 4-byte REAL): capture times are epoch seconds
    store.record_frame("s1", 2, 101.0, 16.0, 90.0, {"t": 101.0}, [], [], seen_at=102.5, clock_offset=1701234567.123456)
    assert store.get("s1")["clock_offset"] == 1701234567.123456
    # the final events are stored with the end, in one transaction
    assert store.transition("s1", OPEN, ENDING, 103.0)
    assert store.finish("s1", ENDED, 104.0, {"verdict": "CLEAN"}, [{**closed, "end": 104.0}])
    assert store.events("s1")[0]["end"] == 104.0
    # a second process sees it (SQLite: WAL; PostgreSQL: another connection)
    assert open_store(location).events("s1") == [{**closed, "end": 104.0}]


def test_claim_is_atomic_and_end_and_delete(location):
    store = open_store(location)
    other = open_store(location)
    store.create("s1", "cand", 100.0)
    assert store.open_session_count() == 1
    assert store.transition("s1", OPEN, ENDING, 150.0) is True
    assert other.transition("s1", OPEN, ENDING, 150.0) is False  # another replica cannot end it twice
    assert other.open_session_count() == 1  # 'ending' still counts as open
    assert store.finish("s1", ABANDONED, 200.0, {"verdict": "CLEAN"}, []) is True
    assert other.finish("s1", ENDED, 201.0, {"verdict": "CHEATING"}, []) is False  # ended once, not rewritten
    record = other.get("s1")
    assert (record["status"], record["verdict"], record["summary"]) == (ABANDONED, "CLEAN", {"verdict": "CLEAN"})
    assert store.open_session_count() == 0
    assert store.expired_sessions(ended_before=300.0) == ["s1"] and store.expired_sessions(ended_before=150.0) == []
    assert store.delete("s1") is True and store.get("s1") is None and store.observations("s1") == []
    assert store.delete("s1") is False


def test_status_transitions_follow_the_table(location):
    store = open_store(location)
    store.create("s1", "c", 100.0)
    assert store.finish("s1", ENDED, 110.0, {"verdict": "CLEAN"}, []) is False  # not claimed: not ended
    assert store.get("s1")["status"] is OPEN
    for old, new in ((OPEN, ENDED), (ENDED, OPEN), (ABANDONED, ENDING), (OPEN, OPEN)):
        with pytest.raises(ValueError):
            store.transition("s1", old, new, 120.0)
    assert store.transition("s1", OPEN, ENDING, 120.0) and store.transition("s1", ENDING, OPEN, 121.0)
    assert store.get("s1")["status"] is OPEN  # an end that failed puts it back, nothing lost


def test_one_lease_holder_at_a_time(location):
    """The reaper's lease: one replica holds it; another takes it only once it has expired."""
    a, b = open_store(location), open_store(location)
    assert a.take_lease("reaper", "replica-a", now=100.0, ttl_s=30) is True
    assert b.take_lease("reaper", "replica-b", now=110.0, ttl_s=30) is False
    assert a.take_lease("reaper", "replica-a", now=125.0, ttl_s=30) is True  # renewed, to 155
    assert b.take_lease("reaper", "replica-b", now=150.0, ttl_s=30) is False
    assert b.take_lease("reaper", "replica-b", now=156.0, ttl_s=30) is True  # a died: b takes over
    assert a.take_lease("reaper", "replica-a", now=160.0, ttl_s=30) is False
    assert a.take_lease("other-job", "replica-a", now=160.0, ttl_s=30) is True


def test_idle_sessions(location):
    store = open_store(location)
    store.create("old", "c", 100.0)
    store.create("new", "c", 500.0)
    assert store.idle_sessions(older_than=400.0) == ["old"]


def test_a_setting_is_shared_and_the_first_writer_wins(location):
    first, second = open_store(location), open_store(location)
    assert first.setting("token_secret", "aaa") == "aaa"
    assert second.setting("token_secret", "bbb") == "aaa"


def test_an_end_claimed_by_a_replica_that_died_is_released(location):
    store = open_store(location)
    store.create("stuck", "c", 100.0)
    store.create("ending-now", "c", 100.0)
    assert store.transition("stuck", OPEN, ENDING, 200.0) and store.transition("ending-now", OPEN, ENDING, 390.0)
    assert store.release_stuck_endings(claimed_before=300.0) == ["stuck"]
    assert store.get("stuck")["status"] == "open" and store.get("ending-now")["status"] == "ending"
    assert store.transition("stuck", OPEN, ENDING, 400.0)  # the integrator's retry can end it now


def test_a_first_release_store_is_migrated_with_its_sessions(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE sessions (session_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL,
        started_at REAL NOT NULL, ended_at REAL, verdict TEXT, summary TEXT);""")
    conn.execute("INSERT INTO sessions VALUES ('a', 'c1', 10.0, 20.0, 'CLEAN', ?)", (json.dumps({"verdict": "CLEAN"}),))
    conn.execute("INSERT INTO sessions VALUES ('b', 'c2', 30.0, NULL, NULL, NULL)")
    conn.commit()
    conn.close()
    store = SqliteSessionStore(str(path))
    assert store.get("a")["status"] == "ended" and store.get("a")["summary"] == {"verdict": "CLEAN"}
    assert store.get("b")["status"] == "open" and store.get("b")["last_seen_at"] == 30.0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.transition("b", OPEN, ENDING, 40.0)  # the v2 column exists after migration
    assert store.take_lease("reaper", "r", 40.0, 10.0)  # and the v3 table


def test_a_v3_store_keeps_its_drawn_evidence_and_takes_overlays(location):
    """v3 stored evidence already drawn; v4 stores the frame and its overlay. A v3 database opened
    by this version keeps its rows (served as they are) and takes new ones."""
    v3_evidence = ("CREATE TABLE evidence (session_id TEXT NOT NULL, event_id TEXT NOT NULL, t {real} NOT NULL, "
                   "confidence {real} NOT NULL, jpeg {blob} NOT NULL, PRIMARY KEY (session_id, event_id))")
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(v3_evidence.format(real="DOUBLE PRECISION", blob="BYTEA"))
            conn.execute("INSERT INTO evidence VALUES ('old', 'e1', 1.0, 0.9, %s)", (b"drawn",))
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (3)")
    else:
        conn = sqlite3.connect(location)
        conn.execute(v3_evidence.format(real="REAL", blob="BLOB"))
        conn.execute("INSERT INTO evidence VALUES ('old', 'e1', 1.0, 0.9, ?)", (b"drawn",))
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
        conn.close()
    store = open_store(location)
    assert store.evidence("old", "e1") == (b"drawn", None)
    store.create("new", "c", 10.0)
    store.record_frame("new", 1, 10.5, 0.0, 100.0, {"t": 10.5}, [], [("e1", 10.5, 0.7, b"raw", {"caption": "x"})],
                       seen_at=11.0)
    assert store.evidence("new", "e1") == (b"raw", {"caption": "x"})


def test_a_v4_store_gains_the_session_mode_and_audio_evidence(location):
    """v6 adds sessions.mode (old sessions: interview) and the audio_evidence table; a v4 database
    keeps its sessions, and audio clips are stored, read and deleted with their session."""
    v4_sessions = ("CREATE TABLE sessions (session_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL, "
                   "started_at {real} NOT NULL, status TEXT NOT NULL DEFAULT 'open', ending_since {real}, "
                   "last_seen_at {real}, clock_offset {real}, ended_at {real}, verdict TEXT, summary TEXT)")
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(v4_sessions.format(real="DOUBLE PRECISION"))
            conn.execute("INSERT INTO sessions (session_id, candidate_id, started_at) VALUES ('old', 'c', 1.0)")
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (4)")
    else:
        conn = sqlite3.connect(location)
        conn.execute(v4_sessions.format(real="REAL"))
        conn.execute("INSERT INTO sessions (session_id, candidate_id, started_at) VALUES ('old', 'c', 1.0)")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
        conn.close()
    store = open_store(location)
    assert store.get("old")["mode"] == "interview"
    store.create("new", "c", 10.0, mode="exam")
    assert store.get("new")["mode"] == "exam"
    store.record_frame("new", 1, 12.0, 5.0, 100.0, {"kind": "audio", "t": 11.5}, [], [], seen_at=12.0,
                       audio_evidence=[("0001-second-voice", 10.5, 12.0, b"RIFFclip"), ("0002-speech-detected", 11.0, 12.0, None)])
    assert store.audio_spans("new") == {"0001-second-voice": (10.5, 12.0, True), "0002-speech-detected": (11.0, 12.0, False)}
    assert store.audio_clip("new", "0001-second-voice") == b"RIFFclip"
    assert store.audio_clip("new", "0002-speech-detected") is None
    assert store.delete("new")
    assert store.audio_spans("new") == {} and store.audio_clip("new", "0001-second-voice") is None


# ---- PostgreSQL only ------------------------------------------------------------------------------
def test_postgres_schema_types_and_version(postgres_url):
    import psycopg

    open_store(postgres_url)
    open_store(postgres_url)  # a second process finds the schema there and leaves it
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        types = dict(conn.execute("SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = 'public'").fetchall())
    assert types["evidence.jpeg"] == "bytea"
    assert types["sessions.started_at"] == types["observations.t"] == types["evidence.confidence"] == "double precision"


def test_postgres_racing_claims_have_exactly_one_winner(postgres_url):
    """Two store objects (two connections, as two processes would have) claim one session at the same
    moment, many times over: exactly one wins each time."""
    stores = [open_store(postgres_url), open_store(postgres_url)]
    rounds = 25
    for i in range(rounds):
        stores[0].create(f"s{i}", "c", 100.0)
    wins: list[list[bool]] = [[], []]

    def claimer(k: int) -> None:
        for i in range(rounds):
            barrier.wait()
            wins[k].append(stores[k].transition(f"s{i}", OPEN, ENDING, 150.0 + k))

    barrier = threading.Barrier(2, timeout=30)
    threads = [threading.Thread(target=claimer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [a + b for a, b in zip(*wins)] == [1] * rounds
    assert {stores[0].get(f"s{i}")["status"] for i in range(rounds)} == {"ending"}


def test_postgres_store_reconnects_after_the_connection_drops(postgres_url):
    """A session actor lives for hours; the server may drop its connection (restart, idle timeout)."""
    import psycopg

    store = open_store(postgres_url)
    store.create("s1", "c", 100.0)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE application_name = 'proctor' AND pid <> pg_backend_pid()").fetchall()
    assert killed == [(True,)]
    assert store.get("s1")["status"] == "open"  # a read on the dropped connection: reconnected
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'proctor' "
                      "AND pid <> pg_backend_pid()")
    store.record_frame("s1", 1, 100.5, 0.0, 100.0, {"t": 100.5}, [], [], seen_at=101.0)  # a write, likewise
    assert [o["seq"] for o in open_store(postgres_url).observations("s1")] == [1]


def test_postgres_password_stays_out_of_the_repr():
    from store.postgres import redact_url

    assert redact_url("postgresql://proctor:s3cret@db:5432/proctor") == "postgresql://proctor:***@db:5432/proctor"
    assert redact_url("postgresql://proctor@db/proctor") == "postgresql://proctor@db/proctor"


# ---- v7: reviews, the outbox, webhook endpoints, edX attempts (both backends) ---------------------
def _ended(store, sid: str, peak: float, candidate: str = "c") -> None:
    from outbox.events import session_ended

    store.create(sid, candidate, 100.0)
    assert store.transition(sid, OPEN, ENDING, 101.0)
    summary = {"verdict": "SUSPICIOUS", "peak_risk_score": peak}
    assert store.finish(sid, ENDED, 102.0, summary, [], outbox=[session_ended(sid, candidate, summary)])


def test_review_actions_queue_and_deletion(location):
    from outbox.events import review_completed, session_deleted

    store, other = open_store(location), open_store(location)
    store.create("open", "c", 100.0)
    assert store.add_review_action("open", 1.0, "r", "outcome", {"outcome": "CLEAN"}, outcome="CLEAN") is False
    assert store.add_review_action("missing", 1.0, "r", "event_reviewed", {"event_id": "e"}) is False
    for sid, peak in (("a", 20.0), ("b", 90.0), ("c", 55.0), ("d", 90.0)):
        _ended(store, sid, peak)
    queue = [r["session_id"] for r in store.review_queue(False, 10)]
    assert queue == ["b", "d", "c", "a"]  # highest peak first, then by id
    page = store.review_queue(False, 2)
    assert [r["session_id"] for r in store.review_queue(False, 2, (page[-1]["peak_risk_score"], page[-1]["session_id"]))] == ["c", "a"]
    # two reviewers appending at once each get a sequence number; the outcome takes b out of the queue
    assert store.add_review_action("b", 200.0, "alice", "event_reviewed", {"event_id": "e1", "decision": "confirmed"})
    assert other.add_review_action("b", 201.0, "bob", "event_reviewed", {"event_id": "e1", "decision": "dismissed"})
    event = review_completed("b", "c", "SUSPICIOUS", {"status": "completed", "outcome": "CHEATING", "comment": None,
                                                      "reviewer": "alice", "reviewed_at": 202.0})
    assert store.add_review_action("b", 202.0, "alice", "outcome", {"outcome": "CHEATING"}, outcome="CHEATING",
                                   outbox=[event])
    assert [(a["seq"], a["reviewer"], a["action"]) for a in other.review_actions("b")] == [
        (1, "alice", "event_reviewed"), (2, "bob", "event_reviewed"), (3, "alice", "outcome")]
    assert [r["session_id"] for r in store.review_queue(False, 10)] == ["d", "c", "a"]
    done = store.review_queue(True, 10)
    assert [(r["session_id"], r["review_outcome"], r["reviewed_at"]) for r in done] == [("b", "CHEATING", 202.0)]
    events = store.undispatched(100)
    assert [e.type for e in events] == ["session.ended"] * 4 + ["review.completed"]
    assert events[-1].data["final_verdict"] == "CHEATING" and events[-1].message_id == event.message_id
    # deleting the session deletes its review, and says so in the outbox (same transaction)
    assert store.delete("b", outbox=[session_deleted("b", "c", "on request")])
    assert store.review_actions("b") == [] and store.review_queue(True, 10) == []
    assert store.undispatched(100)[-1].type == "session.deleted"
    assert store.delete("b", outbox=[session_deleted("b", "c", "again")]) is False  # nothing to delete, no event
    assert [e.type for e in store.undispatched(100)].count("session.deleted") == 1


def test_deliveries_are_claimed_by_one_deliverer_until_the_claim_expires(location):
    from outbox.events import session_started

    a, b = open_store(location), open_store(location)
    event = session_started("s1", "c", 100.0)
    a.create("s1", "c", 100.0, outbox=[event])
    assert [e.message_id for e in b.undispatched(10)] == [event.message_id]
    delivery = {"delivery_id": "dl_1", "event_type": event.type, "channel": "webhook", "endpoint_id": "ep_1",
                "url": "https://example.com/h", "body": "{}"}
    a.dispatch(event.message_id, [delivery], 100.0)
    b.dispatch(event.message_id, [delivery], 100.0)  # a re-run fan-out adds nothing twice
    assert a.undispatched(10) == [] and len(a._deliveries("", ())) == 1
    assert [d["delivery_id"] for d in a.claim_deliveries("A", 101.0, 120.0, 10)] == ["dl_1"]
    assert b.claim_deliveries("B", 110.0, 130.0, 10) == []  # A's claim holds
    assert [d["delivery_id"] for d in b.claim_deliveries("B", 121.0, 140.0, 10)] == ["dl_1"]  # A died: expired
    assert a.settle_delivery("dl_1", "A", "delivered", 1, 121.0, 200, None, 121.0) is False  # A's claim is gone
    assert b.settle_delivery("dl_1", "B", "failed", 10, 122.0, 500, "HTTP 500", 122.0) is True
    assert a.retry_delivery("dl_1", 130.0) and a.delivery("dl_1")["state"] == "pending"
    assert a.delivery("dl_1")["attempts"] == 0 and a.retry_delivery("dl_1", 131.0) is False  # pending already


def test_webhook_endpoints_per_owner(location):
    store = open_store(location)
    row = {"endpoint_id": "ep_1", "owner": "key_a", "url": "https://example.com/h", "events": "*",
           "secret": "whsec_x", "created_at": 1.0}
    assert store.add_endpoint(row, max_per_owner=1) is True
    assert store.add_endpoint({**row, "endpoint_id": "ep_2"}, max_per_owner=1) is False  # the owner's limit
    assert store.add_endpoint({**row, "endpoint_id": "ep_3", "owner": "key_b", "events": ",session.ended,"}, 1)
    assert [e["endpoint_id"] for e in store.subscribed_endpoints("session.ended")] == ["ep_1", "ep_3"]
    assert [e["endpoint_id"] for e in store.subscribed_endpoints("session.started")] == ["ep_1"]
    assert store.rotate_endpoint("ep_1", "key_b", "whsec_y", 99.0) is False  # not key_b's
    assert store.rotate_endpoint("ep_1", "key_a", "whsec_y", 99.0) is True
    assert (store.endpoint("ep_1")["secret"], store.endpoint("ep_1")["old_secret"]) == ("whsec_y", "whsec_x")
    store.disable_endpoint("ep_1", "410", 5.0)
    assert [e["endpoint_id"] for e in store.subscribed_endpoints("session.started")] == []
    assert store.delete_endpoint("ep_1", "key_b") is False and store.delete_endpoint("ep_1", "key_a") is True


def test_edx_attempts_are_registered_sessions(location):
    store = open_store(location)
    assert store.put_edx_exam("x1", "course-v1:a+b+c", {"name": "Final"}, 1.0, create=True)
    assert store.put_edx_exam("x1", "course-v1:a+b+c", {"name": "Final 2"}, 2.0, create=False)
    assert store.put_edx_exam("nope", "c", {}, 2.0, create=False) is False
    assert store.edx_exam("x1")["name"] == "Final 2"
    store.create_edx_attempt("s1", "edx:u1", 10.0, "x1", "u1", "https://lms", {"time_limit_mins": 60})
    assert store.get("s1")["status"] is SessionStatus.REGISTERED and store.open_session_count() == 0
    assert store.edx_attempt("s1")["time_limit_mins"] == 60 and store.edx_sessions_of_user("u1") == ["s1"]
    assert store.transition("s1", OPEN, ENDING, 11.0) is False  # not open yet
    assert store.open_registered("s1", 20.0) is True and store.open_registered("s1", 21.0) is False
    assert store.get("s1")["status"] is OPEN and store.get("s1")["started_at"] == 20.0  # its clock starts now
    assert store.delete("s1") and store.edx_attempt("s1") is None


def test_a_v4_store_gets_the_review_columns_filled_from_its_summaries(location):
    """Sessions ended before v7 enter the review queue by their stored peak score."""
    v4_sessions = ("CREATE TABLE sessions (session_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL, started_at {real} "
                   "NOT NULL, status TEXT NOT NULL DEFAULT 'open', ending_since {real}, last_seen_at {real}, "
                   "clock_offset {real}, ended_at {real}, verdict TEXT, summary TEXT)")
    rows = [("old-high", "ended", json.dumps({"verdict": "CHEATING", "peak_risk_score": 88})),
            ("old-low", "abandoned", json.dumps({"verdict": "CLEAN", "peak_risk_score": 3})),
            ("old-open", "open", None)]
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(v4_sessions.format(real="DOUBLE PRECISION"))
            for sid, status, summary in rows:
                conn.execute("INSERT INTO sessions (session_id, candidate_id, started_at, status, ended_at, summary) "
                             "VALUES (%s, 'c', 1.0, %s, 2.0, %s)", (sid, status, summary))
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (4)")
    else:
        conn = sqlite3.connect(location)
        conn.execute(v4_sessions.format(real="REAL"))
        conn.executemany("INSERT INTO sessions (session_id, candidate_id, started_at, status, ended_at, summary) "
                         "VALUES (?, 'c', 1.0, ?, 2.0, ?)", rows)
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
        conn.close()
    store = open_store(location)
    assert [(r["session_id"], r["peak_risk_score"]) for r in store.review_queue(False, 10)] == [
        ("old-high", 88.0), ("old-low", 3.0)]
    assert store.add_review_action("old-low", 5.0, "r", "outcome", {"outcome": "CLEAN"}, outcome="CLEAN")
    assert store.get("old-open")["status"] is OPEN


def test_a_reference_descriptor_is_kept_with_its_session_and_a_v4_store_takes_it(location, tmp_path):
    """v5: sessions.reference holds a reference photo's face descriptor (never the photo)."""
    store = open_store(location)
    store.create("ref", "c", 1.0, reference=[0.125, -0.5, 0.25])
    store.create("plain", "c", 2.0)
    assert store.get("ref")["reference"] == [0.125, -0.5, 0.25] and store.get("plain")["reference"] is None
    store.delete("ref")
    assert store.get("ref") is None
    if location.startswith("postgresql"):
        return
    old = tmp_path / "v4.sqlite3"  # a v4 store: its sessions table has no reference column
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE sessions (session_id TEXT PRIMARY KEY, candidate_id TEXT NOT NULL, started_at REAL NOT "
                 "NULL, status TEXT NOT NULL DEFAULT 'open', ending_since REAL, last_seen_at REAL, clock_offset REAL, "
                 "ended_at REAL, verdict TEXT, summary TEXT)")
    conn.execute("INSERT INTO sessions (session_id, candidate_id, started_at) VALUES ('kept', 'c', 5.0)")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    migrated = open_store(str(old))
    assert migrated.get("kept")["reference"] is None and migrated.get("kept")["candidate_id"] == "c"
    migrated.create("new", "c", 6.0, reference=[1.0])
    assert migrated.get("new")["reference"] == [1.0]
