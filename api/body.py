"""JSON request bodies parsed defensively: what Python's ``json`` accepts but runcap must not.

Why: the body is forwarded to a provider and parts of it reach the database and Temporal, and
three things ``json.loads`` lets through broke later, after a full provider attempt or as a 500:
- nesting deeper than the C parser's recursion limit (100,000 ``[``) raised ``RecursionError``;
  nesting below that but deep still broke re-encoding, so depth is capped well below it;
- ``NaN``/``Infinity`` (and ``1e999``, which overflows to infinity) are not JSON (RFC 8259);
- a lone surrogate (``"\\ud800"``) decodes to a string no UTF-8 encoder will write back out.
Each is refused up front as malformed JSON: a 400 in the caller's envelope, before any call.

``HardenedRoute`` gives FastAPI's own body parsing (the admin api) the same rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 128
"""Far deeper than any chat body (tools' JSON schemas nest a few dozen levels at most)."""
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnsafeJSON(json.JSONDecodeError):
    """Valid to Python's parser, refused by runcap; ``str()`` is just the reason."""

    def __init__(self, reason: str, doc: str = "", pos: int = 0) -> None:
        super().__init__(reason, doc, pos)

    def __str__(self) -> str:
        return self.msg


def _no_constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"number {text[:40]} is out of range")
    return value


def _check(document: Any) -> None:
    """Depth and strings of a parsed document, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise UnsafeJSON("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((key, depth) for key in node)
            stack.extend((value, depth + 1) for value in node.values())
        else:
            stack.extend((value, depth + 1) for value in node)


def loads(raw: bytes | str) -> Any:
    """``raw`` as JSON, or ``json.JSONDecodeError`` (a ``ValueError``) saying why not."""
    try:
        document = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as err:
        raise UnsafeJSON(f"body is not UTF-8: {err.reason}") from None
    _check(document)
    return document


class HardenedRequest(Request):
    """A request whose ``json()`` follows the same rules as the ``/v1`` routes."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class HardenedRoute(APIRoute):
    """Use as an ``APIRouter``'s ``route_class`` so its JSON bodies are parsed by ``loads``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def hardened(request: Request) -> Response:
            return await handler(HardenedRequest(request.scope, request.receive))

        return hardened
