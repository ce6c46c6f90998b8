"""Model prices from Pydantic's ``genai-prices`` package, converted exactly to micro-dollars.

Why a package: a hand-kept table goes stale within weeks (Claude Code's and Codex's default
models were missing from ours); genai-prices is kept current by its maintainers, cache read and
write prices included, and its version pins what a deployment bills with. Only its bundled
snapshot is used: runcap never lets it fetch newer prices at run time.

From genai-prices' data runcap takes, for each model:
- the token rates (input, output, cache reads, 5-minute and one-hour cache writes) and their
  long-context tiers. genai-prices picks a tier by the call's whole input, cache reads and
  writes included, and bills every token of the call at it (``calc_unit_price``: a cliff, not
  marginal rates); ``Price.tiers`` holds the same, with every threshold any rate has;
- per-use fees of server-side tools: web searches, file (vector store) searches, code runs;
- the standard service tier (no batch, flex or priority variants);
- of dated price changes, the one in force on the day of the lookup; where the rate depends on
  the hour (off-peak discounts), the highest rate of the day, so a call is never under-billed.
A rate genai-prices does not give bills like genai-prices bills it: cache reads and writes as
input, one-hour writes as cache writes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot, types

from workflows.contracts import MICROS_PER_USD, Price, PriceTier, ToolFee

SOURCE = f"genai-prices {genai_prices.__version__}"
LISTED_PROVIDERS = ("anthropic", "openai")
"""Whose models ``GET /v1/models`` lists; any other provider's model is still priced."""


def _micros(value: Decimal) -> int:
    """USD per million tokens (or per thousand uses) as micro-dollars. Some providers' data
    holds float artefacts such as 0.18000000000000002; they round to the nearest micro-dollar,
    never through a float."""
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def _rate(value: Any, input_tokens: int) -> Decimal | None:
    """The rate of one price field for a call with ``input_tokens`` of input, as
    ``genai_prices.types.calc_unit_price`` picks it."""
    if isinstance(value, types.TieredPrices):
        rate = value.base
        for tier in sorted(value.tiers, key=lambda t: t.start):
            if input_tokens > tier.start:
                rate = tier.price
        return rate
    return value if isinstance(value, Decimal) else None


def _in_force(model: types.ModelInfo, day: date) -> list[types.ModelPrice]:
    """The price in force on ``day``, and any time-of-day alternatives to it."""
    if isinstance(model.prices, types.ModelPrice):
        return [model.prices]
    chosen = model.prices[0].prices
    by_hour: list[types.ModelPrice] = []
    for conditional in model.prices:
        constraint = conditional.constraint
        if isinstance(constraint, types.TimeOfDateConstraint):
            by_hour.append(conditional.prices)
        elif constraint is None or constraint.start_date <= day:
            chosen = conditional.prices
    return [chosen, *by_hour]


_TOKEN_FIELDS = (
    ("input", "input_mtok"),
    ("output", "output_mtok"),
    ("cached_input", "cache_read_mtok"),
    ("cache_write", "cache_write_mtok"),
    ("cache_write_1h", "cache_write_1h_mtok"),
)
_TOOL_FIELDS = (
    ("web_search", "web_searches_kcount"),
    ("file_search", "storage_searches_kcount"),
    ("code_execution", "code_executions_kcount"),
)


def _highest(prices: list[types.ModelPrice], field: str, input_tokens: int) -> int | None:
    """The highest rate of ``field`` among ``prices`` (the hour's alternatives)."""
    rates = [_rate(getattr(p, field, None), input_tokens) for p in prices]
    found = [_micros(r) for r in rates if r is not None]
    return max(found) if found else None


def _tier(prices: list[types.ModelPrice], above: int) -> PriceTier | None:
    """The rates of a call with more than ``above`` input tokens; None without input and
    output rates."""
    found = {name: _highest(prices, field, above + 1) for name, field in _TOKEN_FIELDS}
    input_rate, output_rate = found["input"], found["output"]
    if input_rate is None or output_rate is None:
        return None
    cached = found["cached_input"]
    write = found["cache_write"] if found["cache_write"] is not None else input_rate
    hour = found["cache_write_1h"]  # absent: 0, billed as a cache write (``Price``)
    return PriceTier(
        above_tokens=above,
        input=input_rate,
        output=output_rate,
        cached_input=cached if cached is not None else input_rate,
        cache_write=write,
        cache_write_1h=hour or 0,
    )


def _thresholds(prices: list[types.ModelPrice]) -> list[int]:
    starts = {
        tier.start
        for p in prices
        for _, field in _TOKEN_FIELDS
        if isinstance(value := getattr(p, field, None), types.TieredPrices)
        for tier in value.tiers
    }
    return sorted(starts)


def to_price(model: types.ModelInfo, day: date) -> Price | None:
    """The model's price on ``day``; None when it has no per-token input and output price.
    Where the rate depends on the hour, each rate is the highest of the day."""
    prices = _in_force(model, day)
    base = _tier(prices, -1)
    if base is None:
        return None
    tiers = tuple(t for above in _thresholds(prices) if (t := _tier(prices, above)) is not None)
    fees = tuple(
        ToolFee(tool, fee)
        for tool, field in _TOOL_FIELDS
        if (fee := _highest(prices, field, 0)) is not None
    )
    return Price(
        input=base.input,
        output=base.output,
        cached_input=base.cached_input,
        cache_write=base.cache_write,
        cache_write_1h=base.cache_write_1h,
        tiers=tiers,
        tools=fees,
    )


def _find(model: str) -> types.ModelInfo | None:
    try:
        return data_snapshot.get_snapshot().find_provider_model(model, None, None, None)[1]
    except LookupError:
        return None


def lookup(model: str, day: date | None = None) -> Price | None:
    """The price genai-prices gives ``model`` (matched as genai-prices matches names)."""
    info = _find(model)
    return None if info is None else to_price(info, day or datetime.now(UTC).date())


def canonical(model: str) -> str | None:
    """genai-prices' own id of ``model`` (``gpt-4.1`` for ``gpt-4.1-2025-04-14``), if it has one."""
    info = _find(model)
    return None if info is None else info.id


def listed_models() -> list[str]:
    """The token-priced models of the providers runcap speaks to natively."""
    today = datetime.now(UTC).date()
    snapshot = data_snapshot.get_snapshot()
    return [
        m.id
        for p in snapshot.providers
        if p.id in LISTED_PROVIDERS
        for m in p.models
        if to_price(m, today) is not None
    ]
