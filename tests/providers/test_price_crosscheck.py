"""runcap's cost of a usage is genai-prices' to the micro-dollar, tiers and cache included.

The rounding rule: runcap bills a call its exact cost rounded up once, to the next micro-dollar
(``workflows.budget.cost_micros``); ``genai_prices.calc_price`` answers an exact Decimal in USD,
which is rounded up the same way here before the two are compared. Both are asked about the same
day, so a dated price change cannot make them differ.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_CEILING

import genai_prices
import pytest

from providers import price_catalogue
from workflows.budget import cost_micros
from workflows.contracts import MICROS_PER_USD, Usage

DAY = date(2026, 12, 7)

TABLE: list[tuple[str, Usage]] = [
    # The two calls issue 15 found billed at half price: long context above the tier.
    ("claude-sonnet-4-5", Usage(input_tokens=300_000, output_tokens=2_000)),
    ("gemini-2.5-pro", Usage(input_tokens=300_000, output_tokens=2_000)),
    # The tier is chosen by the whole input, cache reads and writes included; exactly at the
    # threshold is still the base tier.
    ("claude-sonnet-4-5", Usage(input_tokens=200_000, output_tokens=1_000)),
    ("claude-sonnet-4-5", Usage(input_tokens=200_001, output_tokens=1_000)),
    (
        "claude-sonnet-4-5",
        Usage(1_000, 500, cached_input_tokens=150_000, cache_write_tokens=49_000),
    ),
    (
        "claude-sonnet-4-5",
        Usage(1_000, 500, cached_input_tokens=150_000, cache_write_tokens=50_000),
    ),
    (
        "claude-sonnet-4-5",
        Usage(
            10,
            7_777,
            cached_input_tokens=180_000,
            cache_write_tokens=30_000,
            cache_write_1h_tokens=20_000,
            web_searches=3,
        ),
    ),
    ("claude-opus-4-8", Usage(12_345, 6_789, cached_input_tokens=98_765, cache_write_tokens=4_321)),
    ("claude-opus-4-8", Usage(3, 1, cache_write_tokens=5_000, cache_write_1h_tokens=5_000)),
    ("claude-opus-4-8", Usage(2_000, 800, web_searches=7)),
    ("claude-haiku-4-5", Usage(1, 1)),
    ("claude-haiku-5-5", Usage(99_999, 10_000, cached_input_tokens=1)),
    ("claude-haiku-5-5", Usage(60_000, 10_000, cached_input_tokens=40_001, cache_write_tokens=2)),
    ("gemini-2.5-pro", Usage(50_000, 3_000, cached_input_tokens=160_000)),
    ("gemini-1.5-flash", Usage(128_001, 4_096)),
    ("gpt-4.1", Usage(7_000, 3_333, cached_input_tokens=21_000, web_searches=2, file_searches=5)),
    ("gpt-4.1-mini", Usage(123_456, 654_321, cached_input_tokens=1_111)),
    ("gpt-5.5", Usage(272_000, 32_000)),
    ("gpt-5.5", Usage(100_000, 32_000, cached_input_tokens=172_001, web_searches=1)),
    ("gpt-5.6-luna", Usage(280_000, 9_999, cached_input_tokens=10_000, cache_write_tokens=9)),
    ("gpt-6.1-sol", Usage(5, 5, cached_input_tokens=300_000, cache_write_tokens=1_000)),
    ("o3", Usage(40_000, 25_000, cached_input_tokens=3_000, file_searches=1)),
    ("gpt-5.2", Usage(1, 0)),
]


def total_input(usage: Usage) -> int:
    return usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens


def genai_usage(usage: Usage) -> genai_prices.Usage:
    """The same usage as genai-prices counts it: its input includes cache reads and writes."""
    return genai_prices.Usage(
        input_tokens=total_input(usage),
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        web_searches=usage.web_searches,
        storage_searches=usage.file_searches,
        code_executions=usage.code_executions,
    )


def genai_micros(model: str, usage: Usage) -> int:
    """``calc_price``'s exact USD, rounded up to the micro-dollar as runcap rounds."""
    at = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
    total = genai_prices.calc_price(genai_usage(usage), model, genai_request_timestamp=at)
    return int((total.total_price * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def test_the_table_is_wide() -> None:
    """At least 20 usages, several models and providers, above and below tiers, cache reads
    and writes of both lengths and tool uses."""
    assert len(TABLE) >= 20
    assert len({model for model, _ in TABLE}) >= 10
    assert any(u.cache_write_1h_tokens for _, u in TABLE)
    assert any(u.web_searches for _, u in TABLE) and any(u.file_searches for _, u in TABLE)
    tiered = [
        (m, u)
        for m, u in TABLE
        if (p := price_catalogue.lookup(m, DAY)) is not None
        and any(total_input(u) > t.above_tokens for t in p.tiers)
    ]
    assert len(tiered) >= 8


@pytest.mark.parametrize(("model", "usage"), TABLE)
def test_cost_matches_genai_prices_to_the_micro_dollar(model: str, usage: Usage) -> None:
    """runcap's integer cost of the usage equals calc_price's Decimal, rounded up."""
    price = price_catalogue.lookup(model, DAY)
    assert price is not None
    assert cost_micros(price, usage) == genai_micros(model, usage)


def test_issue_examples_are_billed_in_full() -> None:
    """300K input and 2K output tokens: $1.845 on claude-sonnet-4-5 (was $0.93), $0.78 on
    gemini-2.5-pro (was $0.395)."""
    long_call = Usage(input_tokens=300_000, output_tokens=2_000)
    sonnet = price_catalogue.lookup("claude-sonnet-4-5", DAY)
    gemini = price_catalogue.lookup("gemini-2.5-pro", DAY)
    assert sonnet is not None and gemini is not None
    assert cost_micros(sonnet, long_call) == 1_845_000
    assert cost_micros(gemini, long_call) == 780_000
