"""Helpers for adapter wire tests: a recording ``httpx.MockTransport`` and SSE byte builders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from pydantic import SecretStr

from providers import ProviderCall, ProviderConfig
from providers.sse import encode_data, encode_event
from workflows.contracts import WireFormat

JSON = dict[str, Any]
SECRET = "sk-test-secret-value"


class Recorder:
    """Answers every request with ``respond`` and keeps the requests it saw."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    @property
    def body(self) -> JSON:
        result: JSON = json.loads(self.requests[-1].content)
        return result

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def config(api: WireFormat, base_url: str = "https://provider.test") -> ProviderConfig:
    return ProviderConfig(name=api, api=api, base_url=base_url, api_key=SecretStr(SECRET))


def call(body: JSON, inbound: WireFormat, model: str = "m-1", max_tokens: int = 64) -> ProviderCall:
    return ProviderCall(body=body, inbound=inbound, model=model, max_tokens=max_tokens)


def openai_sse(chunks: list[JSON], done: bool = True) -> bytes:
    return b"".join(encode_data(c) for c in chunks) + (b"data: [DONE]\n\n" if done else b"")


def anthropic_sse(events: list[JSON]) -> bytes:
    return b"".join(encode_event(str(e["type"]), e) for e in events)


class BrokenStream(httpx.AsyncByteStream):
    """A body that sends ``chunks`` and then loses the connection."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class Sink:
    """Collects what an adapter streams to the caller."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode()

    def data(self) -> list[JSON]:
        """The JSON payloads of every ``data:`` line (``[DONE]`` left out)."""
        out: list[JSON] = []
        for line in self.text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
        return out
