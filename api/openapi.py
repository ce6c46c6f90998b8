"""The OpenAPI document (``/openapi.json``): request bodies, error answers and auth, published.

Why: the ``/v1`` routes read their body themselves (it is forwarded to the provider as sent),
so FastAPI cannot see its schema, and every error is answered by a handler FastAPI does not
know. Schema-driven tools (client generators, schemathesis in our tests) need both.

- A route that parses its own JSON body declares it with ``openapi_extra=json_body(Model)``;
  the model's schema lands in ``components.schemas``. Any new wire route does the same.
- Every operation gets the error answers of its path's envelope (``api.errors``): OpenAI's or
  Anthropic's on ``/v1``, the admin one on ``/admin``; and the way it authenticates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.errors import Envelope, envelope_for_path

_SCHEMAS_KEY = "x-runcap-schemas"
_REF = "#/components/schemas/{model}"

V1_ERRORS: Final[Mapping[str, str]] = {
    "400": "Malformed or invalid request (JSON, fields, tags, unknown model)",
    "401": "Missing, unknown or revoked virtual key",
    "403": "The key may not use this model",
    "404": "No such route",
    "409": "The run is closed (its key was revoked or the run was closed)",
    "413": "Request body too large",
    "4XX": "A provider refused the request: its own 4xx status and message, passed on",
    "429": "Over the run's budget (budget_exceeded, do not retry) or a rate limit (Retry-After)",
    "502": "Every target of the chain failed; the attempts are listed",
    "503": "Temporal or the run is unavailable right now; retry",
}
ADMIN_ERRORS: Final[Mapping[str, str]] = {
    "400": "Malformed JSON or an invalid filter",
    "401": "Missing or wrong admin key",
    "404": "No such key, run or route",
    "413": "Request body too large",
    "422": "A field of the body or query is invalid",
    "503": "Admin disabled (RUNCAP_ADMIN_KEY unset), or the run cannot be queried now",
}
_ERROR_SCHEMA: Final[Mapping[Envelope, str]] = {
    "openai": "OpenAIError",
    "anthropic": "AnthropicError",
    "admin": "AdminError",
}
_OPEN = {"additionalProperties": True}
_TEXT = {"type": "string"}
_ENVELOPES: Final[dict[str, Any]] = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {
                    "message": _TEXT,
                    "type": _TEXT,
                    "param": {"type": ["string", "null"]},
                    "code": _TEXT,
                },
                **_OPEN,
            }
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": _TEXT, "message": _TEXT, "code": _TEXT},
                **_OPEN,
            },
        },
    },
    "AdminError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": _TEXT, "message": _TEXT},
                **_OPEN,
            }
        },
    },
}
_SECURITY_SCHEMES: Final[dict[str, Any]] = {
    "VirtualKey": {"type": "http", "scheme": "bearer", "description": "A virtual key, rc-..."},
    "VirtualKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "AdminKey": {"type": "http", "scheme": "bearer", "description": "RUNCAP_ADMIN_KEY"},
}
_TEXT_SSE: Final = {"schema": {"type": "string"}}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def json_body(model: type[BaseModel], *, streams: bool = False) -> dict[str, Any]:
    """``openapi_extra`` of a route that parses ``model`` from its JSON body itself.

    ``streams``: its 200 may also be ``text/event-stream`` (when the body asks to stream).
    """
    schema = model.model_json_schema(ref_template=_REF)
    definitions = schema.pop("$defs", {})
    extra: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
            },
        },
        _SCHEMAS_KEY: {**definitions, model.__name__: schema},
    }
    if streams:
        extra["responses"] = {
            "200": {
                "description": "The answer, as JSON or (``stream: true``) server-sent events",
                "content": {"application/json": {"schema": {}}, "text/event-stream": _TEXT_SSE},
            }
        }
    return extra


def _errors(path: str) -> dict[str, Any]:
    envelope = envelope_for_path(path)
    statuses = ADMIN_ERRORS if envelope == "admin" else V1_ERRORS
    ref = {"$ref": _REF.format(model=_ERROR_SCHEMA[envelope])}
    answers: dict[str, Any] = {}
    for status, description in statuses.items():
        answers[status] = {
            "description": description,
            "content": {"application/json": {"schema": ref}},
        }
        if status in ("429", "503"):
            answers[status]["headers"] = _RETRY_AFTER
    return answers


def _security(path: str) -> list[dict[str, list[str]]]:
    if path.startswith("/admin"):
        return [{"AdminKey": []}]
    if envelope_for_path(path) == "anthropic":
        return [{"VirtualKeyHeader": []}, {"VirtualKey": []}]
    return [{"VirtualKey": []}]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the declared bodies, the error answers and the auth schemes."""
    document = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_ENVELOPES)
    components["securitySchemes"] = _SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            schemas.update(operation.pop(_SCHEMAS_KEY, {}))
            responses = operation.setdefault("responses", {})
            # FastAPI's generic 422 is replaced: on /v1 a bad field is a 400 in the envelope.
            responses.pop("422", None)
            for status, answer in _errors(path).items():
                responses.setdefault(status, answer)
            operation["security"] = _security(path)
    # FastAPI's own validation-error schemas are no longer referenced.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_openapi``'s document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
