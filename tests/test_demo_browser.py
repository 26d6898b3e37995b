"""The /demo page in a real browser: Debian's headless Chromium, its fake webcam fed with a real clip,
driven by Selenium against the running app.

The clip (`webcam_gaze_center_left_center.mp4`) becomes a .y4m at test time, which Chromium plays as
the webcam, looping; espeak-ng sentences over room noise become a WAV, which it plays as the
microphone (`--use-file-for-fake-audio-capture`), looping. The page starts a session, streams 5
frames/s and the microphone over the WebSocket, and must show LOOKING_AWAY (the eyes turn left ~6-10
s into the clip) and SECOND_VOICE (a voice is heard while the face in the camera keeps its mouth
still: the real face stage measures it), then the verdict after End, and a working link to the
report, whose SECOND_VOICE carries its audio clip. Screenshots go to the test's tmp dir, and also to $PROCTOR_SCREENSHOT_DIR when
set (`PROCTOR_SCREENSHOT_DIR=docs/img` regenerates the README's pictures).

Chromium is kept on this machine by the flags in ../shared/LOCAL-SERVICES.md. Afterwards its net log
must show no TCP connection, DNS lookup or UDP datagram to anything but 127.0.0.1 (its own services
still make requests for Google hosts, which those flags send to a dead proxy on 127.0.0.1:9), and
the page's resource timings no resource from anywhere but the app.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devtools import speech as synth
from tests.conftest import AUTH, FIXTURES, ROOT, TEST_API_KEY, needs_fixtures, needs_models

pytestmark = [needs_fixtures, needs_models]
SECOND_VOICE_TIMEOUT_S = 60  # speech starts 1 s into the microphone's loop

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CLIP = "webcam_gaze_center_left_center.mp4"
VERDICTS = {"CLEAN", "SUSPICIOUS", "CHEATING"}
LOOKING_AWAY_TIMEOUT_S = 90  # the look to the left is ~6-10 s into a 15 s loop; this machine is slow
# Exactly the flags of ../shared/LOCAL-SERVICES.md: the usual "no network" flags alone still let
# Chromium look up and call Google hosts; the host-resolver rule and the dead proxy stop that.
LOCAL_ONLY_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1000,920",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
    "--disable-features=OptimizationGuideModelDownloading,OptimizationHintsFetching,"
    "OptimizationTargetPrediction,OptimizationHints,NetworkTimeServiceQuerying",
    "--disable-domain-reliability", "--no-pings",
]


def _browser_installed() -> bool:
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


@pytest.fixture(scope="module")
def browser_binaries():
    """Chromium and ChromeDriver from Debian (`make test` installs them; here only as root)."""
    if not _browser_installed() and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run([str(ROOT / "scripts" / "install_system_deps.sh")], timeout=600, check=False)
    if not _browser_installed():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian packages chromium and chromium-driver: "
                    "run `make system-deps` as root or with sudo)")
    pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[test]')")
    if not synth.espeak_available():
        pytest.skip("needs espeak-ng for the fake microphone (scripts/install_system_deps.sh installs it)")


def write_microphone_wav(out: Path) -> float:
    """What the fake microphone says, looping: espeak-ng sentences (several voices) with short pauses,
    over a quiet room. Returns its length in seconds."""
    import numpy as np

    gap = np.zeros(int(0.6 * synth.RATE), dtype=np.float32)
    said = np.concatenate([np.zeros(synth.RATE, dtype=np.float32)]
                          + [part for i in range(4) for part in (synth.speech(synth.SENTENCES[i], synth.VOICES[i]), gap)])
    signal = synth.at_dbfs(said, -22) + synth.at_dbfs(synth.room_noise(len(said) / synth.RATE, 7), -55)
    out.write_bytes(synth.wav_file(signal))
    return len(signal) / synth.RATE


def write_y4m(video: Path, out: Path) -> tuple[int, int, int]:
    """The clip as raw I420 frames in a YUV4MPEG2 file, which Chromium's fake webcam plays (looping).
    Returns (width, height, frames). Big (~0.6 MB a frame): tmp only, never committed."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the MP4 carries a 90-degree rotation tag
    fps = round(capture.get(cv2.CAP_PROP_FPS)) or 24
    frames, size = 0, None
    with open(out, "wb") as f:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if size is None:
                size = (frame.shape[1], frame.shape[0])  # from the decoded frames, not the container
                f.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
            frames += 1
    capture.release()
    assert size is not None and frames > 0, f"no frames read from {video}"
    return size[0], size[1], frames


LOOPBACK = ("127.0.0.1:", "[::1]:")


def read_net_log(path: Path) -> dict:
    """Chromium's net log (complete after the browser quits; a cut-short one is closed here)."""
    text = path.read_text(errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.rstrip().rstrip(",") + "]}")


def outside_traffic(log: dict) -> dict[str, list]:
    """What in the net log could have left this machine: TCP connects, DNS names resolved, UDP
    datagrams sent. Also the hosts that requests were made for (they may all have failed)."""
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    found: dict[str, list] = {"tcp": [], "dns": [], "udp": [], "requested": []}
    udp_outside, udp_sent = set(), set()
    for event in log["events"]:
        name, params, source = names.get(event["type"], ""), event.get("params") or {}, event["source"]["id"]
        if name in ("TCP_CONNECT_ATTEMPT", "TCP_CONNECT_JOB_CONNECTOR_CONNECT_START") and "address" in params:
            if not params["address"].startswith(LOOPBACK):
                found["tcp"].append(params["address"])
        elif name == "HOST_RESOLVER_MANAGER_REQUEST" and "host" in params:
            host = re.sub(r"^[a-z]+://", "", params["host"]).rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "~notfound"):  # ~NOTFOUND: the host-resolver rule refused it
                found["dns"].append(params["host"])
        elif name == "UDP_CONNECT" and "address" in params and not params["address"].startswith(LOOPBACK):
            udp_outside.add(source)  # a UDP connect() alone sends nothing (the IPv6 reachability probe)
        elif name == "UDP_BYTES_SENT":
            udp_sent.add(source)
        elif name == "URL_REQUEST_START_JOB" and "url" in params:
            found["requested"].append(params["url"].split("?")[0])
    found["udp"] = sorted(udp_outside & udp_sent)
    return found


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
    if os.environ.get("PROCTOR_SCREENSHOT_DIR"):
        target = Path(os.environ["PROCTOR_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_demo_page_streams_the_webcam_and_microphone_and_shows_looking_away_second_voice_and_a_verdict(serve_app, browser_binaries, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url = serve_app["url"]
    page = httpx.get(f"{url}/demo", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert TEST_API_KEY not in page.text  # the page embeds no key

    y4m = tmp_path / "webcam.y4m"
    width, height, frames = write_y4m(FIXTURES / "videos" / CLIP, y4m)
    assert (width, height) == (480, 848) and frames > 240  # upright, and past the look to the left
    microphone = tmp_path / "microphone.wav"
    assert write_microphone_wav(microphone) > 8
    profile, net_log = tmp_path / "chromium-profile", tmp_path / "netlog.json"
    profile.mkdir()

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the Service path below: Selenium Manager downloads nothing
    for flag in LOCAL_ONLY_FLAGS + [f"--user-data-dir={profile}", f"--use-file-for-fake-video-capture={y4m}",
                                    f"--use-file-for-fake-audio-capture={microphone}",
                                    f"--log-net-log={net_log}"]:  # the net log only observes
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(f"{url}/demo")
        # A wrong key is refused, plainly, and no session starts.
        key = driver.find_element(By.ID, "api-key")
        key.send_keys("not-the-key-0123456789")
        driver.find_element(By.ID, "start").click()
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        assert "API key was refused: invalid API key" in driver.find_element(By.ID, "error").text
        assert driver.find_element(By.ID, "start").is_enabled()

        key.clear()
        key.send_keys(TEST_API_KEY)
        candidate = driver.find_element(By.ID, "candidate-id")
        candidate.clear()
        candidate.send_keys("browser-demo")
        Select(driver.find_element(By.ID, "fps")).select_by_value("5")
        driver.find_element(By.ID, "start").click()

        # Live results: frames analysed, then LOOKING_AWAY in the event log.
        wait.until(lambda d: d.find_element(By.ID, "score").text not in ("", "-") or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == "", driver.find_element(By.ID, "error").text
        deadline = time.time() + LOOKING_AWAY_TIMEOUT_S
        while "LOOKING_AWAY" not in driver.find_element(By.ID, "events").text:
            error = driver.find_element(By.ID, "error").text
            assert time.time() < deadline, (
                f"no LOOKING_AWAY within {LOOKING_AWAY_TIMEOUT_S} s; log: {driver.find_element(By.ID, 'events').text!r}, "
                f"frames: {driver.find_element(By.ID, 'counters').text!r}, error: {error!r}")
            time.sleep(0.5)
        save_screenshot(driver, tmp_path, "demo.png")  # live: the event just opened
        assert driver.find_element(By.ID, "gaze").text.split()[0] in ("left", "center", "right", "up", "down", "unknown")
        assert driver.find_element(By.ID, "faces").text.startswith("1")
        assert "LOOKING_AWAY" in driver.find_element(By.ID, "open-events").text
        counters = driver.find_element(By.ID, "counters").text
        assert int(re.search(r"(\d+) analysed", counters).group(1)) >= 5, counters
        # The eyes come back about 4 s after they left: the log shows the episode close.
        WebDriverWait(driver, 45).until(lambda d: "LOOKING_AWAY closed" in d.find_element(By.ID, "events").text)

        # The microphone: speech is heard while the face's mouth is still (the real face stage, on the
        # clip: the person never speaks), so SECOND_VOICE opens.
        deadline = time.time() + SECOND_VOICE_TIMEOUT_S
        while "SECOND_VOICE" not in driver.find_element(By.ID, "events").text:
            assert time.time() < deadline, (
                f"no SECOND_VOICE within {SECOND_VOICE_TIMEOUT_S} s; audio: {driver.find_element(By.ID, 'audio').text!r}, "
                f"log: {driver.find_element(By.ID, 'events').text!r}")
            time.sleep(0.5)
        audio_line = driver.find_element(By.ID, "audio").text
        assert re.search(r"\((\d+) chunks\)", audio_line) and "mouth" in audio_line, audio_line
        save_screenshot(driver, tmp_path, "demo-audio.png")

        # End: the verdict, then the report link (a copy fetched with the key, evidence inlined).
        driver.find_element(By.ID, "end").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "verdict").text in VERDICTS
                                        or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == "", driver.find_element(By.ID, "error").text
        assert driver.find_element(By.ID, "verdict").text in VERDICTS
        link = WebDriverWait(driver, 60).until(EC.visibility_of_element_located((By.ID, "report-link")))
        save_screenshot(driver, tmp_path, "demo-verdict.png")
        report = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.text()).then(done, e => done('failed: ' + e));",
            link.get_attribute("href"))
        assert "LOOKING_AWAY" in report and "data:image/jpeg;base64," in report, report[:300]
        assert "SECOND_VOICE" in report and re.search(r'<audio controls="" preload="none" src="blob:', report)

        # The service's own report says the same (the page's copy is not the only evidence).
        session_id = re.search(r"Session ([0-9a-f-]{36}) ended", driver.find_element(By.ID, "status").text).group(1)
        served = httpx.get(f"{url}/sessions/{session_id}/report", headers=AUTH, timeout=60).json()
        assert served["verdict"] == driver.find_element(By.ID, "verdict").text
        assert "LOOKING_AWAY" in {e["type"] for e in served["events"]}
        voice = next(e for e in served["events"] if e["type"] == "SECOND_VOICE")
        clip = httpx.get(url + voice["audio"]["clip_url"], headers=AUTH, timeout=60)
        assert clip.status_code == 200 and clip.content[:4] == b"RIFF" and served["audio_seconds"] > 5

        # Open the report the way a user does: a new tab, evidence images shown.
        demo_tab = driver.current_window_handle
        link.click()
        wait.until(lambda d: len(d.window_handles) == 2)
        driver.switch_to.window(next(h for h in driver.window_handles if h != demo_tab))
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert "LOOKING_AWAY" in driver.find_element(By.TAG_NAME, "body").text
        assert driver.execute_script(
            "return [...document.images].length > 0 && [...document.images].every(i => i.naturalWidth > 0)")
        save_screenshot(driver, tmp_path, "report.png")
        driver.switch_to.window(demo_tab)

        # Nothing but this server: every resource the page loaded came from it.
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(r.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "blob:", "data:"))
                                 for r in resources), resources
    finally:
        driver.quit()  # stops Chromium too, which finishes the net log
        y4m.unlink(missing_ok=True)  # ~225 MB; pytest keeps its last tmp dirs
        microphone.unlink(missing_ok=True)
    # Chromium's own services still create requests for Google and DuckDuckGo hosts (sign-in,
    # autofill, updates, search preconnect); with these flags they can only go to the dead proxy at
    # 127.0.0.1:9 and their names never resolve. So: no connection, lookup or datagram went out.
    traffic = outside_traffic(read_net_log(net_log))
    assert traffic["tcp"] == [] and traffic["dns"] == [] and traffic["udp"] == [], traffic
    outside = sorted({u for u in traffic["requested"] if not u.startswith(("http://127.0.0.1:", "ws://127.0.0.1:"))})
    print(f"requests for outside hosts, all refused on this machine: {outside}")
