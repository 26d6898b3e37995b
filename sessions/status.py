"""A session's status and the transitions allowed between them. The store's conditional UPDATEs
enforce them (`store.base.SessionStoreBase.transition`): a transition from the wrong status changes
nothing and says so. Pure code (no Ray)."""
from __future__ import annotations

from enum import Enum


class SessionStatus(str, Enum):
    REGISTERED = "registered"  # created ahead (an edX attempt): no actor, no frames until it is opened
    OPEN = "open"  # takes frames
    ENDING = "ending"  # an end was claimed (by /end-session or the reaper): no new frames
    ENDED = "ended"  # ended by the integrator; verdict and report final
    ABANDONED = "abandoned"  # ended by the reaper after idle_timeout_s without frames
    ERROR = "error"  # ended because the exam platform reported an error (edX attempt status error)

    @property
    def live(self) -> bool:
        """Still holds state in a session actor (not yet summarised)."""
        return self in (SessionStatus.OPEN, SessionStatus.ENDING)


TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.REGISTERED: frozenset({SessionStatus.OPEN}),
    SessionStatus.OPEN: frozenset({SessionStatus.ENDING}),
    # back to OPEN when the end failed (nothing lost) or its claimer died (released after ending_timeout_s)
    SessionStatus.ENDING: frozenset({SessionStatus.OPEN, SessionStatus.ENDED, SessionStatus.ABANDONED,
                                     SessionStatus.ERROR}),
    SessionStatus.ENDED: frozenset(),
    SessionStatus.ABANDONED: frozenset(),
    SessionStatus.ERROR: frozenset(),
}
FINAL = (SessionStatus.ENDED, SessionStatus.ABANDONED, SessionStatus.ERROR)


def allowed(old: SessionStatus, new: SessionStatus) -> bool:
    return new in TRANSITIONS[old]
