"""The Responses API over a WebSocket, the transport Codex opens first: ``GET /v1/responses``
with ``Upgrade: websocket`` (and ``openai-beta: responses_websockets=2026-02-06``).

Codex sends each request as a text frame ``{"type": "response.create", ...}`` holding a
Responses body, and reads back the events an HTTPS stream carries, one JSON object a frame, up
to ``response.completed``. Each ``response.create`` is served by ``api.gateway.serve_call``, the
path of ``POST /v1/responses``: the same budget, bill, tags and stream. What the socket adds:

- ``previous_response_id`` names the last response on this socket, and the frame then holds only
  the new items. The socket keeps its last request's input and that response's output items
  (bounded by the body limit) and rebuilds the whole input: runcap still stores no responses.
- ``generate: false`` (Codex's prewarm) is answered at once with an empty completed response: no
  model call, no cost.
- A refusal is an ``error`` frame with the HTTP status, error and headers, which Codex handles as
  it handles an HTTP error; the socket stays open.

Why serve it rather than refuse it: without it, Codex 0.171 tried the socket seven times in
every session, over about 7 s, and wrote eleven error lines before falling back to HTTPS;
refused with 426 it falls back at once but still writes an error line every session.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response, WebSocket
from fastapi.responses import StreamingResponse
from starlette.websockets import WebSocketDisconnect

from api.auth import request_secret
from api.errors import BadRequest, BodyTooLarge, ForbiddenModel, GatewayError, error_response
from api.errors import openai_body as openai_error
from api.gateway import Arrival, CallContext, serve_call
from api.routes_responses import compaction_tags, stream_error
from api.wire import ResponsesRequest
from providers.formats.hub import Meter, as_dict
from providers.formats.responses import new_id, response_object
from providers.sse import iter_events

log = logging.getLogger(__name__)
router = APIRouter(tags=["responses"])
PATH = "/v1/responses"
INBOX = 8
"""Frames read ahead while a response streams; more wait in the socket (backpressure)."""


@dataclass
class _Last:
    """The socket's last response: its id, and the items a follow-up extends."""

    response_id: str
    items: list[Any]


def error_frame(error: GatewayError) -> str:
    """A refusal as Codex reads one on this socket: the status, OpenAI's error and headers."""
    frame = {
        "type": "error",
        "status": error.status,
        "error": openai_error(error)["error"],
        "headers": error.headers,
    }
    return json.dumps(frame)


@router.websocket(PATH)
async def responses_socket(websocket: WebSocket) -> None:
    """Responses over a WebSocket: the handshake authenticates; each frame is one call."""
    try:
        secret = request_secret(websocket)
        await websocket.app.state.key_cache.lookup(secret)
    except GatewayError as refused:
        await _deny(websocket, refused)
        return
    await websocket.accept()
    await _Socket(websocket, secret).serve()


async def _deny(websocket: WebSocket, refused: GatewayError) -> None:
    """Refuse the handshake with the HTTP answer an HTTPS call would get (401 for a bad key)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(refused, PATH))
    else:  # a server without denial responses: the upgrade is refused with 403
        await websocket.close(code=1008, reason=refused.message[:120])


class _Socket:
    """One client's socket: frames in order, one response at a time, as Codex sends them."""

    def __init__(self, websocket: WebSocket, secret: str) -> None:
        self.websocket = websocket
        self.secret = secret
        self.ctx = CallContext.of(websocket)
        self.headers = dict(websocket.headers)
        self.limit = self.ctx.settings.max_body_bytes
        self.wire = ResponsesRequest.bounded(self.ctx.settings.responses_default_max_output_tokens)
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue(INBOX)
        self.gone = asyncio.Event()
        self.last: _Last | None = None
        self.relaying = False

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            while (text := await self.inbox.get()) is not None:
                answer = asyncio.create_task(self._answer(text))
                await asyncio.wait({answer, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not answer.done():  # the client left mid-answer
                    # A stream that began stops now, as over HTTPS. Before its first byte a call
                    # cannot be stopped from here (nor over HTTPS): its first event, sent to no
                    # one, ends it.
                    if self.relaying:
                        answer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await answer
                    return
                if answer.result() is False:
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode(errors="replace")
                await self.inbox.put(text)
        finally:
            self.gone.set()
            with contextlib.suppress(asyncio.QueueFull):
                self.inbox.put_nowait(None)

    async def _answer(self, text: str) -> bool:
        """Answer one frame; ``False`` once the client cannot be written to any more."""
        try:
            await self._create(text)
        except GatewayError as refused:
            return await self._send(error_frame(refused))
        except WebSocketDisconnect:
            return False
        except Exception:
            # Frames and bodies are never logged: they carry keys and prompts.
            log.exception("unhandled error on the Responses WebSocket")
            internal = GatewayError("internal error; see the gateway's log")
            return await self._send(error_frame(internal))
        return True

    async def _send(self, text: str) -> bool:
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            return False
        return True

    async def _create(self, text: str) -> None:
        if len(text) > self.limit:
            raise BodyTooLarge(f"frame is larger than {self.limit} bytes")
        frame = _frame(text)
        if frame.get("type") == "response.processed":  # Codex's acknowledgement
            return
        if frame.get("type") != "response.create":
            raise BadRequest(f"unsupported frame type {frame.get('type')!r}", param="type")
        body = {k: v for k, v in frame.items() if k not in ("type", "generate")}
        body["input"] = self._whole_input(body)
        key = await self.websocket.app.state.key_cache.lookup(self.secret)  # revoked: refused
        if frame.get("generate") is False:
            await self._prewarm(body, key.allows(str(body.get("model"))))
            return
        body["stream"] = True
        raw = json.dumps(body).encode()
        if len(raw) > self.limit:
            raise BodyTooLarge(
                f"this socket's conversation is larger than {self.limit} bytes; "
                "open a new socket or compact the conversation"
            )
        arrival = Arrival(raw, self._headers(body), PATH, self.gone.wait)
        answer = await serve_call(
            self.ctx, key, arrival, "responses", self.wire, stream_error, compaction_tags
        )
        self.relaying = True
        try:
            done, output = await self._relay(answer)
        finally:
            self.relaying = False
        self.last = _Last(done, [*body["input"], *output]) if done else None

    def _whole_input(self, body: dict[str, Any]) -> list[Any]:
        """The frame's input after the items of the response it follows, if it names one."""
        given = body.get("input", [])
        items = (
            [{"type": "message", "role": "user", "content": given}]
            if isinstance(given, str)
            else given
        )
        if not isinstance(items, list):
            raise BadRequest("input must be a string or a list of items", param="input")
        previous = body.pop("previous_response_id", None)
        if not previous:
            return items
        if self.last is None or previous != self.last.response_id:
            raise BadRequest(
                f"previous_response_id {previous!r} is not the last response on this socket; "
                "runcap stores no responses, so send the whole conversation",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        return [*self.last.items, *items]

    def _headers(self, body: dict[str, Any]) -> Mapping[str, str]:
        """The handshake's headers, updated by the frame's Codex metadata (its turn metadata
        names the request's kind, such as a compaction)."""
        meta = body.get("client_metadata")
        if not isinstance(meta, dict):
            return self.headers
        extra = {
            k.lower(): v
            for k, v in meta.items()
            if isinstance(v, str) and k.lower().startswith("x-codex-")
        }
        return {**self.headers, **extra}

    async def _prewarm(self, body: dict[str, Any], allowed: bool) -> None:
        """``generate: false``: an empty completed response to follow up on; nothing is called."""
        model = str(body.get("model") or "")
        if not allowed:
            raise ForbiddenModel(f"this key may not use model {model!r}")
        response_id = new_id("resp")
        begun = response_object(response_id, model, [])
        ended = response_object(response_id, model, [], stop="end", meter=Meter())
        for sequence, (kind, response) in enumerate(
            (("response.created", begun), ("response.completed", ended))
        ):
            event = {"type": kind, "sequence_number": sequence, "response": response}
            await self.websocket.send_text(json.dumps(event))
        self.last = _Last(response_id, list(body["input"]))

    async def _relay(self, answer: Response) -> tuple[str, list[Any]]:
        """The call's events, a frame each (SSE comments, such as the cost, have none); the id
        of the response they completed (empty if none) and its output items."""
        done, output = "", []
        async with contextlib.aclosing(_lines(answer)) as lines:
            async for event in iter_events(lines):
                await self.websocket.send_text(event.data)
                with contextlib.suppress(ValueError):
                    data = event.json()
                    if data.get("type") == "response.output_item.done":
                        output.append(data.get("item"))
                    elif data.get("type") in ("response.completed", "response.incomplete"):
                        done = str(as_dict(data.get("response")).get("id") or "")
        return done, output


def _frame(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError as err:
        raise BadRequest(f"frame is not valid JSON: {err}") from None
    if not isinstance(frame, dict):
        raise BadRequest("frame must be a JSON object")
    return frame


async def _lines(answer: Response) -> AsyncGenerator[str, None]:
    """The lines of a streamed answer (or of a replayed one) as they come; closing this closes
    the stream, and so stops the call."""
    if isinstance(answer, StreamingResponse):
        chunks: AsyncIterable[Any] = answer.body_iterator
    else:
        chunks = _once(bytes(answer.body))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    try:
        async for chunk in chunks:
            pending += decoder.decode(chunk) if isinstance(chunk, bytes) else str(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line
        if pending:
            yield pending
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body
