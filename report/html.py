"""The reviewer's page: verdict (and the human review's outcome beside it), risk and attention over
time with events marked, the event table with evidence thumbnails and each review decision, the
review's history. Plain HTML with an inline SVG plot: no scripts, no fonts or assets to fetch; it
prints as the session's record (who decided what, and when)."""
from __future__ import annotations

import html
import time
from typing import Any

SEVERITY_COLORS = {"high": "#d93025", "medium": "#f29900", "low": "#1a73e8"}
VERDICT_COLORS = {"CLEAN": "#188038", "SUSPICIOUS": "#f29900", "CHEATING": "#d93025", None: "#5f6368"}


def _plot(report: dict[str, Any], width: int = 900, height: int = 260) -> str:
    timeline = report["timeline"]
    left, right, top, bottom = 40, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    end = max([p["offset_s"] for p in timeline] + [e["end_offset_s"] or e["start_offset_s"] for e in report["events"]] + [1.0])

    def x(offset: float) -> float:
        return left + plot_w * max(0.0, offset) / end

    def y(value: float) -> float:
        return top + plot_h * (1 - value / 100)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="risk and attention over time">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>']
    for event in report["events"]:
        start = x(event["start_offset_s"])
        stop = x(event["end_offset_s"] if event["end_offset_s"] is not None else end)
        color = SEVERITY_COLORS.get(event["severity"], "#999")
        parts.append(f'<rect x="{start:.1f}" y="{top}" width="{max(2.0, stop - start):.1f}" height="{plot_h}" '
                     f'fill="{color}" opacity="0.15"><title>{html.escape(event["type"])} '
                     f'{event["start_offset_s"]:.1f}-{(event["end_offset_s"] or end):.1f} s</title></rect>')
    for start_s, end_s in report.get("speech", []):  # speech heard: a band along the bottom
        parts.append(f'<rect x="{x(start_s):.1f}" y="{top + plot_h - 6}" width="{max(1.0, x(end_s) - x(start_s)):.1f}" '
                     f'height="6" fill="#188038" opacity="0.6"><title>speech {start_s:.1f}-{end_s:.1f} s</title></rect>')
    for value in (0, 25, 50, 75, 100):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">{value}</text>')
    for series, color in (("score", "#d93025"), ("attention", "#1a73e8")):
        points = " ".join(f"{x(p['offset_s']):.1f},{y(p[series]):.1f}" for p in timeline)
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">0 s</text>'
                 f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">{end:.0f} s</text>'
                 f'<text x="{left + plot_w / 2}" y="{height - 8}" font-size="11" text-anchor="middle">'
                 f'<tspan fill="#d93025">risk score</tspan> / <tspan fill="#1a73e8">attention</tspan>; '
                 f'shaded: events; <tspan fill="#188038">green band: speech heard</tspan></text>')
    parts.append("</svg>")
    return "".join(parts)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _decision(event: dict[str, Any]) -> str:
    esc = html.escape
    if event.get("source") == "reviewer":
        return f'added by a reviewer: {esc(event.get("note") or "")}'
    review = event.get("review")
    if not review:
        return "not reviewed"
    note = f': {esc(review["note"])}' if review.get("note") else ""
    return f'<b>{esc(review["decision"])}</b> by {esc(review["reviewer"])}, {_when(review["reviewed_at"])}{note}'


def _review_section(report: dict[str, Any]) -> str:
    esc = html.escape
    review = report.get("review") or {"status": "pending", "history": []}
    if review["status"] == "completed":
        head = (f'<p>Outcome <b>{esc(review["outcome"])}</b> by {esc(review["reviewer"] or "-")}, '
                f'{_when(review["reviewed_at"])}{": " + esc(review["comment"]) if review.get("comment") else ""}. '
                f'The automatic verdict stays {esc(str(report["verdict"]))}.</p>')
    else:
        head = "<p>Not reviewed yet: the verdict above is automatic, a flag for a person to check, not a finding.</p>"
    rows = "".join(
        f'<tr><td>{_when(h["at"])}</td><td>{esc(h["reviewer"])}</td><td>{esc(h["action"])}</td>'
        f'<td>{esc(str(h.get("event_id") or ""))}</td>'
        f'<td>{esc(" ".join(str(h[k]) for k in ("decision", "outcome") if h.get(k)))}</td>'
        f'<td>{esc(str(h.get("note") or h.get("comment") or ""))}</td></tr>' for h in review["history"])
    table = ("<table><tr><th>when</th><th>reviewer</th><th>action</th><th>event</th><th>decision</th><th>note</th></tr>"
             f"{rows}</table>") if rows else ""
    return f"<h2>Human review</h2>{head}<h3>Review history</h3>{table or '<p>No action yet.</p>'}"


def _waveform(audio: dict[str, Any], width: int = 160, height: int = 40) -> str:
    """An audio event's clip as a small waveform (peak per slice), its span, and a player."""
    esc = html.escape
    peaks = audio.get("waveform") or []
    mid = height / 2
    bars = "".join(f'<line x1="{i * width / len(peaks):.1f}" x2="{i * width / len(peaks):.1f}" '
                   f'y1="{mid - p * mid:.1f}" y2="{mid + p * mid:.1f}" stroke="#188038"/>' for i, p in enumerate(peaks))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="waveform of the audio evidence"><rect width="{width}" height="{height}" fill="#f1f8f4"/>'
           f'{bars}</svg>') if peaks else ""
    player = (f'<br><audio controls preload="none" src="{esc(audio["clip_url"])}"></audio>'
              if audio.get("clip_url") else "<br>(no clip kept)")
    return f'{svg}<br>audio {audio["start_offset_s"]:.1f}-{audio["end_offset_s"]:.1f} s{player}'


def render_report_html(report: dict[str, Any]) -> str:
    esc = html.escape
    verdict = report["verdict"] or "IN PROGRESS"
    color = VERDICT_COLORS.get(report["verdict"], "#5f6368")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report["started_at"]))
    rows = []
    for e in report["events"]:
        thumb = (f'<a href="{esc(e["evidence_url"])}"><img src="{esc(e["evidence_url"])}" width="160" '
                 f'alt="evidence for {esc(e["type"])}"></a>') if e["evidence_url"] else "-"
        if e.get("audio"):
            thumb = _waveform(e["audio"]) if not e["evidence_url"] else thumb + "<br>" + _waveform(e["audio"])
        end = "open" if e["end_offset_s"] is None else f'{e["end_offset_s"]:.1f} s'
        rows.append(
            f'<tr><td>{esc(e["id"])}</td><td><span style="color:{SEVERITY_COLORS.get(e["severity"], "#333")}">'
            f'{esc(e["type"])}</span></td><td>{esc(e["severity"])}</td><td>{e["start_offset_s"]:.1f} s</td>'
            f'<td>{end}</td><td>{e["duration"]:.1f} s</td><td>{e["frame_count"]}</td>'
            f'<td>{e["peak_confidence"]:.2f}</td><td>{thumb}</td><td>{_decision(e)}</td></tr>')
    reasons = "".join(f"<li>{esc(r)}</li>" for r in report["verdict_reasons"])
    review = report.get("review") or {}
    final = (f' &nbsp;automatic; after human review: <span class="verdict" style="background:'
             f'{VERDICT_COLORS.get(review["outcome"], "#5f6368")}">{esc(review["outcome"])}</span>'
             if review.get("status") == "completed" else " &nbsp;automatic, not yet reviewed" if report["verdict"] else "")
    calibration = report.get("calibration") or {}
    calib_text = ("not yet" if not calibration else
                  f'{esc(str(calibration.get("reason")))}; baseline yaw {calibration.get("yaw", 0):.1f} deg, '
                  f'pitch {calibration.get("pitch", 0):.1f} deg, gaze offset '
                  f'{calibration.get("gaze_horizontal", 0):+.3f} / {calibration.get("gaze_vertical", 0):+.3f}')
    identity = report.get("identity") or {}
    if not identity:
        identity_text = "not recorded"
    elif identity.get("status") == "off":
        identity_text = "off"
    else:
        reference = identity.get("reference")
        identity_text = (
            f'{esc(str(identity.get("status")))}'
            + (f' ({esc(str(identity["reason"]))})' if identity.get("reason") else "")
            + f'; {identity.get("checks", 0)} checks, {identity.get("mismatching_checks", 0)} mismatching'
            + (f', last distance {identity["distance"]:.2f} ({esc(str(identity.get("band")))})'
               if identity.get("distance") is not None else "")
            + (f'; reference photo: <b>{esc(str(reference["result"]))}</b>'
               + (f' (distance {reference["distance"]:.2f})' if reference.get("distance") is not None else "")
               if reference else ""))
    breakdown = "".join(
        f'<tr><td>{esc(kind)}</td><td>{row["count"]}</td><td>{row["total_seconds"]:.1f} s</td>'
        f'<td>{row["peak_confidence"]:.2f}</td></tr>' for kind, row in sorted(report["violations_by_type"].items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Proctor report {esc(report["session_id"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #202124; max-width: 980px; }}
.verdict {{ display: inline-block; padding: 6px 14px; border-radius: 6px; color: white; font-weight: 600;
           background: {color}; font-size: 20px; }}
table {{ border-collapse: collapse; margin: 12px 0; }} td, th {{ border-bottom: 1px solid #e0e0e0; padding: 6px 10px;
text-align: left; vertical-align: top; }} .meta td {{ border: none; padding: 2px 10px 2px 0; }}
@media print {{ a[href]:after {{ content: none; }} img {{ max-width: 120px; }} body {{ margin: 0; }} }}
</style></head><body>
<h1>Proctoring report</h1>
<p><span class="verdict">{esc(verdict)}</span>{final}</p>
<ul>{reasons}</ul>
<table class="meta">
<tr><td>Session</td><td>{esc(report["session_id"])}</td></tr>
<tr><td>Candidate</td><td>{esc(report["candidate_id"])}</td></tr>
<tr><td>Started</td><td>{started}</td></tr>
<tr><td>Status</td><td>{esc(report["status"])}</td></tr>
<tr><td>Duration</td><td>{report["duration_seconds"] if report["duration_seconds"] is not None else "-"} s</td></tr>
<tr><td>Risk score</td><td>final {report["final_risk_score"]}, peak {report["peak_risk_score"]}</td></tr>
<tr><td>Frames</td><td>{report["frames"]} ({report["unusable_frames"]} could not be judged)</td></tr>
<tr><td>Mode</td><td>{esc(report.get("mode", "interview"))}; {report.get("audio_seconds", 0):.0f} s of audio heard</td></tr>
<tr><td>Calibration</td><td>{calib_text}</td></tr>
<tr><td>Identity</td><td>{identity_text}</td></tr>
</table>
<h2>Risk and attention over time</h2>
{_plot(report)}
<h2>Events</h2>
<table><tr><th>id</th><th>type</th><th>severity</th><th>start</th><th>end</th><th>duration</th><th>frames</th>
<th>peak</th><th>evidence</th><th>review</th></tr>
{"".join(rows) or '<tr><td colspan="10">No events.</td></tr>'}
</table>
{_review_section(report)}
<h2>By type</h2>
<table><tr><th>type</th><th>events</th><th>total</th><th>peak confidence</th></tr>
{breakdown or '<tr><td colspan="4">None.</td></tr>'}
</table>
<p style="color:#5f6368;font-size:12px">Times are seconds from the session start, in the frames' own clock. Raw frames
are not stored; each event keeps one evidence frame, its strongest. Audio is not stored either: each audio event keeps
one clip, of the speech that opened it.</p>
</body></html>
"""
