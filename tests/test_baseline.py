"""The one-process baseline the benchmark compares against answers like Proctor, on the same models."""
from __future__ import annotations

import importlib.util

from tests.conftest import ROOT, frame_b64, needs_fixtures, needs_models, shared_weights_path

pytestmark = [needs_fixtures, needs_models]


def test_baseline_scores_a_session():
    from fastapi.testclient import TestClient

    spec = importlib.util.spec_from_file_location("baseline_app", ROOT / "bench" / "baseline" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = TestClient(module.create_app(shared_weights_path()))
    sid = client.post("/start-session", json={"candidate_id": "b"}).json()["session_id"]
    body = client.post("/analyze-frame", json={"session_id": sid, "frame": frame_b64("two_faces_obama_biden.jpg")}).json()
    assert body["faces"] == 2 and sum(o["label"] == "person" for o in body["objects"]) >= 2
    assert client.post("/analyze-frame", json={"session_id": sid, "frame": "%%"}).status_code == 400
    assert client.post("/end-session", json={"session_id": sid}).json()["frames"] == 1
