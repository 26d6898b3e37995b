// Proctor demo client (GET /demo). Plain browser JavaScript, no dependencies, no build step.
//
// It is also a reference client for integrators. The protocol, in order:
//   1. POST start-session  {candidate_id}      Authorization: Bearer <API key>
//        -> {session_id, session_token, token_expires_at, ...}
//   2. WebSocket sessions/<id>/stream?token=<session token>
//        client -> server: one binary message per frame: 8 bytes of capture time (seconds, float64,
//                          big-endian), then the JPEG bytes;
//                          and, when the session's `audio.enabled`, one per 2 s of microphone:
//                          8 bytes of capture time (of the first sample), then a WAV of 16 kHz mono
//                          16-bit PCM (an AudioWorklet records it: audio-worklet.js)
//        server -> client: one JSON message per analysed frame (the /analyze-frame answer plus
//                          `dropped`), or {error, status, dropped} for a frame it refused; one per
//                          audio chunk with `kind: "audio"` (the /analyze-audio answer, or its error)
//   3. POST end-session    {session_id}        Authorization: Bearer <API key>
//        -> {verdict, final_risk_score, peak_risk_score, verdict_reasons, report_url, ...}
//   4. GET  report_url (the reviewer's HTML report) and its evidence images, with the API key.
//
// In production the API key stays on the integrator's server: the server calls steps 1, 3 and 4 and
// hands only the session token (which opens this one session's stream, and expires) to the
// candidate's browser. This demo does everything in one page so it can be tried without a backend;
// the key is typed in, kept in this tab's sessionStorage at most, and never put in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "proctor.apiKey";
const MAX_WIDTH = 640; // frames are scaled down to this width before encoding (the models need no more)
const JPEG_QUALITY = 0.8;

let apiKey = "";
let session = null; // {session_id, session_token, ...} while a session is open
let camera = null; // the MediaStream (video, and the microphone when there is one)
let audioContext = null; // records the microphone at 16 kHz while the session streams audio
let socket = null;
let timer = null;
let encoding = false; // a frame is being encoded: skip the next tick rather than pile up
let closingOnPurpose = false;
const frameCanvas = document.createElement("canvas"); // off-screen: frames are drawn here and encoded
let openEvents = new Map(); // event id -> the event as last reported (open now)
let loggedOpen = new Map(); // the same, as the event log last showed them
let seenEventIds = new Set(); // every event id seen this session (a recurrence reopens the same id)
let firstFrameTime = null;
let counters = { sent: 0, analysed: 0, dropped: 0, skipped: 0, audio: 0 };

// ---- HTTP calls with the API key ---------------------------------------------------------------
class ApiError extends Error {}

function explain(status, detail, retryAfter) {
  if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; "); // 422
  const wait = retryAfter ? ` Try again in ${retryAfter} s.` : "";
  switch (status) {
    case 401: return `The API key was refused: ${detail}.`;
    case 403: return `Not allowed: ${detail}.`;
    case 429: return `Too many requests: ${detail}.${wait}`;
    case 503: return `The service is busy: ${detail}.${wait}`;
    default: return `Error ${status}: ${detail || "no detail"}.`;
  }
}

// Paths are relative to the page (/demo), so "start-session" is /start-session on this server.
async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(new URL(path, location.href), {
      ...options,
      // No key typed: no header (a service run without API keys has auth off).
      headers: { ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}), ...(options.headers || {}) },
    });
  } catch (err) {
    throw new ApiError(`Could not reach the service (${err.message}).`);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch (_) { /* not JSON */ }
    throw new ApiError(explain(response.status, detail, response.headers.get("Retry-After")));
  }
  return response;
}

async function postJson(path, body) {
  const response = await request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

// ---- page state --------------------------------------------------------------------------------
function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(message) {
  $("status").textContent = message;
}

function setRunning(running) {
  $("start").disabled = running;
  $("end").disabled = !running;
  for (const id of ["api-key", "candidate-id", "fps"]) $(id).disabled = running;
}

function resetLive() {
  openEvents = new Map();
  loggedOpen = new Map();
  seenEventIds = new Set();
  firstFrameTime = null;
  counters = { sent: 0, analysed: 0, dropped: 0, skipped: 0, audio: 0 };
  $("audio").textContent = "-";
  $("events").replaceChildren();
  $("dropped").hidden = true;
  $("result").hidden = true;
  $("report-link").hidden = true;
  $("report-status").textContent = "";
  renderOpenEvents();
}

// ---- start -------------------------------------------------------------------------------------
async function start(event) {
  event.preventDefault();
  showError("");
  apiKey = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  const fps = Math.min(5, Math.max(1, Number($("fps").value) || 1));
  setRunning(true);
  resetLive();
  try {
    // The camera first: no session is opened for a browser that cannot send frames.
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new ApiError("This browser gives no camera here: the page must be served over https or from localhost.");
    }
    setStatus("Asking for the camera...");
    try {
      // The microphone too, with the browser's echo cancellation on: it removes what this page plays,
      // not a call in another app (README, "Audio").
      camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } },
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true } })
        .catch(() => navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false }));
    } catch (err) {
      throw new ApiError(err.name === "NotAllowedError" ? "Camera permission was denied."
        : err.name === "NotFoundError" ? "No camera was found." : `The camera failed: ${err.name} ${err.message}`);
    }
    $("video").removeAttribute("poster");
    $("video").srcObject = camera;
    await $("video").play();

    setStatus("Starting the session...");
    session = await postJson("start-session", { candidate_id: $("candidate-id").value.trim() });
    openStream(fps);
  } catch (err) {
    stopCamera();
    setRunning(false);
    showError(err instanceof ApiError ? err.message : `Unexpected error: ${err}`);
    setStatus(session ? `Session ${session.session_id} is open but not streaming.` : "Idle.");
    if (session) $("end").disabled = false; // it can still be ended
  }
}

function openStream(fps) {
  // Browsers cannot set headers on a WebSocket, so the credential goes in the query string: the
  // session token (it opens only this session, and expires), never the API key.
  const url = new URL(`sessions/${encodeURIComponent(session.session_id)}/stream`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", session.session_token);
  closingOnPurpose = false;
  socket = new WebSocket(url);
  socket.onopen = () => {
    setStatus(`Session ${session.session_id}: streaming at ${fps} frame(s)/s.`);
    timer = setInterval(sendFrame, 1000 / fps);
    startAudio().catch((err) => { $("audio").textContent = `not sent: ${err.message || err}`; });
  };
  socket.onmessage = (message) => onResult(JSON.parse(message.data));
  socket.onclose = (close) => {
    clearInterval(timer);
    timer = null;
    if (!closingOnPurpose) {
      // 1008: refused credentials or an unknown/ended session; the reason says which.
      showError(`The stream closed (code ${close.code}${close.reason ? `: ${close.reason}` : ""}).`);
      setStatus(`Session ${session?.session_id ?? ""}: not streaming. End it to get the verdict.`);
    }
  };
}

// ---- frames out --------------------------------------------------------------------------------
function sendFrame() {
  const video = $("video");
  if (!socket || socket.readyState !== WebSocket.OPEN || video.readyState < 2) return;
  // The server keeps only the newest waiting frame, so sending faster than it analyses costs
  // bandwidth, not latency. Still, do not queue in the browser either.
  if (encoding || socket.bufferedAmount > 0) {
    counters.skipped += 1;
    return;
  }
  const width = Math.min(MAX_WIDTH, video.videoWidth);
  const height = Math.round(video.videoHeight * width / video.videoWidth);
  frameCanvas.width = width;
  frameCanvas.height = height;
  frameCanvas.getContext("2d").drawImage(video, 0, 0, width, height);
  // Capture time in seconds on a monotonic clock: the service anchors the first frame to its arrival
  // and keeps the spacing of the rest, so persistence ("looking away for 2 s") uses capture times.
  const captureTime = (performance.timeOrigin + performance.now()) / 1000;
  encoding = true;
  frameCanvas.toBlob((jpeg) => {
    encoding = false;
    if (!jpeg || socket?.readyState !== WebSocket.OPEN) return;
    const header = new ArrayBuffer(8);
    new DataView(header).setFloat64(0, captureTime, false); // false: big-endian
    socket.send(new Blob([header, jpeg])); // one binary message: 8 bytes of time, then the JPEG
    counters.sent += 1;
  }, "image/jpeg", JPEG_QUALITY);
}

// ---- audio out -----------------------------------------------------------------------------------
async function startAudio() {
  const track = camera?.getAudioTracks()[0];
  if (!session.audio?.enabled) {
    $("audio").textContent = "off on this service";
    return;
  }
  if (!track) {
    $("audio").textContent = "no microphone";
    return;
  }
  // A 16 kHz context: the browser resamples the microphone, so the chunks need no work here.
  audioContext = new AudioContext({ sampleRate: 16000 });
  await audioContext.audioWorklet.addModule(new URL("demo/audio-worklet.js", location.href));
  const source = audioContext.createMediaStreamSource(new MediaStream([track]));
  const capture = new AudioWorkletNode(audioContext, "pcm-capture", { numberOfOutputs: 0 });
  capture.port.onmessage = (message) => sendAudio(message.data);
  source.connect(capture);
  await audioContext.resume();
  $("audio").textContent = `sending (${session.mode} mode)`;
}

function sendAudio({ samples, time, rate }) {
  if (!socket || socket.readyState !== WebSocket.OPEN || rate !== 16000) return;
  // The chunk's capture time on the frames' clock: the context's clock mapped to the page's.
  const stamp = audioContext.getOutputTimestamp();
  const captureTime = (performance.timeOrigin + stamp.performanceTime + (time - stamp.contextTime) * 1000) / 1000;
  const header = new ArrayBuffer(8);
  new DataView(header).setFloat64(0, captureTime, false);
  socket.send(new Blob([header, wav(samples, rate)])); // 8 bytes of time, then the WAV
}

// Float samples (-1..1) as a WAV of 16-bit PCM, mono: the 44-byte header, then the samples.
function wav(samples, rate) {
  const out = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((c, i) => out.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); out.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
  out.setUint32(24, rate, true); out.setUint32(28, rate * 2, true); out.setUint16(32, 2, true);
  out.setUint16(34, 16, true); text(36, "data"); out.setUint32(40, samples.length * 2, true);
  samples.forEach((x, i) => out.setInt16(44 + i * 2, Math.max(-1, Math.min(1, x)) * 32767, true));
  return out.buffer;
}

function stopAudio() {
  audioContext?.close();
  audioContext = null;
}

// ---- results in --------------------------------------------------------------------------------
function onResult(result) {
  if (result.kind === "audio") {
    onAudioResult(result);
    return;
  }
  counters.dropped += result.dropped || 0;
  if (result.error) {
    // A refused frame (413/422 bad image, 429 over the rate, 503 busy): the next one may pass.
    // 409: the session ended (e.g. idle too long); the server closes the stream after it.
    showError(explain(result.status, result.error));
    renderCounters();
    return;
  }
  showError("");
  counters.analysed += 1;
  if (firstFrameTime === null) firstFrameTime = result.frame_time;
  renderLive(result);
  logEvents(result);
  renderCounters();
}

// An audio chunk's answer: what was heard, the mouth it was read against, and the events (audio and
// frame events alike: `events` is every open event).
function onAudioResult(result) {
  if (result.error) {
    $("audio").textContent = explain(result.status, result.error);
    return;
  }
  counters.audio += 1;
  $("audio").textContent = `${result.speech ? `speech ${fmt(result.speech_seconds, 1)} s` : "silence"}, `
    + `mouth ${result.mouth.replace("_", " ")} (${counters.audio} chunks)`;
  $("audio").classList.toggle("flag", result.speech && (result.mouth === "still" || result.mouth === "no_face"));
  if (firstFrameTime === null) return; // the log's times count from the first frame
  openEvents = new Map(result.events.map((ev) => [ev.id, ev]));
  renderOpenEvents();
  logEvents({ ...result, frame_time: result.chunk_time });
}

function fmt(value, digits = 0) {
  return typeof value === "number" ? value.toFixed(digits) : "-";
}

function renderLive(r) {
  const score = r.risk_score;
  $("score").textContent = score;
  $("score").classList.toggle("flag", r.cheating);
  const bar = $("score-bar");
  bar.style.width = `${score}%`;
  // Colours at the default thresholds (config/serve.yaml): suspicious_peak 30, cheating_threshold 70.
  bar.className = r.cheating ? "bad" : score >= 30 ? "warn" : "";
  $("attention").textContent = r.attention;
  $("attention-bar").style.width = `${r.attention}%`;

  $("gaze").textContent = r.gaze + (r.gaze_ratio ? ` (iris ${fmt(r.gaze_ratio.horizontal, 2)})` : "");
  const pose = r.head_pose;
  $("head-pose").textContent = pose
    ? `yaw ${fmt(pose.yaw)}°, pitch ${fmt(pose.pitch)}°, roll ${fmt(pose.roll)}°` : "-";
  $("faces").textContent = `${r.faces} (${r.presence})`;
  $("faces").classList.toggle("flag", r.faces > 1);

  // Objects: persons, phones, books, screens... with the detector's confidence.
  const objects = $("objects");
  objects.replaceChildren();
  for (const o of r.objects) {
    const item = document.createElement("span");
    item.textContent = `${o.label} ${fmt(o.confidence, 2)}`;
    if (o.label !== "person" || r.objects.filter((x) => x.label === "person").length > 1) item.className = "flag";
    if (objects.childElementCount) objects.append(", ");
    objects.append(item);
  }
  if (!r.objects.length) objects.textContent = "none";

  const e = r.expression;
  $("expression").textContent = e
    ? `${e.label}${e.talking ? ", talking" : ""} (eyes ${fmt(e.eye_openness, 2)}, mouth ${fmt(e.mouth_openness, 2)})` : "-";
  const q = r.frame_quality;
  $("quality").textContent = (q.usable ? "usable" : "not usable") + (q.issues.length ? `: ${q.issues.join(", ")}` : "")
    + (r.late ? " (late: not scored)" : "") + (r.duplicate ? " (duplicate: not scored)" : "");
  const c = r.calibration;
  $("calibration").textContent = c.accepted ? `baseline set from ${c.frames} frames` : c.reason;
  $("latency").textContent = `${fmt(r.latency_ms.total)} ms (models ${fmt(r.latency_ms.models_wall)} ms)`;

  openEvents = new Map(r.events.map((ev) => [ev.id, ev]));
  renderOpenEvents();
  drawBoxes(r.objects);
}

function renderCounters() {
  $("counters").textContent = `${counters.sent} sent, ${counters.analysed} analysed, `
    + `${counters.dropped} dropped by the service, ${counters.skipped} skipped here`;
  if (counters.dropped) {
    // The server keeps only the newest waiting frame: it says how many it replaced unanalysed.
    $("dropped").hidden = false;
    $("dropped").textContent = `Dropped to the newest frame: the service analyses frames more slowly than they `
      + `are sent, so instead of falling behind it skipped ${counters.dropped} waiting frame(s) so far, `
      + `analysing the newest each time.`;
  }
}

function renderOpenEvents() {
  const list = $("open-events");
  list.replaceChildren();
  for (const ev of openEvents.values()) {
    const item = document.createElement("li");
    item.className = `event ${ev.severity}`;
    item.textContent = `${ev.type} ${fmt(ev.duration, 1)} s`;
    list.append(item);
  }
  if (!openEvents.size) {
    const none = document.createElement("li");
    none.className = "muted";
    none.textContent = "none";
    list.append(none);
  }
}

// The event log: an event is an episode with an id. It opens once its condition has lasted (e.g.
// LOOKING_AWAY after 2 s), and closes when the condition has cleared.

function logEvents(r) {
  const t = r.frame_time - firstFrameTime;
  for (const ev of r.events) {
    if (!loggedOpen.has(ev.id)) {
      logLine(t, `${ev.type} ${seenEventIds.has(ev.id) ? "reopened" : "opened"} (${ev.severity})`, "opened");
      seenEventIds.add(ev.id);
    }
  }
  const now = new Map(r.events.map((ev) => [ev.id, ev]));
  for (const [id, ev] of loggedOpen) {
    if (!now.has(id)) logLine(t, `${ev.type} closed after about ${fmt(ev.duration, 1)} s`, "closed");
  }
  loggedOpen = now;
}

function logLine(t, text, kind) {
  const line = document.createElement("li");
  line.className = kind;
  line.textContent = `${fmt(t, 1)} s  ${text}`;
  $("events").append(line);
  $("events").scrollTop = $("events").scrollHeight;
}

// Boxes are in the pixels of the frame that was sent; the overlay has that frame's size and is
// stretched over the video like it.
function drawBoxes(objects) {
  const overlay = $("overlay");
  overlay.width = frameCanvas.width;
  overlay.height = frameCanvas.height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  ctx.lineWidth = 3;
  ctx.font = "16px system-ui, sans-serif";
  for (const o of objects) {
    const [x0, y0, x1, y1] = o.box;
    ctx.strokeStyle = ctx.fillStyle = o.label === "person" ? "#1a73e8" : "#d93025";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillText(`${o.label} ${fmt(o.confidence, 2)}`, x0 + 4, Math.max(16, y0 - 4));
  }
}

// ---- end ---------------------------------------------------------------------------------------
function stopCamera() {
  stopAudio();
  camera?.getTracks().forEach((track) => track.stop());
  camera = null;
  const video = $("video");
  video.srcObject = null;
  // Keep the last frame sent on screen (under its boxes) rather than a black box.
  if (frameCanvas.width) video.poster = frameCanvas.toDataURL("image/jpeg", JPEG_QUALITY);
}

async function end() {
  if (!session) return;
  $("end").disabled = true;
  clearInterval(timer);
  timer = null;
  closingOnPurpose = true;
  socket?.close(1000, "session ending");
  socket = null;
  stopCamera();
  setStatus("Ending the session...");
  try {
    const summary = await postJson("end-session", { session_id: session.session_id });
    showVerdict(summary);
    setStatus(`Session ${summary.session_id} ended.`);
    session = null;
    setRunning(false);
    await linkReport(summary.report_url);
  } catch (err) {
    showError(err instanceof ApiError ? err.message : `Unexpected error: ${err}`);
    setStatus(`Session ${session.session_id} is still open: try ending it again.`);
    $("end").disabled = false;
  }
}

function showVerdict(s) {
  $("result").hidden = false;
  $("verdict").textContent = s.verdict;
  $("verdict").className = s.verdict;
  $("summary").textContent = `Final risk score ${s.final_risk_score}, peak ${s.peak_risk_score}; `
    + `${s.total_violations} event(s) over ${fmt(s.duration_seconds, 1)} s and ${s.frames} frames `
    + `(${s.unusable_frames} not usable).`;
  const reasons = $("reasons");
  reasons.replaceChildren();
  for (const reason of s.verdict_reasons) {
    const item = document.createElement("li");
    item.textContent = reason;
    reasons.append(item);
  }
}

// The report (and its evidence images and clips) need the API key, which a plain link cannot send. So
// the page fetches the report with the key, inlines the evidence images (and the audio clips as blob:
// URLs), and links the result as a blob: URL (a local copy that lives as long as this page).
async function linkReport(reportUrl) {
  const status = $("report-status");
  status.textContent = "Fetching the report...";
  try {
    const page = await (await request(reportUrl)).text();
    const doc = new DOMParser().parseFromString(page, "text/html");
    for (const img of doc.querySelectorAll("img[src]")) {
      const src = img.getAttribute("src");
      const image = await (await request(src)).blob();
      img.src = await asDataUrl(image);
      const anchor = img.closest("a");
      if (anchor) anchor.href = URL.createObjectURL(image); // browsers refuse to navigate to data: URLs
    }
    for (const player of doc.querySelectorAll("audio[src]")) { // audio events' clips
      const clip = await (await request(player.getAttribute("src"))).blob();
      player.src = URL.createObjectURL(clip);
    }
    const html = `<!doctype html>\n${doc.documentElement.outerHTML}`;
    const link = $("report-link");
    link.href = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    link.hidden = false;
    status.textContent = `(a copy fetched with your key; the service keeps it at ${reportUrl})`;
  } catch (err) {
    status.textContent = `The report could not be fetched: ${err.message}`;
  }
}

function asDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// ---- wiring ------------------------------------------------------------------------------------
$("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
$("setup").addEventListener("submit", start);
$("end").addEventListener("click", end);
