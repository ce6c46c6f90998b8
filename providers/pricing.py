"""Model prices: genai-prices, runcap's own models, deployment overrides, and exact USD <->
micro-dollar math.

Prices are written as USD decimal strings per million tokens (as providers publish them) and held
as integer micro-dollars per million tokens, so every later sum is exact. A model's price is, in
order: the deployment's overrides (``RUNCAP_PRICE_OVERRIDES_FILE``), runcap's own models (the
fake provider's), then genai-prices (``providers.price_catalogue``). "No free calls": a model
without a price, or priced at zero, is refused unless a floor price is configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers import price_catalogue
from workflows.budget import TOOL_COUNTS
from workflows.contracts import Price, PriceTier, ToolFee
from workflows.money import usd_to_micros

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_RATES = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
RUNCAP_MODELS: dict[str, dict[str, str]] = {
    "fake-small": {
        "input": "0.50",
        "output": "1.50",
        "cached_input": "0.50",
        "cache_write": "0.50",
    },
    "fake-large": {
        "input": "5.00",
        "output": "15.00",
        "cached_input": "0.50",
        "cache_write": "6.25",
    },
}
"""The fake provider's models, priced so that tests and the demo bill real amounts."""

PriceOverrides = Mapping[str, Mapping[str, Any]] | str | Path


class UnknownModel(LookupError):
    """No price for a model, and no floor price to fall back on."""

    def __init__(self, model: str, reason: str = "has no price") -> None:
        super().__init__(
            f"model {model!r} {reason}; add it to the price overrides or configure a floor price"
        )
        self.model = model


class FreeModelRefused(UnknownModel):
    """A model priced at zero would make calls free, which the budget cannot cap."""

    def __init__(self, model: str) -> None:
        super().__init__(model, "is priced at $0 for input and output")


def _rates(entry: Mapping[str, Any], where: str) -> dict[str, int]:
    """Token rates; a missing cache rate is the input rate (a missing one-hour write rate, 0,
    bills as the cache write rate), as genai-prices bills tokens it has no rate for."""
    if "input" not in entry or "output" not in entry:
        raise ValueError(f"{where} needs both 'input' and 'output'")
    values = {name: usd_to_micros(entry[name]) for name in _RATES if name in entry}
    if any(v < 0 for v in values.values()):
        raise ValueError("prices cannot be negative")
    values.setdefault("cached_input", values["input"])
    values.setdefault("cache_write", values["input"])
    return values


def _tier(entry: Any) -> PriceTier:
    if not isinstance(entry, Mapping):
        raise ValueError("a tier is an object with 'above_tokens' and rates")
    unknown = set(entry) - {"above_tokens", *_RATES}
    if unknown:
        raise ValueError(f"unknown tier fields: {sorted(unknown)}")
    above = entry.get("above_tokens")
    if not isinstance(above, int) or isinstance(above, bool) or above < 0:
        raise ValueError("a tier's 'above_tokens' is a whole number of input tokens")
    return PriceTier(above_tokens=above, **_rates(entry, "a tier"))


def _fees(entry: Any) -> tuple[ToolFee, ...]:
    if not isinstance(entry, Mapping):
        raise ValueError("'tools' maps a tool to its USD price per 1,000 uses")
    unknown = set(entry) - set(TOOL_COUNTS)
    if unknown:
        raise ValueError(f"unknown tools {sorted(unknown)}; runcap prices {sorted(TOOL_COUNTS)}")
    fees = tuple(ToolFee(str(tool), usd_to_micros(usd)) for tool, usd in entry.items())
    if any(fee.per_thousand < 0 for fee in fees):
        raise ValueError("prices cannot be negative")
    return fees


def parse_price(entry: Mapping[str, Any]) -> Price:
    """One table entry: rates in USD per million tokens, long-context ``tiers`` (each priced
    whole above its ``above_tokens`` of input), and per-use ``tools`` fees in USD per 1,000
    uses. A missing cache rate defaults to the input rate."""
    unknown = set(entry) - {*_RATES, "tiers", "tools"}
    if unknown:
        raise ValueError(f"unknown price fields: {sorted(unknown)}")
    tiers = entry.get("tiers", [])
    if not isinstance(tiers, list):
        raise ValueError("'tiers' is a list")
    parsed = tuple(sorted((_tier(t) for t in tiers), key=lambda t: t.above_tokens))
    if len({t.above_tokens for t in parsed}) != len(parsed):
        raise ValueError("two tiers start at the same 'above_tokens'")
    fees = _fees(entry.get("tools", {}))
    return Price(**_rates(entry, "a price"), tiers=parsed, tools=fees)


def _read_table(source: PriceOverrides) -> dict[str, Price]:
    if isinstance(source, str | Path):
        raw: Any = json.loads(Path(source).read_text())
    else:
        raw = source
    if isinstance(raw, Mapping) and isinstance(raw.get("models"), Mapping):
        raw = raw["models"]
    if not isinstance(raw, Mapping):
        raise ValueError("a price table maps model names to prices")
    prices: dict[str, Price] = {}
    for model, entry in raw.items():
        try:
            prices[str(model)] = parse_price(entry)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad price for {model!r}: {exc}") from None
    return prices


class PriceBook:
    """Prices by model name: ``overrides`` (a mapping or a JSON file), runcap's own models,
    then genai-prices."""

    def __init__(
        self, overrides: PriceOverrides | None = None, *, floor: Price | None = None
    ) -> None:
        self.own = _read_table(RUNCAP_MODELS)
        self.overridden = _read_table(overrides) if overrides is not None else {}
        self.own.update(self.overridden)
        self.floor = floor
        self.source = price_catalogue.SOURCE
        """Which price table is in use, as ``GET /v1/models`` and the README say."""

    def models(self) -> list[str]:
        """Every model with its own price (genai-prices' for OpenAI and Anthropic only)."""
        return sorted({*price_catalogue.listed_models(), *self.own})

    def _own(self, model: str) -> tuple[str, Price] | None:
        """An overridden or runcap model: exact name, then without ``provider/``, then undated."""
        candidates = [model]
        if "/" in model:
            candidates.append(model.rsplit("/", 1)[1])
        candidates += [_DATED.sub("", name) for name in candidates]
        for name in candidates:
            if name in self.own:
                return name, self.own[name]
        return None

    def lookup(self, model: str) -> Price | None:
        """The model's own price, or None."""
        own = self._own(model)
        if own is not None:
            return own[1]
        price = price_catalogue.lookup(model)
        if price is None and "/" in model:
            price = price_catalogue.lookup(model.rsplit("/", 1)[1])
        return price

    def canonical(self, model: str) -> str | None:
        """The name ``model`` is priced under: an override's or runcap's own name, or
        genai-prices' id; None without a price of its own. Metrics label models by it."""
        own = self._own(model)
        if own is not None:
            return own[0]
        found = price_catalogue.canonical(model)
        if found is None and "/" in model:
            found = price_catalogue.canonical(model.rsplit("/", 1)[1])
        return found

    def source_of(self, model: str) -> str:
        """Where ``model``'s price comes from: ``overrides``, ``runcap`` or genai-prices."""
        own = self._own(model)
        if own is None:
            return self.source
        return "overrides" if own[0] in self.overridden else "runcap"

    def knows(self, model: str) -> bool:
        """Whether ``model`` has a price of its own (the floor does not count)."""
        return self.lookup(model) is not None

    def price_of(self, model: str) -> Price:
        """The price to bill ``model`` at; the floor covers unknown and zero-priced models."""
        price = self.lookup(model)
        if price is not None and (price.input > 0 or price.output > 0):
            return price
        if self.floor is not None:
            return self.floor
        raise UnknownModel(model) if price is None else FreeModelRefused(model)
