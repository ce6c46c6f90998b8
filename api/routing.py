"""Routing: which chain of targets serves a call, from the requested model and the call's tags.

Routes are configuration, not agent code: a JSON file (``RUNCAP_ROUTES_FILE``) such as::

    {"routes": [
      {"tags": ["step:read"], "chain": ["openai/gpt-4.1-nano", "anthropic/claude-haiku-4-5"]},
      {"model": "claude-sonnet-4-5", "chain": ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1"]}
    ]}

The first route whose ``model`` (exact, or ``*``) and ``tags`` (all present) match wins. With no
match, the model is served by its own provider, or by the fake provider when that is all there is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.errors import BadRequest
from providers.base import ProviderConfig
from providers.pricing import PriceBook, UnknownModel
from workflows.contracts import Target, WireFormat


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "*"
    tags: list[str] = Field(default_factory=list)
    chain: list[str] = Field(min_length=1)
    """``provider/model`` entries, tried in order."""
    first_byte_timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    """How long a target may stay silent before the chain moves on (default: the api's)."""


@dataclass(frozen=True)
class Routed:
    """A call's chain and the bounds its route sets."""

    chain: list[Target]
    first_byte_timeout: float | None = None


class RouteTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[Route] = Field(default_factory=list)


def load_routes(path: Path | None) -> RouteTable:
    """The routes file, or no routes; a broken file stops startup with the reason."""
    if path is None:
        return RouteTable()
    try:
        return RouteTable.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, ValidationError) as err:
        raise RuntimeError(f"cannot load routes from {path}: {err}") from err


def _home_provider(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("fake"):
        return "fake"
    return "openai"


class Router:
    """Turns (model, tags, caller format) into a priced chain."""

    def __init__(
        self, providers: Sequence[ProviderConfig], prices: PriceBook, routes: RouteTable
    ) -> None:
        self.apis: Mapping[str, WireFormat] = {p.name: p.api for p in providers}
        self.prices = prices
        self.routes = routes.routes

    def route_for(self, model: str, tags: Sequence[str], inbound: WireFormat) -> Routed:
        """The targets to try; ``BadRequest`` for a model nobody can serve or price."""
        for route in self.routes:
            if route.model in ("*", model) and all(t in tags for t in route.tags):
                chain = [self._target(entry) for entry in route.chain]
                return Routed(chain, route.first_byte_timeout_seconds)
        return Routed([self._target(f"{self._provider_for(model, inbound)}/{model}")])

    def chain_for(self, model: str, tags: Sequence[str], inbound: WireFormat) -> list[Target]:
        """The targets to try (``route_for`` without the route's bounds)."""
        return self.route_for(model, tags, inbound).chain

    def _provider_for(self, model: str, inbound: WireFormat) -> str:
        """The model's own provider, or offline the fake one, which serves every priced model."""
        found = self._member(_home_provider(model), inbound) or self._member("fake", inbound)
        if found is None:
            raise BadRequest(
                f"no provider is configured for model {model!r}", code="model_not_found"
            )
        return found

    def _member(self, family: str, inbound: WireFormat) -> str | None:
        """A family's provider that speaks the caller's format (``openai-responses`` for a
        Responses call), so nothing needs translating; else the family's own."""
        members = [n for n in self.apis if n == family or n.startswith(family + "-")]
        for name in members:
            if self.apis[name] == inbound:
                return name
        return family if family in self.apis else None

    def _target(self, entry: str) -> Target:
        provider, sep, model = entry.partition("/")
        if not sep or provider not in self.apis:
            raise BadRequest(f"route target {entry!r} names no configured provider")
        try:
            price = self.prices.price_of(model)
        except UnknownModel as err:
            raise BadRequest(str(err), code="model_not_found") from None
        return Target(provider, model, self.apis[provider], price)
