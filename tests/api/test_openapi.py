"""/openapi.json publishes the /v1 request bodies, every error answer in its envelope, and auth."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from api import errors as e
from api.app import create_app
from api.errors import error_body
from tests.api.conftest import make_settings

V1_STATUSES = {"400", "401", "403", "404", "413", "429", "502", "503"}
ENVELOPE_SCHEMA = {"openai": "OpenAIError", "anthropic": "AnthropicError", "admin": "AdminError"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The app's document (the schemathesis test reads the same one over HTTP)."""
    return create_app(make_settings()).openapi()


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


async def test_v1_request_bodies_are_published(document: dict[str, Any]) -> None:
    """Every /v1 POST names its body schema, and each schema says what budget and routing read."""
    posts = {p: ops["post"] for p, ops in document["paths"].items() if "post" in ops}
    v1 = {p: op for p, op in posts.items() if p.startswith("/v1/")}
    assert set(v1) >= {"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"}
    for path, operation in v1.items():
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = resolve(document, schema["$ref"])
        assert "model" in body["required"], path
        assert body["additionalProperties"] is True, path  # unknown fields pass through
    chat = resolve(document, v1["/v1/chat/completions"]["requestBody"]["content"][
        "application/json"]["schema"]["$ref"])  # fmt: skip
    assert chat["properties"]["messages"]["minItems"] == 1
    streams = v1["/v1/messages"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(streams)


async def test_every_operation_documents_its_errors_and_auth(document: dict[str, Any]) -> None:
    """/v1 operations list 400-503 in their caller's envelope (Retry-After on 429); /admin ones
    list theirs in the admin envelope; each says how it authenticates."""
    schemes = document["components"]["securitySchemes"]
    for path, operations in document["paths"].items():
        envelope = e.envelope_for_path(path)
        for operation in operations.values():
            responses = operation["responses"]
            if path.startswith("/v1/"):
                assert set(responses) >= V1_STATUSES, path
                assert "Retry-After" in responses["429"]["headers"]
            for status, answer in responses.items():
                if status.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/" + ENVELOPE_SCHEMA[envelope]), (path, status)
            assert operation["security"], path
            for requirement in operation["security"]:
                assert set(requirement) <= set(schemes)


ERRORS: list[e.GatewayError] = [
    e.BadRequest("bad", param="messages"),
    e.AuthError("no key"),
    e.ForbiddenModel("not this model"),
    e.NotFound("nothing here"),
    e.BodyTooLarge("too large"),
    e.BudgetExceeded(
        "budget exhausted", {"budget_usd": "1.00", "spent_usd": "0.90", "remaining_usd": "0.10"}
    ),
    e.RateLimited("slow down", 2.5),
    e.ProviderRejected(422, "the provider said no"),
    e.AllTargetsFailed([{"target": "fake/fake-small", "status": 500}]),
    e.Unavailable("Temporal is away"),
]


@pytest.mark.parametrize("envelope", ["openai", "anthropic", "admin"])
async def test_documented_envelopes_match_what_the_api_sends(
    document: dict[str, Any], envelope: e.Envelope
) -> None:
    """Each error the api can answer validates against the schema the document gives for it."""
    schema = {
        "$ref": f"#/components/schemas/{ENVELOPE_SCHEMA[envelope]}",
        "components": document["components"],
    }
    validator = jsonschema_rs.validator_for(schema)
    for error in ERRORS:
        body = error_body(error, envelope)
        assert validator.is_valid(body), (envelope, type(error).__name__, body)
