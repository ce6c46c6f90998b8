"""OpenAI-compatible endpoints: ``POST /v1/chat/completions`` and ``GET /v1/models``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

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
async def list_models(request: Request, key: VirtualKeyDep) -> dict[str, Any]:
    """The models this key may call: every priced model, or the key's own list; each says
    where its price comes from, and the list says which price table is in use."""
    prices = request.app.state.router.prices
    names = list(key.models) or prices.models()
    data = [
        {
            "id": n,
            "object": "model",
            "created": 0,
            "owned_by": "runcap",
            "runcap_price_source": prices.source_of(n),
        }
        for n in names
    ]
    return {"object": "list", "data": data, "runcap_price_source": prices.source}
