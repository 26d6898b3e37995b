"""Webhook endpoints per API key (integrator scope): register (the secret is shown once), list,
delete, rotate the secret; the deliveries to them, failed ones retriable. Each hands the work to
`outbox.webhooks.WebhookRegistry`."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from api import errors
from api.auth import require_integrator
from api.schemas import (Delivery, DeliveryList, DeliveryState, WebhookCreated, WebhookCreateRequest, WebhookDeleted,
                         WebhookList, WebhookRotated)
from api.services import services_of
from auth.tokens import Caller

router = APIRouter(tags=["webhooks"])
ID = r"^[A-Za-z0-9_]{1,64}$"


@router.post("/webhooks", response_model=WebhookCreated, status_code=201,
             responses=errors.responses(400, 401, 403, 409, 422))
async def create_webhook(body: WebhookCreateRequest, request: Request,
                         caller: Caller = Depends(require_integrator)) -> dict:
    """Register an endpoint for some or all event types; the answer holds its `whsec_` secret, once.
    The URL must be https:// to a public address (422 naming the problem otherwise)."""
    return await services_of(request).webhooks.register(caller.key_id, body.url, body.events)


@router.get("/webhooks", response_model=WebhookList, responses=errors.responses(401, 403))
async def list_webhooks(request: Request, caller: Caller = Depends(require_integrator)) -> WebhookList:
    """This API key's endpoints (never their secrets)."""
    return WebhookList(endpoints=await services_of(request).webhooks.list(caller.key_id))


@router.get("/webhooks/deliveries", response_model=DeliveryList, responses=errors.responses(401, 403, 422))
async def list_deliveries(request: Request, state: DeliveryState | None = None, limit: int = Query(50, ge=1, le=500),
                          cursor: str | None = Query(None, max_length=64, pattern=ID),
                          caller: Caller = Depends(require_integrator)) -> dict:
    """Deliveries to this key's endpoints (and the edX LMS): `state=failed` lists what needs a retry."""
    return await services_of(request).webhooks.deliveries(caller.key_id, state, limit, cursor)


@router.post("/webhooks/deliveries/{delivery_id}/retry", response_model=Delivery,
             responses=errors.responses(401, 403, 404, 409, 422))
async def retry_delivery(delivery_id: str, request: Request, caller: Caller = Depends(require_integrator)) -> dict:
    """A failed (or disabled) delivery sent again, its retry schedule started over, same webhook-id."""
    return await services_of(request).webhooks.retry(caller.key_id, delivery_id)


@router.delete("/webhooks/{endpoint_id}", response_model=WebhookDeleted, responses=errors.responses(401, 403, 404, 422))
async def delete_webhook(endpoint_id: str, request: Request, caller: Caller = Depends(require_integrator)) -> WebhookDeleted:
    """No more deliveries to it; its pending ones are disabled."""
    await services_of(request).webhooks.delete(caller.key_id, endpoint_id)
    return WebhookDeleted(id=endpoint_id, deleted=True)


@router.post("/webhooks/{endpoint_id}/rotate", response_model=WebhookRotated,
             responses=errors.responses(401, 403, 404, 422))
async def rotate_webhook(endpoint_id: str, request: Request, caller: Caller = Depends(require_integrator)) -> dict:
    """A new secret (shown once); the old one also signs for `webhooks.rotation_overlap_s`, so the
    receiver can switch without missing a delivery."""
    return await services_of(request).webhooks.rotate(caller.key_id, endpoint_id)
