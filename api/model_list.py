"""The models a key may use, in each shape a client asks ``GET /v1/models`` for.

A model is usable when the key allows it and a route or provider can serve and price it: the
key's own list, else every named route and every priced model. Three clients, three shapes:

- OpenAI's list (the OpenAI SDK and most tools), with runcap's price sources;
- Anthropic's page (Claude Code's gateway model discovery, the Anthropic SDK), paged by
  ``limit``, ``after_id`` and ``before_id``;
- Codex's model catalog (``?client_version=``, when Codex is given ``model_catalog_url`` and
  ``features.api_key_model_discovery``). Codex replaces its whole catalog with this one and uses
  each entry's metadata, so every entry is plain: Codex's shell tool and no freeform
  ``apply_patch`` (edits go through the shell), no reasoning options, and a short general prompt
  of runcap's (``CODEX_INSTRUCTIONS``) in place of Codex's own prompt for its own models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.auth import KeyPolicy
from api.errors import BadRequest
from api.routing import Router
from workflows.contracts import Price
from workflows.money import micros_to_usd

JSON = dict[str, Any]
ANTHROPIC_PAGE = 20
ANTHROPIC_MAX_PAGE = 1000
EPOCH = "1970-01-01T00:00:00Z"
"""``created_at`` of every model: runcap does not know when a provider released it."""
CODEX_INSTRUCTIONS = (
    "You are a coding agent running in the Codex CLI, on a model served through the runcap "
    "gateway. You and the user share a workspace. Use the tools you are given to read files "
    "before you change them, make the smallest change that does the task, run the project's "
    "checks when you can, and finish with what you changed and what is left."
)


@dataclass(frozen=True)
class Usable:
    """A model the key may use, and the price of the target that serves it first."""

    id: str
    price: Price

    def description(self) -> str:
        cost = f"{_usd(self.price.input)} in, {_usd(self.price.output)} out per Mtok"
        return f"{cost}, via runcap"


def usable(key: KeyPolicy, router: Router) -> list[Usable]:
    """The models ``key`` may use, in a stable order: its own list, else routes then prices."""
    named = [r.model for r in router.routes if r.model != "*"]
    asked = list(key.models) or [*named, *router.prices.models()]
    found: list[Usable] = []
    for model in dict.fromkeys(asked):
        try:
            chain = router.route_for(model, key.tags, "openai").chain
        except BadRequest:  # nothing configured can serve or price it
            continue
        if chain:
            found.append(Usable(model, chain[0].price))
    return found


def openai_list(models: Sequence[Usable], router: Router) -> JSON:
    prices = router.prices
    data = [
        {
            "id": m.id,
            "object": "model",
            "created": 0,
            "owned_by": "runcap",
            "runcap_price_source": prices.source_of(m.id),
        }
        for m in models
    ]
    return {"object": "list", "data": data, "runcap_price_source": prices.source}


def anthropic_page(
    models: Sequence[Usable], limit: int, after_id: str | None, before_id: str | None
) -> JSON:
    """One page in Anthropic's shape: ``after_id`` pages forward, ``before_id`` back."""
    if not 1 <= limit <= ANTHROPIC_MAX_PAGE:
        raise BadRequest(f"limit must be 1 to {ANTHROPIC_MAX_PAGE}", param="limit")
    ids = [m.id for m in models]
    start, end = 0, len(models)
    if after_id is not None:
        start = _index(ids, after_id, "after_id") + 1
    if before_id is not None:
        end = _index(ids, before_id, "before_id")
        start = max(start, end - limit) if after_id is None else start
    page = models[start : min(end, start + limit)]
    data = [
        {
            "type": "model",
            "id": m.id,
            "display_name": m.id,
            "created_at": EPOCH,
            "description": m.description(),
        }
        for m in page
    ]
    more = start + len(page) < end if before_id is None else start > 0
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def codex_catalog(models: Sequence[Usable]) -> JSON:
    """Codex's ``ModelsResponse``: every field Codex 0.171 requires, and no more (a value it
    does not know, such as ``apply_patch_tool_type: "function"``, which 0.171 dropped, makes it
    discard the whole catalog)."""
    return {
        "models": [
            {
                "slug": m.id,
                "display_name": m.id,
                "description": m.description(),
                "supported_reasoning_levels": [],
                "shell_type": "shell_command",
                "visibility": "list",
                "supported_in_api": True,
                "priority": rank,
                "base_instructions": CODEX_INSTRUCTIONS,
                "supports_reasoning_summaries": False,
                "support_verbosity": False,
                "truncation_policy": {"mode": "bytes", "limit": 10_000},
                "supports_parallel_tool_calls": False,
                "experimental_supported_tools": [],
                "input_modalities": ["text", "image"],
            }
            for rank, m in enumerate(models)
        ]
    }


def _index(ids: list[str], wanted: str, param: str) -> int:
    try:
        return ids.index(wanted)
    except ValueError:
        raise BadRequest(f"{param} {wanted!r} is not a model of this key", param=param) from None


def _usd(micros: int) -> str:
    return "$" + micros_to_usd(micros).rstrip("0").rstrip(".")
