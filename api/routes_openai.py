"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``, which
also answers Anthropic's and Codex's clients in their own shapes (``api.model_list``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from api import model_list
from api.auth import bearer_token
from api.deps import VirtualKeyDep
from api.errors import GatewayError, openai_body
from api.gateway import handle_call
from api.openapi import json_body
from api.wire import ChatCompletionRequest

router = APIRouter(tags=["openai"])


def stream_error(error: GatewayError) -> bytes:
    """A failure after the stream began, as the OpenAI SDK reads one: an ``error`` event."""
    return f"data: {json.dumps(openai_body(error))}\n\n".encode()


@router.post("/v1/chat/completions", openapi_extra=json_body(ChatCompletionRequest, streams=True))
async def chat_completions(request: Request, key: VirtualKeyDep) -> Response:
    """A chat completion through the key's run, in OpenAI's format (streaming or not)."""
    return await handle_call(request, key, "openai", ChatCompletionRequest, stream_error)


@router.get("/v1/models")
async def list_models(
    request: Request,
    key: VirtualKeyDep,
    client_version: str | None = None,
    limit: int = model_list.ANTHROPIC_PAGE,
    after_id: str | None = None,
    before_id: str | None = None,
) -> dict[str, Any]:
    """The models this key may use: the key's own list, else every model a route or provider
    serves and prices. Codex (``client_version``) gets its model catalog; an Anthropic client
    (``anthropic-version``, or a key sent as ``x-api-key``) Anthropic's page; others OpenAI's
    list, which says where each price comes from."""
    router = request.app.state.router
    models = model_list.usable(key, router)
    if client_version is not None:
        return model_list.codex_catalog(models)
    if "anthropic-version" in request.headers or bearer_token(request) is None:
        return model_list.anthropic_page(models, limit, after_id, before_id)
    return model_list.openai_list(models, router)
