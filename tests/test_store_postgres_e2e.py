"""The running app (real Serve, Ingress and session actors; fake models, tests/fakes.py) with its
session store on a real PostgreSQL server: a whole session over HTTP, then the rows read straight
from PostgreSQL."""
from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.conftest import AUTH, redeployed_app, start_session
from tests.fakes import scripted_frame


@pytest.fixture(scope="module")
def pg_app(fake_app, postgres_admin_url):
    from tests.postgres_server import create_database

    url = create_database(postgres_admin_url, "proctor_e2e")
    with redeployed_app(fake_app, {"ingress": {"store_url": url}}) as app:
        yield {**app, "store_url": url}


def test_a_whole_session_is_stored_in_postgres(pg_app):
    import psycopg

    with httpx.Client(base_url=pg_app["url"], timeout=120, headers=AUTH) as client:
        session_id = start_session(client, "pg-1")["session_id"]
        names = [1, 1, 2, 2, 2, 2]  # faces in each frame
        sent = [scripted_frame(faces=faces, seed=i) for i, faces in enumerate(names)]
        for i, image in enumerate(sent):
            frame = base64.b64encode(image).decode()
            r = client.post("/analyze-frame", json={"session_id": session_id, "frame": frame, "timestamp": 100 + 0.5 * i})
            assert r.status_code == 200, r.text
        summary = client.post("/end-session", json={"session_id": session_id})
        assert summary.status_code == 200, summary.text
        summary = summary.json()
        report = client.get(f"/sessions/{session_id}/report").json()
        event = next(e for e in report["events"] if e["type"] == "MULTIPLE_FACES")
        jpeg = client.get(pg_app["root"] + event["evidence_url"]).content

    assert report["verdict"] == summary["verdict"] and len(report["timeline"]) == len(names)
    with psycopg.connect(pg_app["store_url"]) as conn:
        status, verdict, candidate = conn.execute(
            "SELECT status, verdict, candidate_id FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        observations = conn.execute("SELECT seq FROM observations WHERE session_id = %s ORDER BY seq",
                                    (session_id,)).fetchall()
        event_types = {r[0] for r in conn.execute("SELECT type FROM events WHERE session_id = %s", (session_id,))}
        stored_frame, overlay = conn.execute("SELECT jpeg, overlay FROM evidence WHERE session_id = %s AND event_id = %s",
                                             (session_id, event["id"])).fetchone()
    assert (status, verdict, candidate) == ("ended", summary["verdict"], "pg-1")
    assert [r[0] for r in observations] == list(range(1, len(names) + 1))
    assert "MULTIPLE_FACES" in event_types
    # the evidence frame is stored as it was sent, its boxes beside it; served drawn, as a JPEG
    assert bytes(stored_frame) in sent[2:] and len(json.loads(overlay)["faces"]) == 2
    assert jpeg[:3] == b"\xff\xd8\xff"
    # and nothing of it went to the SQLite store the app uses otherwise
    from store.sqlite import SqliteSessionStore

    assert SqliteSessionStore(pg_app["args"]["ingress"]["store_path"]).get(session_id) is None
