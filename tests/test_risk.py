"""Risk rules with explicit timestamps: persistence, hysteresis, decay, attention, verdict."""
from __future__ import annotations

import pytest

from contracts import GazeRatio
from risk.clock import FrameClock
from risk.engine import RiskEngine
from risk.events import EventTracker
from risk.observation import Observation
from risk.score import advance_score, verdict
from settings import EventRule, RiskConfig


def obs(t, faces=1, gaze="center", yaw=0.0, pitch=0.0, objects=None, persons=None, second=0.9):
    return Observation(t=t, faces=faces, gaze=gaze, yaw=yaw, pitch=pitch,
                       second_face_confidence=second if faces >= 2 else 0.0,
                       persons=persons or ([0.9] if faces else []), objects=objects or {})


def feed(engine, frames):
    """Each frame's RiskUpdate."""
    return [engine.observe(o).update for o in frames]


def _tracker(**rule):
    rule = {"open_after_s": 2.0, "min_frames": 2, "close_after_s": 0.5, "rate": 1, **rule}
    return EventTracker("LOOKING_AWAY", EventRule(**rule), lambda kind: "e1")


def test_event_opens_only_after_persistence_and_closes_when_clear():
    tracker = _tracker()
    assert tracker.step(0.0, 1.0).opened is None
    assert tracker.step(1.0, 1.0).opened is None  # held 1 s < 2 s
    opened = tracker.step(2.0, 1.0).opened
    assert opened is not None and opened.start == 0.0 and opened.frame_count == 3
    assert tracker.step(2.2, None).closed is None  # clear for 0 s: still open (hysteresis)
    closed = tracker.step(2.8, None).closed
    assert closed is opened and closed.end == 2.2 and closed.duration() == pytest.approx(2.2)


def test_recurrence_within_cooldown_reopens_the_same_event():
    tracker = _tracker(cooldown_s=1.0)
    for t in (0.0, 1.0, 2.0):
        tracker.step(t, 0.5)
    first = tracker.current
    tracker.step(2.5, None)
    assert tracker.step(3.0, None).closed is first  # closed at 2.5
    step = tracker.step(3.3, 0.9)  # back within 1 s: the same episode resumes, no new event
    assert step.reopened is first and step.opened is None and first.is_open
    assert first.peak_confidence == 0.9 and step.new_peak
    tracker.step(3.5, None)
    tracker.step(4.1, None)  # closed at 3.5
    tracker.step(6.0, None)  # cooldown over
    assert tracker.step(6.1, 1.0).reopened is None  # a later recurrence starts a new pending episode


def test_one_stray_frame_never_opens_an_event():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    frames = [obs(t * 0.5) for t in range(10)]
    frames[4] = obs(2.0, faces=2)  # one frame with a second face
    frames[6] = obs(3.0, objects={"cell phone": 0.9})  # one frame with a phone
    results = feed(engine, frames)
    assert all(not r.opened for r in results)
    assert engine.events == []
    assert results[-1].risk_score == 0


def test_flicker_is_not_persistence():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    # gaze alternates away/center every 0.5 s: never 2 s continuous
    frames = [obs(t * 0.5, gaze="left" if t % 2 else "center") for t in range(20)]
    feed(engine, frames)
    assert [e.type for e in engine.events] == []


def test_multiple_faces_opens_after_one_second_and_score_rises():
    cfg = RiskConfig()
    engine = RiskEngine(cfg, started_at=0.0)
    feed(engine, [obs(0.0), obs(0.5)])
    r1 = engine.observe(obs(1.0, faces=2)).update
    assert r1.opened == ()
    r2 = engine.observe(obs(1.5, faces=2)).update
    assert r2.opened == ()  # held 0.5 s
    r3 = engine.observe(obs(2.0, faces=2)).update
    assert r3.opened == ("MULTIPLE_FACES",)
    assert r3.risk_score == cfg.rules["MULTIPLE_FACES"].open_points
    r4 = engine.observe(obs(3.0, faces=2)).update
    # one more second open: + rate (EXTRA_PERSON does not fire: persons list has one entry)
    assert r4.risk_score == pytest.approx(r3.risk_score + cfg.rules["MULTIPLE_FACES"].rate, abs=1)
    assert [e["type"] for e in r4.open_events] == ["MULTIPLE_FACES"]


def test_score_decays_two_points_per_second_when_clear():
    cfg = RiskConfig()
    engine = RiskEngine(cfg, started_at=0.0)
    engine.score = 50.0
    feed(engine, [obs(0.0), obs(1.0), obs(2.0), obs(5.0)])
    assert engine.score == pytest.approx(50 - 2 * 5)


def test_score_is_clamped_to_0_100():
    cfg = RiskConfig()
    assert advance_score(99.0, 10.0, [10.0], 100, cfg) == 100.0
    assert advance_score(1.0, 10.0, [], 100, cfg) == 0.0


def test_attention_penalty_when_candidate_is_absent_but_not_yet_an_event():
    cfg = RiskConfig()
    engine = RiskEngine(cfg, started_at=0.0)
    feed(engine, [obs(0.0)] + [obs(0.5 * i, gaze="left") for i in range(1, 4)])  # 1.5 s away: no event yet
    assert engine.events == []
    # attention fell under the floor, so the score went up although no event is open
    assert engine.attention.value(1.5) < cfg.attention_floor
    assert engine.score > 0


def test_face_missing_needs_three_seconds():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    results = feed(engine, [obs(t * 0.5, faces=0) for t in range(7)])  # 0 .. 3.0 s
    assert [r.opened for r in results].index(("FACE_MISSING",)) == 6


def test_head_turned_is_not_also_looking_away():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine, [obs(t * 0.5, gaze="left", yaw=-50.0) for t in range(20)])
    # a baseline 50 degrees off is not believed, so the raw pose is judged after calibration
    assert engine.calibrator.baseline.accepted is False
    assert [e.type for e in engine.events] == ["HEAD_TURNED"]


def test_phone_needs_two_frames():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    r = feed(engine, [obs(0.0, objects={"cell phone": 0.5}), obs(0.5, objects={"cell phone": 0.7})])
    assert r[0].opened == () and r[1].opened == ("PHONE_DETECTED",)
    assert engine.events[0].peak_confidence == 0.7


def test_late_frames_never_move_time_backwards():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    engine.score = 20.0
    feed(engine, [obs(0.0), obs(2.0), obs(1.0), obs(2.0)])
    assert engine.late_frames == 1
    assert engine.score == pytest.approx(16.0)  # decayed over 2 s, not 3 or 4


def test_verdict_uses_peak_not_final_score():
    cfg = RiskConfig()
    engine = RiskEngine(cfg, started_at=0.0)
    # 10 s with a phone, then 60 s clean: the score decays to 0, the verdict must not be CLEAN
    frames = [obs(t, objects={"cell phone": 0.8}) for t in range(0, 10)]
    frames += [obs(t) for t in range(10, 70)]
    feed(engine, frames)
    summary = engine.finish(70.0)
    assert summary["final_risk_score"] == 0
    assert summary["peak_risk_score"] >= cfg.cheating_peak
    assert summary["verdict"] == "CHEATING"
    phone = summary["violations_by_type"]["PHONE_DETECTED"]
    assert phone["count"] == 1 and phone["total_seconds"] == pytest.approx(9.0, abs=1.1)


def test_clean_session_is_clean():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine, [obs(t * 0.5) for t in range(40)])
    summary = engine.finish(20.0)
    assert summary["verdict"] == "CLEAN" and summary["total_violations"] == 0
    assert summary["duration_seconds"] == 20.0


def test_verdict_thresholds():
    cfg = RiskConfig()
    assert verdict(cfg.suspicious_peak - 1, {}, cfg)[0] == "CLEAN"
    assert verdict(cfg.suspicious_peak, {}, cfg)[0] == "SUSPICIOUS"
    assert verdict(cfg.cheating_peak, {}, cfg)[0] == "CHEATING"


def test_verdict_counts_total_violation_time_not_only_the_score():
    cfg = RiskConfig()
    phone = cfg.rules["PHONE_DETECTED"]
    decision, reasons = verdict(10, {"PHONE_DETECTED": phone.cheating_after_s}, cfg)
    assert decision == "CHEATING" and "PHONE_DETECTED" in reasons[0]
    assert verdict(10, {"LOOKING_AWAY": cfg.rules["LOOKING_AWAY"].suspicious_after_s}, cfg)[0] == "SUSPICIOUS"
    assert verdict(10, {"LOOKING_AWAY": 1.0}, cfg)[0] == "CLEAN"


def test_cheating_flag_follows_threshold():
    cfg = RiskConfig(cheating_threshold=20)
    engine = RiskEngine(cfg, started_at=0.0)
    results = feed(engine, [obs(t * 0.5, faces=2) for t in range(6)])
    assert results[-1].risk_score >= 20 and results[-1].cheating is True
    assert results[0].cheating is False


def test_frame_clock_keeps_client_spacing():
    clock = FrameClock()
    assert clock.frame_time(None, 100.0) == 100.0
    assert clock.frame_time(0.0, 100.5) == 100.5  # first timestamp anchors to arrival
    assert clock.frame_time(2.0, 100.6) == 102.5  # later ones keep the client's spacing


def test_partial_rules_override_only_named_types():
    cfg = RiskConfig(rules={"PHONE_DETECTED": {"open_after_s": 1.0, "rate": 1}})
    assert cfg.rules["PHONE_DETECTED"].open_after_s == 1.0
    assert cfg.rules["MULTIPLE_FACES"].open_after_s == 1.0 and cfg.rules["FACE_MISSING"].open_after_s == 3.0
    with pytest.raises(ValueError):
        RiskConfig(rules={"NOT_A_TYPE": {"open_after_s": 1.0, "rate": 1}})


def test_unusable_frames_hold_events_and_never_count_as_absence():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    # 10 s of covered camera: no FACE_MISSING, attention untouched
    frames = [Observation(t=t * 0.5, faces=0, usable=False) for t in range(20)]
    feed(engine, frames)
    assert [e.type for e in engine.events] == ["LOW_QUALITY"] and engine.unusable_frames == 20
    assert engine.score == 0  # recorded for the reviewer, never scored
    # a phone event stays open across an unusable frame instead of closing
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine, [obs(0.0, objects={"cell phone": 0.8}), obs(0.5, objects={"cell phone": 0.8})])
    engine.observe(Observation(t=1.0, faces=0, usable=False))
    engine.observe(Observation(t=1.5, faces=0, usable=False))
    assert [e.type for e in engine.open_events()] == ["PHONE_DETECTED"]


def test_talking_is_movement_not_one_open_mouth():
    from risk.filters import TalkingDetector

    cfg = RiskConfig()
    talk = TalkingDetector(cfg.talking_window_s, cfg.talking_mouth_range, cfg.talking_min_frames)
    # a mouth held open (yawn, surprise) is not talking
    assert not any(talk.add(t * 0.25, 0.5) for t in range(8))
    talk = TalkingDetector(cfg.talking_window_s, cfg.talking_mouth_range, cfg.talking_min_frames)
    results = [talk.add(t * 0.25, 0.05 if t % 2 else 0.35) for t in range(8)]
    assert results[0] is False and results[-1] is True
    # quiet again for longer than the window: no longer talking
    assert talk.add(2.0 + cfg.talking_window_s + 0.1, 0.02) is False


def _ratio_obs(t, yaw, horizontal, digest=None):
    gaze = "left" if horizontal < 0.44 else "right" if horizontal > 0.56 else "center"
    return Observation(t=t, faces=1, gaze=gaze, yaw=yaw, pitch=2.0, persons=[0.9],
                       gaze_ratio=GazeRatio(horizontal, 0.45), digest=digest)


def test_calibration_absorbs_an_off_centre_camera():
    """The camera sits off to one side: head at yaw 32 and irises at 0.41 all session while the
    candidate looks at the screen. Without a baseline that is HEAD_TURNED and LOOKING_AWAY for the
    whole session; with calibration, nothing opens until the candidate really turns."""
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    results = feed(engine, [_ratio_obs(t * 0.5, 32.0, 0.41) for t in range(120)])  # 60 s
    assert engine.calibrator.baseline.accepted and engine.calibrator.baseline.yaw == 32.0
    assert engine.events == [] and results[-1].risk_score == 0 and results[-1].attention == 100
    # a real turn from there: 40 degrees further for 3 s
    feed(engine, [_ratio_obs(60 + t * 0.5, 72.0, 0.41) for t in range(7)])
    assert [e.type for e in engine.events] == ["HEAD_TURNED"]
    # and a real glance: eyes a further 0.1 to the left of the baseline, head at the baseline
    engine2 = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine2, [_ratio_obs(t * 0.5, 32.0, 0.41) for t in range(20)])
    feed(engine2, [_ratio_obs(10 + t * 0.5, 32.0, 0.31) for t in range(7)])
    assert [e.type for e in engine2.events] == ["LOOKING_AWAY"]


def test_without_calibration_the_shifted_camera_is_flagged():
    cfg = RiskConfig(calibration={"window_s": 0})
    engine = RiskEngine(cfg, started_at=0.0)
    feed(engine, [_ratio_obs(t * 0.5, 32.0, 0.41) for t in range(20)])
    assert "HEAD_TURNED" in [e.type for e in engine.events]


def test_duplicate_delivery_is_ignored_and_late_frames_do_not_rewrite_the_past():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    engine.observe(Observation(t=0.0, faces=2, persons=[0.9], digest="a"))
    engine.observe(Observation(t=0.5, faces=2, persons=[0.9], digest="b"))
    dup = engine.observe(Observation(t=0.5, faces=2, persons=[0.9], digest="b")).update
    assert dup.duplicate and engine.duplicate_frames == 1 and engine.frames == 2
    late = engine.observe(Observation(t=0.2, faces=0, digest="c")).update
    assert late.late and engine.late_frames == 1 and engine.last_t == 0.5


def test_same_picture_again_is_frozen_and_unusable():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    engine.observe(Observation(t=0.0, faces=0, digest="x"))
    result = engine.observe(Observation(t=1.0, faces=0, digest="x")).update
    assert "frozen" in result.quality_issues and not result.usable and engine.unusable_frames == 1


def test_replay_rebuilds_identical_state():
    import copy

    frames = [obs(t * 0.5, faces=2 if 4 <= t < 12 else 1, objects={"cell phone": 0.6} if 15 <= t < 20 else None)
              for t in range(30)]
    inputs = [copy.deepcopy(o.to_dict()) for o in frames]
    a = RiskEngine(RiskConfig(), started_at=0.0)
    feed(a, frames)
    b = RiskEngine(RiskConfig(), started_at=0.0)
    feed(b, [Observation.from_dict(d) for d in inputs])
    assert a.state() == b.state() and a.finish(20.0) == b.finish(20.0)
    assert [e["id"] for e in a.state()["events"]][:1] == ["0001-multiple-faces"]


def test_talking_and_eyes_closed_events():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    frames = [Observation(t=t * 0.25, faces=1, gaze="center", yaw=0, pitch=0, persons=[0.9],
                          mouth_openness=0.05 if t % 2 else 0.4) for t in range(16)]
    feed(engine, frames)
    assert "TALKING" in [e.type for e in engine.events]
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine, [Observation(t=t * 0.5, faces=1, gaze="unknown", persons=[0.9], eyes_closed=True) for t in range(10)])
    assert [e.type for e in engine.events] == ["EYES_CLOSED"]


def test_open_events_close_at_the_last_frame_not_at_the_end_call():
    engine = RiskEngine(RiskConfig(), started_at=0.0)
    feed(engine, [obs(t * 0.5, faces=2) for t in range(7)])  # two faces 0-3 s
    summary = engine.finish(600.0)  # ended (or abandoned) ten minutes later
    assert summary["violations_by_type"]["MULTIPLE_FACES"]["total_seconds"] == 3.0
    assert summary["duration_seconds"] == 600.0
