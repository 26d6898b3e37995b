"""Audio through the running app: the real Ingress with silero-vad's real model, the real session
actors and store; the face stage is the fake one (tests/fakes.py), which reports the mouth opening a
frame's script says (these tests are about the audio path, not about measuring a mouth: the real
face stage's mouth is used in tests/test_demo_browser.py and bench/audio_eval.py).

Speech is made at test time with espeak-ng. Covered: HTTP chunks and WebSocket audio messages
beside frames, SECOND_VOICE with its clip in the report, the modes, bad audio and the limits (the
errors frames get), DELETE, and the off switch."""
from __future__ import annotations

import base64
import json
import time

import httpx
import numpy as np
import pytest

from api.stream import encode_message
from audio.pcm import parse_wav, wav_bytes
from devtools import speech as synth
from tests.conftest import AUTH, redeployed_app, start_session
from tests.fakes import scripted_frame

needs_espeak = pytest.mark.skipif(not synth.espeak_available(), reason=(
    "needs Debian's espeak-ng (scripts/install_system_deps.sh installs it)"))
T0 = 1000.0  # the client's capture clock


@pytest.fixture(scope="module")
def client(fake_app):
    with httpx.Client(base_url=fake_app["url"], timeout=120, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def spoken() -> np.ndarray:
    """~8 s of espeak-ng speech over quiet room noise."""
    if not synth.espeak_available():
        pytest.skip("needs espeak-ng")
    said = np.concatenate([synth.speech(synth.SENTENCES[i], synth.VOICES[i]) for i in range(3)])
    return synth.at_dbfs(said, -24) + synth.at_dbfs(synth.room_noise(len(said) / synth.RATE, 1), -50)


def send_audio(client, session: dict, t: float, wav: bytes, token: bool = True) -> httpx.Response:
    headers = {"Authorization": f"Bearer {session['session_token']}"} if token else {}
    return client.post("/analyze-audio", headers=headers, json={
        "session_id": session["session_id"], "audio": base64.b64encode(wav).decode(), "timestamp": t})


def send_frame(client, session: dict, t: float, seed: int, **script) -> dict:
    r = client.post("/analyze-frame", json={"session_id": session["session_id"], "timestamp": t,
                                            "frame": base64.b64encode(scripted_frame(seed=seed, **script)).decode()})
    assert r.status_code == 200, r.text
    return r.json()


def converse(client, session: dict, signal: np.ndarray, mouth=lambda t: 0.02, faces: int = 1) -> list[dict]:
    """Frames at 2/s and 0.5 s audio chunks, interleaved on one capture clock; the audio answers.
    Sent faster than real time, but frames no faster than 8/s of wall time: the session's frame
    rate limit (10/s) is not what these tests are about."""
    answers, next_frame, seed = [], 0.0, int(session["session_id"][:6], 16)
    for offset, wav in synth.chunks(signal, 0.5):
        while next_frame <= offset:
            time.sleep(0.125)
            send_frame(client, session, T0 + next_frame, seed=seed, faces=faces, mouth=mouth(next_frame))
            next_frame, seed = next_frame + 0.5, seed + 1
        r = send_audio(client, session, T0 + offset, wav)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    return answers


@needs_espeak
def test_speech_while_the_mouth_is_still_opens_second_voice_with_its_clip(client, fake_app, spoken):
    session = start_session(client, "audio-1")
    assert session["mode"] == "interview" and session["audio"] == {"enabled": True, "sample_rate": 16000,
                                                                    "max_chunk_s": 2.0}
    answers = converse(client, session, spoken)
    assert sum(a["speech"] for a in answers) >= len(answers) * 0.7, [a["speech_seconds"] for a in answers]
    assert {a["mouth"] for a in answers[2:]} == {"still"}
    opened = [a for a in answers if "SECOND_VOICE" in a["events_opened"]]
    assert len(opened) == 1 and opened[0]["chunk_time"] - answers[0]["chunk_time"] < 4.0
    assert all(a["latency_ms"]["vad"] < 500 for a in answers)
    sid = session["session_id"]

    end = client.post("/end-session", json={"session_id": sid}).json()
    assert end["violations_by_type"]["SECOND_VOICE"]["count"] == 1
    report = client.get(f"/sessions/{sid}/report").json()
    assert report["mode"] == "interview" and report["audio_seconds"] == pytest.approx(len(spoken) / 16000, abs=0.05)
    assert report["speech"] and report["frames"] == end["frames"]  # audio rows are not frames
    event = next(e for e in report["events"] if e["type"] == "SECOND_VOICE")
    audio = event["audio"]
    assert audio["end_offset_s"] - audio["start_offset_s"] <= 8.0 + 1e-6 and max(audio["waveform"]) > 0.1
    clip = client.get(fake_app["root"] + audio["clip_url"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    samples = parse_wav(clip.content, max_chunk_s=30)
    assert samples.duration_s == pytest.approx(audio["end_offset_s"] - audio["start_offset_s"], abs=0.05)
    page = client.get(f"/sessions/{sid}/report.html").text
    assert f'<audio controls preload="none" src="{audio["clip_url"]}">' in page

    assert client.delete(f"/sessions/{sid}").status_code == 200
    assert client.get(fake_app["root"] + audio["clip_url"]).status_code == 404


@needs_espeak
def test_speech_while_the_mouth_moves_is_no_second_voice_and_modes_choose_events(client, spoken):
    talking = lambda t: 0.05 if int(t * 2) % 2 else 0.35  # noqa: E731 - the candidate speaking
    interview = start_session(client, "audio-2")
    answers = converse(client, interview, spoken, mouth=talking)
    assert not any(a["events_opened"] for a in answers if "SECOND_VOICE" in a["events_opened"])
    assert {a["mouth"] for a in answers[2:]} == {"moving"}
    assert "SPEECH_DETECTED" not in {e["type"] for a in answers for e in a["events"]}  # interview: not counted

    r = client.post("/start-session", json={"candidate_id": "audio-3", "mode": "exam"})
    exam = r.json()
    assert exam["mode"] == "exam"
    opened = {kind for a in converse(client, exam, spoken, mouth=talking) for kind in a["events_opened"]}
    assert "SPEECH_DETECTED" in opened and "SECOND_VOICE" not in opened
    assert client.get(f"/sessions/{exam['session_id']}").json()["mode"] == "exam"
    assert client.post("/start-session", json={"candidate_id": "x", "mode": "party"}).status_code == 422
    for s in (interview, exam):
        client.post("/end-session", json={"session_id": s["session_id"]})


def test_bad_audio_gets_the_errors_frames_get(client, fake_app):
    session = start_session(client, "audio-bad")
    quiet = wav_bytes(bytes(16000))  # 0.5 s of silence
    cases = [
        ({"audio": "not base64!!"}, 400, "not valid base64"),
        ({"audio": ""}, 400, "empty"),
        ({"audio": base64.b64encode(scripted_frame()).decode()}, 422, "not a WAV"),
        ({"audio": base64.b64encode(quiet[:60]).decode()}, 422, "truncated"),
        ({"audio": base64.b64encode(wav_bytes(bytes(32000 * 3))).decode()}, 413, "too long"),
    ]
    for body, status, words in cases:
        r = client.post("/analyze-audio", json={"session_id": session["session_id"], **body})
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    other = start_session(client, "audio-other")
    r = client.post("/analyze-audio", headers={"Authorization": f"Bearer {other['session_token']}"},
                    json={"session_id": session["session_id"], "audio": base64.b64encode(quiet).decode()})
    assert r.status_code == 403
    r = httpx.post(f"{fake_app['url']}/analyze-audio", json={"session_id": session["session_id"],
                                                               "audio": base64.b64encode(quiet).decode()})
    assert r.status_code == 401
    r = client.post("/analyze-audio", json={"session_id": "00000000-0000-4000-8000-000000000000",
                                            "audio": base64.b64encode(quiet).decode()})
    assert r.status_code == 404
    # The audio rate: 1.5 s of audio per second with a 10 s burst: 2 s chunks as fast as possible.
    answers = [send_audio(client, session, T0 + 2 * i, wav_bytes(bytes(64000))) for i in range(8)]
    statuses = [r.status_code for r in answers]
    assert statuses[:5] == [200] * 5 and 429 in statuses, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "audio per second" in refused.json()["detail"]
    state = client.get(f"/sessions/{session['session_id']}").json()
    assert state["audio_seconds"] == pytest.approx(2.0 * statuses.count(200))  # what was refused left no trace
    client.post("/end-session", json={"session_id": session["session_id"]})
    time.sleep(1.5)
    assert send_audio(client, session, T0 + 200, quiet).status_code == 409
    client.post("/end-session", json={"session_id": other["session_id"]})


def ws_url(app, session: dict) -> str:
    return app["url"].replace("http://", "ws://") + f"/sessions/{session['session_id']}/stream?token={session['session_token']}"


@needs_espeak
def test_the_stream_takes_audio_beside_frames(client, fake_app, spoken):
    from websockets.sync.client import connect

    session = start_session(client, "audio-ws")
    sent_audio = sent_frames = 0
    answers = []
    with connect(ws_url(fake_app, session), open_timeout=30) as ws:
        for i, (offset, wav) in enumerate(synth.chunks(spoken[:16000 * 4], 0.5)):
            ws.send(encode_message(T0 + offset, scripted_frame(seed=5000 + i)))
            ws.send(encode_message(T0 + offset, wav))
            sent_frames, sent_audio = sent_frames + 1, sent_audio + 1
            time.sleep(0.15)
        ws.send(encode_message(T0 + 10, b"RIFF\x00\x00\x00\x00WAVEjunk"))  # an audio message that is not audio
        deadline = time.time() + 60
        while sum(a.get("kind") == "audio" for a in answers) < sent_audio + 1 and time.time() < deadline:
            answers.append(json.loads(ws.recv(timeout=60)))
    heard = [a for a in answers if a.get("kind") == "audio"]
    frames = [a for a in answers if a.get("kind") != "audio"]
    assert len(heard) == sent_audio + 1 and frames and all("faces" in f for f in frames)
    ok = [a for a in heard if "error" not in a]
    assert len(ok) == sent_audio and sum(a["speech"] for a in ok) >= sent_audio // 2
    assert [a["chunk_time"] for a in ok] == sorted(a["chunk_time"] for a in ok)  # in order, none dropped
    bad = [a for a in heard if "error" in a]
    assert bad == [{"error": bad[0]["error"], "status": 422, "kind": "audio"}] and "WAV" in bad[0]["error"]
    client.post("/end-session", json={"session_id": session["session_id"]})


def test_the_off_switch_refuses_audio_everywhere(fake_app):
    from websockets.sync.client import connect

    with redeployed_app(fake_app, {"audio": {"enabled": False}}) as app, \
            httpx.Client(base_url=app["url"], timeout=120, headers=AUTH) as c:
        session = start_session(c, "audio-off")
        assert session["audio"]["enabled"] is False
        r = send_audio(c, session, T0, wav_bytes(bytes(16000)))
        assert r.status_code == 403 and "audio is off" in r.json()["detail"]
        with connect(ws_url(app, session), open_timeout=30) as ws:
            ws.send(encode_message(T0, wav_bytes(bytes(16000))))
            answer = json.loads(ws.recv(timeout=60))
        assert answer["status"] == 403 and answer["kind"] == "audio"
        assert c.get(f"/sessions/{session['session_id']}").json()["audio_seconds"] == 0
        c.post("/end-session", json={"session_id": session["session_id"]})
