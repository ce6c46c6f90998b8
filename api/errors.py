"""Every error the api answers with, and how each looks in the caller's own wire format.

Why one module: an agent's SDK decides what to do (retry, give up, show the user) from the status
and the envelope, so each error maps to exactly one status and one envelope per format.

    GatewayError(status, code, message, headers)
    ├── BadRequest          400  invalid_request
    ├── AuthError           401  invalid_api_key
    ├── ForbiddenModel      403  model_not_allowed
    ├── NotFound            404  not_found
    ├── BodyTooLarge        413  request_too_large
    ├── IdempotencyConflict 409  idempotency_key_reused
    ├── BudgetExceeded      429  budget_exceeded   (the figures; x-should-retry: false)
    ├── RateLimited         429  rate_limited      (Retry-After)
    ├── ProviderRejected    4xx  provider_error    (the provider's own status and message)
    ├── AllTargetsFailed    502  all_targets_failed (attempts)
    ├── CallInterrupted     502  call_interrupted  (cut off after the provider may have worked)
    └── Unavailable         503  unavailable       (Retry-After)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

Envelope = Literal["openai", "anthropic", "admin"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class GatewayError(Exception):
    """Base of every answer that is not a success; ``details`` are extra envelope fields."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.details: dict[str, Any] = dict(details or {})
        self.param = param


class BadRequest(GatewayError):
    status = 400
    code = "invalid_request"


class AuthError(GatewayError):
    status = 401
    code = "invalid_api_key"


class ForbiddenModel(GatewayError):
    status = 403
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class BodyTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


MAX_RETRY_AFTER_SECONDS = 60
"""The longest ``Retry-After`` runcap sends: Claude Code gives up on a longer one."""
NO_RETRY = {"x-should-retry": "false"}
"""Both SDKs honour it: a refusal that cannot change by waiting returns at once, not after
minutes of retries."""


class IdempotencyConflict(GatewayError):
    status = 409
    code = "idempotency_key_reused"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=NO_RETRY)


class BudgetExceeded(GatewayError):
    """The run cannot afford the call; the SDKs surface it as a ``RateLimitError``.

    No ``Retry-After``: waiting does not make money. ``details`` carry the figures.
    """

    status = 429
    code = "budget_exceeded"

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, headers=NO_RETRY, details=details)


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        seconds = min(max(1, math.ceil(retry_after_seconds)), MAX_RETRY_AFTER_SECONDS)
        super().__init__(
            message, headers={"Retry-After": str(seconds)}, details={"retry_after": seconds}
        )


class ProviderRejected(GatewayError):
    """A provider's 4xx, passed on with its status and message (the caller sent something bad)."""

    code = "provider_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status if 400 <= status < 500 else 400)


class AllTargetsFailed(GatewayError):
    status = 502
    code = "all_targets_failed"

    def __init__(self, attempts: Sequence[Mapping[str, Any]], message: str | None = None) -> None:
        text = message or f"every target in the chain failed ({len(attempts)} attempts)"
        super().__init__(text, details={"attempts": [dict(a) for a in attempts]})


class CallInterrupted(GatewayError):
    """The call was cut off after the provider may have done the work (its caller stopped, or
    its client left); it was billed, so repeating the same idempotent request cannot help."""

    status = 502
    code = "call_interrupted"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=NO_RETRY)


class Unavailable(GatewayError):
    """Temporal or the run cannot answer now; the SDKs retry a 503, and Retry-After says when."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_seconds: int = 1, **kw: Any) -> None:
        super().__init__(message, **kw)
        seconds = min(max(1, retry_after_seconds), MAX_RETRY_AFTER_SECONDS)
        self.headers.setdefault("Retry-After", str(seconds))


def envelope_for_path(path: str) -> Envelope:
    """Anthropic's envelope on ``/v1/messages*``, OpenAI's on other ``/v1``, simple elsewhere."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    return "admin"


def openai_body(error: GatewayError) -> dict[str, Any]:
    """OpenAI's ``{"error": {message, type, param, code}}``, plus our details."""
    kind = _OPENAI_TYPES.get(
        error.status, "api_error" if error.status >= 500 else "invalid_request_error"
    )
    if isinstance(error, BudgetExceeded):
        kind = "insufficient_quota"
    inner: dict[str, Any] = {"message": error.message, "type": kind, "param": error.param}
    inner["code"] = error.code
    inner.update(error.details)
    return {"error": inner}


def anthropic_body(error: GatewayError) -> dict[str, Any]:
    """Anthropic's ``{"type": "error", "error": {type, message}}``, plus our details."""
    default = "api_error" if error.status >= 500 else "invalid_request_error"
    inner: dict[str, Any] = {
        "type": _ANTHROPIC_TYPES.get(error.status, default),
        "message": error.message,
    }
    inner.update(error.details)
    inner["code"] = error.code
    return {"type": "error", "error": inner}


def admin_body(error: GatewayError) -> dict[str, Any]:
    """The admin api's plain ``{"error": {code, message}}``."""
    inner: dict[str, Any] = {"code": error.code, "message": error.message}
    inner.update(error.details)
    return {"error": inner}


def error_body(error: GatewayError, envelope: Envelope) -> dict[str, Any]:
    """The body of ``error`` in the given envelope."""
    if envelope == "anthropic":
        return anthropic_body(error)
    if envelope == "openai":
        return openai_body(error)
    return admin_body(error)


def error_response(error: GatewayError, path: str) -> JSONResponse:
    """``error`` as a response in the envelope the path's callers expect."""
    return JSONResponse(
        error_body(error, envelope_for_path(path)), status_code=error.status, headers=error.headers
    )


def _validation_error(exc: RequestValidationError) -> GatewayError:
    errors = list(exc.errors())
    first: Mapping[str, Any] = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "invalid JSON")
        return BadRequest(f"malformed JSON body: {reason}", code="invalid_json")
    where = ".".join(loc) or "body"
    message = f"invalid request: {where}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return BadRequest(message, param=where)


async def _on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    error = _validation_error(exc)
    if envelope_for_path(request.url.path) == "admin" and error.code != "invalid_json":
        error.status = 422
    return error_response(error, request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: GatewayError = NotFound(f"no route for {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = GatewayError(
            f"method {request.method} not allowed on {request.url.path}",
            status=405,
            code="method_not_allowed",
        )
    else:
        error = GatewayError(str(exc.detail), status=exc.status_code, code="http_error")
    error.headers.update(exc.headers or {})
    return error_response(error, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every handled error in the caller's envelope; 422 becomes 400 on ``/v1``."""
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
