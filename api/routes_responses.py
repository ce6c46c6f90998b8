"""The OpenAI Responses API as Codex, the Agents SDK and opencode use it: ``POST /v1/responses``,
and ``POST /v1/responses/compact`` (the remote compaction of Codex before v2).

A Responses call goes through the key's run like any other; a Responses target serves it as
sent, and a chat-completions or Anthropic target serves it translated (``providers.translate``),
compactions included (``providers.formats.compaction``). The WebSocket transport of the same
API is ``api.routes_responses_ws``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.agent_identity import COMPACTION_TAG
from api.deps import SettingsDep, VirtualKeyDep
from api.errors import GatewayError, openai_body
from api.gateway import Arrival, CallContext, handle_call, parse_body, serve_call
from api.openapi import json_body
from api.wire import ResponsesRequest
from providers.formats import compaction
from providers.formats.responses import new_id

router = APIRouter(tags=["responses"])


def stream_error(error: GatewayError) -> bytes:
    """A failure after the stream began: an ``error`` event that also carries OpenAI's
    ``error`` object, which makes the OpenAI SDK raise instead of waiting for the end."""
    inner = openai_body(error)["error"]
    event = {"type": "error", "sequence_number": 0, **inner, "error": inner}
    return f"event: error\ndata: {json.dumps(event)}\n\n".encode()


def compaction_tags(body: dict[str, Any], headers: Mapping[str, str]) -> list[str]:
    """``request:compaction`` for Codex's trigger (remote compaction). Its own summary calls
    say so in their turn metadata (``api.agent_identity``)."""
    return [COMPACTION_TAG] if compaction.requested(body) else []


@router.post("/v1/responses", openapi_extra=json_body(ResponsesRequest, streams=True))
async def create_response(request: Request, key: VirtualKeyDep, settings: SettingsDep) -> Response:
    """A response through the key's run, streamed or not."""
    wire = ResponsesRequest.bounded(settings.responses_default_max_output_tokens)
    return await handle_call(request, key, "responses", wire, stream_error, compaction_tags)


@router.post("/v1/responses/compact", openapi_extra=json_body(ResponsesRequest))
async def compact(request: Request, key: VirtualKeyDep, settings: SettingsDep) -> Response:
    """The history compacted, as Codex before remote compaction v2 asks for it: its user
    messages, then one compaction item.

    Served as the v2 request it stands for (the history and the trigger, not streamed), so it
    is routed, budgeted, billed and tagged ``request:compaction`` like any call.
    """
    received_at = time.perf_counter()
    wire = ResponsesRequest.bounded(settings.responses_default_max_output_tokens)
    body, _ = parse_body(await request.body(), wire)
    history = body["input"] if isinstance(body["input"], list) else [_user(body["input"])]
    asked = {**body, "input": [*history, {"type": compaction.TRIGGER}], "stream": False}
    asked.setdefault("store", False)
    arrival = Arrival.of(request, json.dumps(asked).encode(), received_at)
    ctx = CallContext.of(request)
    answer = await serve_call(ctx, key, arrival, "responses", wire, stream_error, compaction_tags)
    if answer.status_code != 200:
        return answer
    done = json.loads(bytes(answer.body))
    kept = [i for i in history if isinstance(i, dict) and _from_user(i)]
    compacted = {
        "id": done.get("id") or new_id("resp"),
        "object": "response.compaction",
        "created_at": done.get("created_at") or int(time.time()),
        "output": [*kept, _one_item(done)],
        "usage": done.get("usage"),
    }
    return JSONResponse(compacted, headers=_cost_headers(answer))


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def _from_user(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "user"


def _one_item(done: dict[str, Any]) -> dict[str, Any]:
    """The answer's compaction item; a Responses target that answered in text instead gets its
    text carried the way runcap carries any target's summary."""
    output = [i for i in done.get("output") or [] if isinstance(i, dict)]
    for each in output:
        if compaction.is_item(each):
            return each
    text = "".join(
        str(part.get("text", ""))
        for each in output
        if each.get("type") == "message"
        for part in each.get("content") or []
        if isinstance(part, dict)
    )
    return compaction.item(text, new_id("cmp"))


def _cost_headers(answer: Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.startswith("x-runcap-")}
