"""Anthropic-compatible endpoints as Claude Code uses them: ``/v1/messages``, its token count."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from api.deps import VirtualKeyDep
from api.errors import GatewayError, anthropic_body
from api.gateway import handle_call, parse_body
from api.openapi import json_body
from api.wire import CountTokensRequest, MessagesRequest
from workflows.budget import estimate_input_tokens

router = APIRouter(tags=["anthropic"])
BYTES_PER_TOKEN = 4
"""A typical ratio of English text and code; ``count_tokens`` is advice, not billing."""


def stream_error(error: GatewayError) -> bytes:
    """A failure after the stream began, as the Anthropic SDK reads one: an ``error`` event."""
    return f"event: error\ndata: {json.dumps(anthropic_body(error))}\n\n".encode()


@router.post("/v1/messages", openapi_extra=json_body(MessagesRequest, streams=True))
async def messages(request: Request, key: VirtualKeyDep) -> Response:
    """A message through the key's run, in Anthropic's format (streaming or not)."""
    return await handle_call(request, key, "anthropic", MessagesRequest, stream_error)


@router.post("/v1/messages/count_tokens", openapi_extra=json_body(CountTokensRequest))
async def count_tokens(request: Request, key: VirtualKeyDep) -> dict[str, int]:
    """An estimate of the prompt's tokens, so a client can decide when to compact its context.

    Budgeting never uses it: reservations take the byte count, a bound that always holds.
    """
    body, _ = parse_body(await request.body(), CountTokensRequest)
    size = estimate_input_tokens(body)
    return {"input_tokens": max(1, -(-size // BYTES_PER_TOKEN))}
