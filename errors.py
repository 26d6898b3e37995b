"""Domain errors: what went wrong with a request, in the service's own terms (no HTTP numbers).

Vision, auth, sessions and the frame pipeline raise these; `api/errors.py` is the one table that
maps each to an HTTP status (and a WebSocket error message). Each carries the message the caller
reads, and `retry_after_s` where waiting helps. Pure code (no Ray).
"""
from __future__ import annotations

from enum import Enum


class ProctorError(Exception):
    """A request the service refuses, with a message for the caller."""

    retry_after_s: float | None = None

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    def __reduce__(self):  # crosses Ray processes with its message and fields intact
        return _rebuild, (type(self), dict(self.__dict__), self.args)


def _rebuild(cls, state, args):
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


# ---- input -----------------------------------------------------------------------------------
class FrameProblem(str, Enum):
    """Why a frame cannot be used."""

    MALFORMED = "malformed"  # not base64, empty, or a stream message without its header
    TOO_LARGE = "too_large"  # too many bytes or pixels
    NOT_AN_IMAGE = "not_an_image"  # no image header we know, or a format we do not take
    CORRUPT = "corrupt"  # the header is fine but the pixels do not decode


class FrameError(ProctorError, ValueError):
    """A frame the service cannot use, and why."""

    def __init__(self, message: str, problem: FrameProblem = FrameProblem.NOT_AN_IMAGE):
        super().__init__(message)
        self.problem = FrameProblem(problem)


class AudioProblem(str, Enum):
    """Why an audio chunk cannot be used."""

    MALFORMED = "malformed"  # not base64, empty, or a stream message without its header
    TOO_LARGE = "too_large"  # longer than the chunk limit
    UNSUPPORTED = "unsupported"  # not a WAV, or not 16 kHz mono 16-bit PCM
    CORRUPT = "corrupt"  # a WAV whose chunks do not add up (truncated, odd sample bytes)


class AudioError(ProctorError, ValueError):
    """An audio chunk the service cannot use, and why."""

    def __init__(self, message: str, problem: AudioProblem = AudioProblem.UNSUPPORTED):
        super().__init__(message)
        self.problem = AudioProblem(problem)


class InvalidRequest(ProctorError):
    """A well-formed request with a value the service does not take."""


# ---- who may call ----------------------------------------------------------------------------
class Unauthenticated(ProctorError):
    """No credentials, or wrong or expired ones."""


class Forbidden(ProctorError):
    """Valid credentials for something else (another session's token)."""


class AudioDisabled(Forbidden):
    """Audio sent to a deployment whose config turns audio off (audio.enabled: false)."""


# ---- sessions --------------------------------------------------------------------------------
class NotFound(ProctorError):
    """Nothing stored under that name."""


class SessionNotFound(NotFound):
    def __init__(self, session_id: str):
        super().__init__(f"unknown session {session_id}")


class SessionClosed(ProctorError):
    """The session has ended, or is being ended: it takes no more frames and cannot end again."""


class TooManySessions(ProctorError):
    retry_after_s = 30.0


class SessionUnavailable(ProctorError):
    """The session's state is being rebuilt (its actor restarts); retrying soon works."""

    retry_after_s = 1.0


# ---- load ------------------------------------------------------------------------------------
class RateLimited(ProctorError):
    """Over the per-session frame rate."""


class Saturated(ProctorError):
    """The models are full: refused at once rather than queued."""

    retry_after_s = 1.0


class ModelTimeout(ProctorError):
    """A model stage did not answer within the deadline."""

    retry_after_s = 2.0


class SessionStillOpen(ProctorError):
    """The session has not ended yet, and this (a review) needs it ended."""


class Conflict(ProctorError):
    """The request clashes with what is stored (a limit reached, a state that forbids it)."""
