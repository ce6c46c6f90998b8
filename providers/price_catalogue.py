"""Model prices from Pydantic's ``genai-prices`` package, converted exactly to micro-dollars.

Why a package: a hand-kept table goes stale within weeks (Claude Code's and Codex's default
models were missing from ours); genai-prices is kept current by its maintainers, cache read and
write prices included, and its version pins what a deployment bills with. Only its bundled
snapshot is used: runcap never lets it fetch newer prices at run time.

runcap bills one price per model, so from genai-prices' richer data it takes:
- the base tier of tiered prices (the rate below the first threshold, such as 200K or 272K
  input tokens); a long-context call is billed at the base rate;
- the standard service tier (no batch, flex or priority variants);
- of dated price changes, the one in force on the day of the lookup; where the rate depends on
  the hour (off-peak discounts), the highest rate of the day, so a call is never under-billed;
- cache writes at the default (5-minute) rate, and reasoning tokens at the output rate.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot, types

from workflows.contracts import MICROS_PER_USD, Price

SOURCE = f"genai-prices {genai_prices.__version__}"
LISTED_PROVIDERS = ("anthropic", "openai")
"""Whose models ``GET /v1/models`` lists; any other provider's model is still priced."""


def _micros(value: Any) -> int | None:
    """USD per million tokens as micro-dollars. The data holds a few float artefacts such as
    0.18000000000000002; they round to the nearest micro-dollar, never through a float."""
    if isinstance(value, types.TieredPrices):
        value = value.base
    if not isinstance(value, Decimal):
        return None
    return int((value * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


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


_FIELDS = (
    ("input", "input_mtok"),
    ("output", "output_mtok"),
    ("cached_input", "cache_read_mtok"),
    ("cache_write", "cache_write_mtok"),
)


def to_price(model: types.ModelInfo, day: date) -> Price | None:
    """The model's price on ``day``; None when it has no per-token input and output price.
    Where the rate depends on the hour, each rate is the highest of the day."""
    found: dict[str, int | None] = {name: None for name, _ in _FIELDS}
    for prices in _in_force(model, day):
        for name, field in _FIELDS:
            value = _micros(getattr(prices, field, None))
            old = found[name]
            found[name] = value if old is None or (value is not None and value > old) else old
    input_price, output_price = found["input"], found["output"]
    if input_price is None or output_price is None:
        return None
    # A missing cache rate is billed like plain input: the safe side for a cap.
    return Price(
        input=input_price,
        output=output_price,
        cached_input=found["cached_input"] if found["cached_input"] is not None else input_price,
        cache_write=found["cache_write"] if found["cache_write"] is not None else input_price,
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
