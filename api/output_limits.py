"""How many output tokens a call may ask for: its model's own limit, within the api's setting.

Why: the output bound is half of a reservation's worst case, and it is sent on to the provider.
A bound no model can write (2^63 was accepted) reserves nothing real, overflowed the rate
limiter's insert (a 500) and OpenTelemetry's int64 attributes (export batches dropped). So a
bound past the limit is refused with a 400 in the caller's format; a default bound (the client
set none) is lowered to the limit instead.

A model's limit is its provider's documented maximum output where this table knows it, else
``RUNCAP_MAX_OUTPUT_TOKENS`` (128,000, the largest of the table); genai-prices has no output
limits. The setting also caps the table's figures. A chain's limit is the largest of its
targets': a call is refused only when none of them could write what it asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from api.errors import BadRequest
from providers import price_catalogue
from workflows.contracts import Target

OUTPUT_TOKENS_CEILING = 128_000
"""``RUNCAP_MAX_OUTPUT_TOKENS``'s default: the largest limit in the table."""

MODEL_OUTPUT_LIMITS: dict[str, int] = {
    # OpenAI, by genai-prices' model ids (dated names resolve to them).
    "gpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "chatgpt-4o-latest": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.1-mini": 32_768,
    "gpt-4.1-nano": 32_768,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o3-mini": 100_000,
    "o4-mini": 100_000,
    "gpt-5": 128_000,
    "gpt-5-mini": 128_000,
    "gpt-5-nano": 128_000,
    # Anthropic.
    "claude-3-haiku": 4_096,
    "claude-3-5-haiku-latest": 8_192,
    "claude-3-5-sonnet": 8_192,
    "claude-opus-4-0": 32_000,
    "claude-opus-4-1": 32_000,
    "claude-sonnet-4-0": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-opus-4-5": 64_000,
}
"""Documented maximum output tokens per model (the providers' model pages)."""


@lru_cache(maxsize=1024)
def model_output_limit(model: str) -> int | None:
    """The table's limit for ``model`` (a dated, aliased or ``provider/`` name too), if any."""
    name = model.rsplit("/", 1)[-1]
    if name in MODEL_OUTPUT_LIMITS:
        return MODEL_OUTPUT_LIMITS[name]
    canonical = price_catalogue.canonical(name)
    return MODEL_OUTPUT_LIMITS.get(canonical) if canonical else None


def output_limit(chain: Sequence[Target], ceiling: int) -> tuple[int, str]:
    """The most output tokens a call on ``chain`` may ask for, and what sets that limit."""
    limit, why = 0, f"the api's limit (RUNCAP_MAX_OUTPUT_TOKENS) is {ceiling}"
    for target in chain:
        own = model_output_limit(target.model)
        if own is None or own >= ceiling:
            return ceiling, f"the api's limit (RUNCAP_MAX_OUTPUT_TOKENS) is {ceiling}"
        if own > limit:
            limit, why = own, f"{target.model} writes at most {own}"
    return (limit, why) if limit else (ceiling, why)


def bounded_output(
    asked: dict[str, int], default: int, chain: Sequence[Target], ceiling: int
) -> int:
    """The call's output bound: what it ``asked`` for (its fields, the one that counts first),
    else ``default`` lowered to the limit; ``BadRequest`` for any field past the limit."""
    limit, why = output_limit(chain, ceiling)
    for field, value in asked.items():
        if value > limit:
            raise BadRequest(
                f"{field} is {value}, more than this call may write: {why} output tokens",
                param=field,
            )
    return next(iter(asked.values())) if asked else min(default, limit)
