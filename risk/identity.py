"""Identity continuity: is it still the candidate who started the session? Pure Python, explicit time.

The tracker lives in the session's risk engine. It never sees pixels: it asks for a face descriptor
on a frame (`request`: the engine's answer names the frame, the ingress has the session's face read
there, off the frame's path), and the descriptors come back with a later frame (`add`), so they are
stored with that frame's observation and a rebuilt session replays them in order: the same
enrolment, the same distances, the same events.

- Enrolment: from the first usable one-face frame, for `enrol_window_s`, descriptors of faces that
  pass the quality gates, at most `enrol_max_descriptors`. Fewer than `enrol_min_descriptors`, or
  faces too far apart to be one person: `unenrolled`, with the reason, and never flagged for it.
- Checks: every `check_every_s`, and right after FACE_MISSING or MULTIPLE_FACES closes (a swap can
  only happen while the face is gone or hidden). While the face has stayed in view since the last
  `match` (one face on every usable frame, no frame without it, doubled or unreadable, no jump of
  its box), the periodic check slows to `steady_check_every_s`: a descriptor costs ~100 ms of CPU
  and a face that never left cannot have been swapped. A jump asks for a check at once (at most
  one per `check_every_s`); any other break brings back `check_every_s`. Distance to the nearest enrolment descriptor:
  `match` / `uncertain` / `mismatch` by the configured bands; a face that fails the gates is "can't
  tell" and counts for nothing.
- IDENTITY_MISMATCH: held after `mismatch_checks` mismatching checks in a row; a match ends it.
- A reference photo (an ID or registration photo given at start) is compared once with the enrolled
  identity: advisory, in the report; it does not score.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from settings import IdentityConfig

ENROL, VERIFY = "enrol", "verify"


def descriptor_distance(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


@dataclass
class IdentityCheck:
    t: float
    distance: float
    band: str  # match | uncertain | mismatch


@dataclass
class IdentityTracker:
    cfg: IdentityConfig
    reference: tuple[float, ...] | None = None
    status: str = "waiting"  # waiting (no usable face yet) | enrolling | enrolled | unenrolled | off
    reason: str | None = None
    window_start: float | None = None
    enrolment: list[tuple[float, ...]] = field(default_factory=list)
    enrolled_at: float | None = None
    last_check: IdentityCheck | None = None
    mismatches_in_row: int = 0
    checks: int = 0
    mismatching_checks: int = 0
    unreadable: int = 0  # descriptors asked for whose face failed the gates
    asked_at: float | None = None  # a descriptor asked for and not delivered yet
    next_check_at: float | None = None
    reference_check: IdentityCheck | None = None
    steady: bool = False  # the face has stayed in view since the last match (the slow cadence applies)
    unbroken_since: float | None = None  # the first frame of the face's current unbroken stay in view
    last_verify_at: float | None = None  # the frame the last check was asked on
    last_box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if not self.cfg.enabled:
            self.status = "off"

    def band(self, distance: float) -> str:
        if distance <= self.cfg.match_max_distance:
            return "match"
        return "mismatch" if distance > self.cfg.mismatch_min_distance else "uncertain"

    # ---- results in ----------------------------------------------------------------------
    def add(self, result: dict[str, Any]) -> None:
        """A descriptor (or the reason there is none) for the frame at result["t"], kind enrol or verify."""
        if self.status == "off":
            return
        self.asked_at = None
        descriptor = result.get("descriptor")
        if descriptor is None:
            self.unreadable += 1
            return
        descriptor = tuple(descriptor)
        if result["kind"] == ENROL and self.status == "enrolling":
            self.enrolment.append(descriptor)
            if len(self.enrolment) >= self.cfg.enrol_max_descriptors:
                self._conclude_enrolment(result["t"])
        elif result["kind"] == VERIFY and self.status == "enrolled":
            distance = round(min(descriptor_distance(descriptor, e) for e in self.enrolment), 4)
            check = IdentityCheck(result["t"], distance, self.band(distance))
            self.last_check, self.checks = check, self.checks + 1
            if check.band == "mismatch":
                self.mismatches_in_row += 1
                self.mismatching_checks += 1
            elif check.band == "match":
                self.mismatches_in_row = 0
            # A match on a face that has stayed in view since (no break after the checked frame):
            # the slow cadence, from the checked frame.
            self.steady = (check.band == "match" and self.unbroken_since is not None
                           and self.unbroken_since <= check.t)
            if self.steady:
                self.next_check_at = check.t + self.cfg.steady_check_every_s

    def _conclude_enrolment(self, t: float) -> None:
        spread = max((descriptor_distance(a, b) for a, b in itertools.combinations(self.enrolment, 2)), default=0.0)
        if len(self.enrolment) < self.cfg.enrol_min_descriptors:
            self.status = "unenrolled"
            self.reason = (f"{len(self.enrolment)} usable face(s) in the first {self.cfg.enrol_window_s:g} s, "
                           f"{self.cfg.enrol_min_descriptors} needed (face too small, turned, dark or blurred)")
        elif spread > self.cfg.enrol_max_spread:
            self.status = "unenrolled"
            self.reason = f"the enrolment faces differ too much to be one person ({spread:.2f})"
        else:
            self.status, self.enrolled_at = "enrolled", t
            self.next_check_at = t + self.cfg.check_every_s
            if self.reference is not None:
                distance = round(min(descriptor_distance(self.reference, e) for e in self.enrolment), 4)
                self.reference_check = IdentityCheck(t, distance, self.band(distance))

    # ---- what the engine asks ------------------------------------------------------------
    def mismatch_confidence(self) -> float | None:
        """IDENTITY_MISMATCH's condition on a usable frame: the last check's distance while the
        mismatches are sustained, else None."""
        if self.status == "enrolled" and self.mismatches_in_row >= self.cfg.mismatch_checks and self.last_check:
            return min(1.0, self.last_check.distance)
        return None

    def _continuity(self, t: float, faces: int, usable: bool, box: tuple[float, float, float, float] | None) -> None:
        """Follow the face between frames: a break ends the steady cadence; a jump makes a check due now."""
        previous, self.last_box = self.last_box, (box if usable and faces == 1 else None)
        if not (usable and faces == 1 and box is not None):
            self._break(t, jumped=False)
            self.unbroken_since = None
            return
        if previous is not None:
            jump = self.cfg.max_face_jump
            (x0, y0, w0, h0), (x1, y1, w1, h1) = previous, box
            moved = ((x1 + w1 / 2 - x0 - w0 / 2) ** 2 + (y1 + h1 / 2 - y0 - h0 / 2) ** 2) ** 0.5
            if moved > jump * max(w0, 1.0) or abs(w1 - w0) > jump * max(w0, 1.0):
                self._break(t, jumped=True)
                self.unbroken_since = t  # a new stay starts with this face
                return
        if self.unbroken_since is None:
            self.unbroken_since = t

    def _break(self, t: float, jumped: bool) -> None:
        if self.steady and self.next_check_at is not None:
            self.next_check_at = min(self.next_check_at, t + self.cfg.check_every_s)  # the fast cadence again
        self.steady = False
        if jumped and self.status == "enrolled":
            # Someone else may be in the chair: check now, but never more often than check_every_s (a
            # face that jumps on every frame must not make every frame a ~100 ms descriptor).
            last = self.last_verify_at if self.last_verify_at is not None else float("-inf")
            self.next_check_at = max(t, last + self.cfg.check_every_s)

    def request(self, t: float, faces: int, yaw: float | None, pitch: float | None, usable: bool,
                closed: Sequence[str], face_box: Sequence[float] | None = None) -> str | None:
        """After scoring the frame at t: ENROL or VERIFY if a descriptor of this frame's face is
        wanted (the engine's answer carries it to the ingress), else None."""
        if self.status in ("off", "unenrolled"):
            return None
        self._continuity(t, faces, usable, tuple(face_box) if face_box is not None else None)
        if self.status == "enrolling" and t - self.window_start > self.cfg.enrol_window_s:
            self._conclude_enrolment(t)
        if self.asked_at is not None and t - self.asked_at < self.cfg.request_timeout_s:
            return None  # one in flight per session
        frontal = (usable and faces == 1 and yaw is not None and pitch is not None
                   and abs(yaw) <= self.cfg.max_yaw_deg and abs(pitch) <= self.cfg.max_pitch_deg)
        if self.status == "waiting":
            if not (usable and faces == 1):
                return None
            self.status, self.window_start = "enrolling", t
        if not frontal:
            return None
        if self.status == "enrolling":
            self.asked_at = t
            return ENROL
        returned = any(kind in ("FACE_MISSING", "MULTIPLE_FACES") for kind in closed)
        if self.status == "enrolled" and (returned or t >= self.next_check_at):
            self.asked_at = self.last_verify_at = t
            self.next_check_at = t + self.cfg.check_every_s
            return VERIFY
        return None

    # ---- what the answers say ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """`identity` in every frame's answer and the session's state."""
        check = self.last_check
        return {"status": self.status, "reason": self.reason,
                "distance": check.distance if check else None, "band": check.band if check else None,
                "checked_at": check.t if check else None}

    def summary(self) -> dict[str, Any]:
        """For the report: enrolment, checks, and the reference photo's result."""
        ref = self.reference_check
        spread = [descriptor_distance(a, b) for a, b in itertools.combinations(self.enrolment, 2)]
        return {
            **self.to_dict(),
            "enrolled_at": self.enrolled_at,
            "enrolment_descriptors": len(self.enrolment),
            "enrolment_spread": round(max(spread), 4) if spread else None,
            "enrolment_median_distance": round(statistics.median(spread), 4) if spread else None,
            "checks": self.checks,
            "mismatching_checks": self.mismatching_checks,
            "unreadable_faces": self.unreadable,
            "reference": None if self.reference is None else {
                "result": {"match": "match", "uncertain": "uncertain", "mismatch": "no match"}[ref.band] if ref
                else "not compared (no enrolment)",
                "distance": ref.distance if ref else None},
        }
