"""The OpenAI Responses API as Codex, the Agents SDK and opencode use it: ``POST /v1/responses``.

A Responses call goes through the key's run like any other; a Responses target serves it as
sent, and a chat-completions or Anthropic target serves it translated (``providers.translate``).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from api.deps import SettingsDep, VirtualKeyDep
from api.errors import GatewayError, openai_body
from api.gateway import handle_call
from api.openapi import json_body
from api.wire import ResponsesRequest

router = APIRouter(tags=["responses"])


def stream_error(error: GatewayError) -> bytes:
    """A failure after the stream began: an ``error`` event that also carries OpenAI's
    ``error`` object, which makes the OpenAI SDK raise instead of waiting for the end."""
    inner = openai_body(error)["error"]
    event = {"type": "error", "sequence_number": 0, **inner, "error": inner}
    return f"event: error\ndata: {json.dumps(event)}\n\n".encode()


@router.post("/v1/responses", openapi_extra=json_body(ResponsesRequest, streams=True))
async def create_response(request: Request, key: VirtualKeyDep, settings: SettingsDep) -> Response:
    """A response through the key's run, streamed or not."""
    wire = ResponsesRequest.bounded(settings.responses_default_max_output_tokens)
    return await handle_call(request, key, "responses", wire, stream_error)
