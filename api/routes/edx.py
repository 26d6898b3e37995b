"""The Open edX REST proctoring provider API, as edx-proctoring's `BaseRestProctoringProvider` calls
it (its docs/backends.rst and backends/rest.py): a sub-application under /edx, with its own OpenAPI
(/edx/openapi.json), since its contract is edX's, not Proctor's.

The LMS first takes a token (`POST /edx/oauth2/access_token`, client credentials, as edx-rest-api-
client's `OAuthAPIClient` does) and sends it on every call as `Authorization: JWT <token>`. Each
route hands the work to `edx.provider.EdxProvider`."""
from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from api import errors
from api.errors import install_error_handlers
from api.services import Services, services_of

ID = r"^[A-Za-z0-9_.:-]{1,100}$"


def require_token(request: Request) -> None:
    services_of(request).edx_tokens.verify(request.headers.get("authorization"))


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["JWT"]
    expires_in: int
    scope: str


class ProviderConfig(BaseModel):
    name: str
    rules: dict[str, str]
    instructions: list[str]
    download_url: str | None = None


class Created(BaseModel):
    id: str


class Exam(BaseModel):
    id: str
    external_id: str
    course_id: str
    name: str | None
    rules: dict[str, Any]
    is_practice: bool | None


class AttemptCreate(BaseModel):
    """What the LMS sends (edx_proctoring.api._register_proctored_exam_attempt); the name and
    email are read past, not stored."""

    model_config = ConfigDict(extra="allow")
    lms_host: str = Field(max_length=512)
    user_id: str = Field(max_length=100)
    time_limit_mins: float | None = None
    is_sample_attempt: bool | None = None
    status: str | None = None
    review_policy: str | None = Field(None, max_length=10000)
    review_policy_exception: str | None = Field(None, max_length=10000)


class AttemptUpdate(BaseModel):
    status: Literal["started", "submitted", "error"]


class AttemptStatus(BaseModel):
    status: str


class Attempt(BaseModel):
    id: str
    status: Literal["created", "started", "submitted", "error"]
    instructions: list[str]
    download_url: str | None = None
    verdict: str | None = Field(None, description="Proctor's automatic verdict, once the attempt has ended")


router = APIRouter()
token = [Depends(require_token)]


@router.post("/oauth2/access_token", response_model=TokenAnswer, responses=errors.responses(401, 422),
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "required": ["grant_type", "client_id", "client_secret"], "properties": {
                     "grant_type": {"type": "string", "enum": ["client_credentials"]},
                     "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                     "token_type": {"type": "string", "enum": ["jwt"]}}}}}}})
async def access_token(request: Request) -> dict:
    """OAuth2 client credentials (form-encoded) -> a JWT for `Authorization: JWT <token>`."""
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(body).items()}
    return services_of(request).edx_tokens.issue(form)


@router.get("/api/v1/config/", response_model=ProviderConfig, dependencies=token, responses=errors.responses(401))
async def provider_config(request: Request) -> dict:
    return services_of(request).edx.config()


@router.post("/api/v1/exam/", response_model=Created, dependencies=token, responses=errors.responses(401, 422))
async def create_exam(request: Request, exam: dict[str, Any] = Body(...)) -> dict:
    return await services_of(request).edx.save_exam(exam)


@router.post("/api/v1/exam/{exam_id}/", response_model=Created, dependencies=token,
             responses=errors.responses(401, 404, 422))
async def update_exam(request: Request, exam_id: str = Path(pattern=ID), exam: dict[str, Any] = Body(...)) -> dict:
    """edx-proctoring updates an exam with POST to its URL (`on_exam_saved`)."""
    return await services_of(request).edx.save_exam(exam, exam_id)


@router.get("/api/v1/exam/{exam_id}/", response_model=Exam, dependencies=token, responses=errors.responses(401, 404, 422))
async def get_exam(request: Request, exam_id: str = Path(pattern=ID)) -> dict:
    return await services_of(request).edx.exam(exam_id)


@router.post("/api/v1/exam/{exam_id}/attempt/", response_model=Created, dependencies=token,
             responses=errors.responses(401, 404, 422))
async def create_attempt(body: AttemptCreate, request: Request, exam_id: str = Path(pattern=ID)) -> dict:
    """A registered session for the attempt; its id (200, as edX requires) is the session id."""
    return await services_of(request).edx.create_attempt(exam_id, body.model_dump())


@router.patch("/api/v1/exam/{exam_id}/attempt/{attempt_id}/", response_model=AttemptStatus, dependencies=token,
              responses=errors.responses(401, 404, 409, 422, 503))
async def update_attempt(body: AttemptUpdate, request: Request, exam_id: str = Path(pattern=ID),
                         attempt_id: str = Path(pattern=ID)) -> dict:
    """started: the session opens (frames accepted); submitted: it ends (verdict, report, result to
    the LMS); error: it ends with status error."""
    return await services_of(request).edx.update_attempt(exam_id, attempt_id, body.status)


@router.get("/api/v1/exam/{exam_id}/attempt/{attempt_id}/", response_model=Attempt, dependencies=token,
            responses=errors.responses(401, 404, 422))
async def get_attempt(request: Request, exam_id: str = Path(pattern=ID), attempt_id: str = Path(pattern=ID)) -> dict:
    return await services_of(request).edx.attempt(exam_id, attempt_id)


@router.delete("/api/v1/exam/{exam_id}/attempt/{attempt_id}/", response_model=AttemptStatus, dependencies=token,
               responses=errors.responses(401, 404, 422))
async def delete_attempt(request: Request, exam_id: str = Path(pattern=ID), attempt_id: str = Path(pattern=ID)) -> dict:
    """The session and everything stored about it."""
    return await services_of(request).edx.delete_attempt(exam_id, attempt_id)


@router.delete("/api/v1/user/{user_id}/", response_model=bool, dependencies=token, responses=errors.responses(401, 422))
async def retire_user(request: Request, user_id: str = Path(pattern=ID)) -> bool:
    """User retirement: every session of the user deleted; true when there was any."""
    return await services_of(request).edx.retire_user(user_id)


def create_edx_app(services: Services) -> FastAPI:
    app = FastAPI(title="Proctor: Open edX REST proctoring provider", version="0.2.0",
                  description=__doc__, generate_unique_id_function=lambda route: f"edx_{route.name}")
    app.state.services = services
    install_error_handlers(app)
    app.include_router(router)
    return app
