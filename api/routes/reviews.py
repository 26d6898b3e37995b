"""Human review (the `reviewer` scope; integrator keys pass too): the queue of ended sessions not yet
reviewed, a decision on each automatic event, events the models missed, and the session's outcome.
Each hands the work to `reviews.service.ReviewService`."""
from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api import errors
from api.auth import require_reviewer
from api.schemas import (AddEventRequest, EventReviewRequest, ReportEvent, ReviewerName, ReviewQueue,
                         SessionReviewRequest, SessionReviewResponse)
from api.services import services_of
from auth.tokens import Caller
from report.build import report_path

router = APIRouter(tags=["reviews"])


def _reviewer(body: ReviewerName, caller: Caller) -> str:
    return body.reviewer or caller.key_id


@router.get("/reviews", response_model=ReviewQueue, responses=errors.responses(401, 422))
async def review_queue(request: Request, status: Literal["pending", "completed"] = "pending",
                       limit: int = Query(50, ge=1, le=500),
                       cursor: str | None = Query(None, max_length=512, description="from the previous page"),
                       caller: Caller = Depends(require_reviewer)) -> ReviewQueue:
    """The review queue: ended sessions not yet reviewed (`pending`) or reviewed (`completed`),
    highest peak risk score first."""
    return ReviewQueue(**await services_of(request).reviews.queue(status == "completed", limit, cursor))


@router.post("/sessions/{session_id}/events/{event_id}/review", response_model=ReportEvent,
             responses=errors.responses(400, 401, 404, 409, 422))
async def review_event(session_id: UUID, event_id: str, body: EventReviewRequest, request: Request,
                       caller: Caller = Depends(require_reviewer)) -> dict:
    """Confirm or dismiss one automatic event, with a note; a later decision on it replaces this one
    (the history keeps both). 409 while the session is open."""
    sid = str(session_id)
    return await services_of(request).reviews.review_event(sid, event_id, body.decision, body.note,
                                                           _reviewer(body, caller), report_path(request, sid))


@router.post("/sessions/{session_id}/events", response_model=ReportEvent, status_code=201,
             responses=errors.responses(400, 401, 404, 409, 422))
async def add_event(session_id: UUID, body: AddEventRequest, request: Request,
                    caller: Caller = Depends(require_reviewer)) -> dict:
    """An event the models missed, as the reviewer saw it (source `reviewer`)."""
    sid = str(session_id)
    return await services_of(request).reviews.add_event(sid, body.type, body.start_offset_s, body.end_offset_s,
                                                        body.note, _reviewer(body, caller), report_path(request, sid))


@router.post("/sessions/{session_id}/review", response_model=SessionReviewResponse,
             responses=errors.responses(400, 401, 404, 409, 422))
async def review_session(session_id: UUID, body: SessionReviewRequest, request: Request,
                         caller: Caller = Depends(require_reviewer)) -> dict:
    """The session's outcome (CLEAN / SUSPICIOUS / CHEATING) with a comment: the review is completed
    and review.completed goes out. Again: a re-review (the history keeps both). 409 while open."""
    sid = str(session_id)
    return await services_of(request).reviews.complete(sid, body.outcome, body.comment, _reviewer(body, caller),
                                                       report_path(request, sid))
