"""The price book: genai-prices, runcap's models, overrides, exact money, no free calls."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from providers import price_catalogue
from providers.pricing import FreeModelRefused, PriceBook, UnknownModel, parse_price
from workflows.contracts import Price, PriceTier, ToolFee
from workflows.money import micros_to_usd, usd_to_micros

CURRENT_MODELS = [
    "claude-opus-4-8", "claude-sonnet-5", "claude-opus-5-5", "claude-haiku-4-5",
    "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "gpt-6.1-sol",
]  # fmt: skip


def test_prices_come_from_the_pinned_genai_prices() -> None:
    """The price table is genai-prices at the version pyproject pins, and says so."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    book = PriceBook()
    assert book.source == f"genai-prices {genai_prices.__version__}"
    assert f'"genai-prices=={genai_prices.__version__}"' in pyproject
    assert book.source_of("claude-opus-4-8") == book.source


@pytest.mark.parametrize("model", CURRENT_MODELS)
def test_current_models_have_cache_read_and_write_prices(model: str) -> None:
    """Today's agent models are priced, with cache reads below and cache writes above input."""
    price = PriceBook().price_of(model)
    assert 0 < price.cached_input < price.input < price.cache_write
    assert price.output > price.input


def test_decimal_prices_convert_exactly() -> None:
    """genai-prices' Decimals become micro-dollars exactly: rates, one-hour cache writes,
    long-context tiers and per-use tool fees."""
    book = PriceBook()
    search = ToolFee("web_search", 10_000_000)  # $10 per 1,000 searches
    assert book.price_of("claude-opus-4-8") == Price(
        5_000_000, 25_000_000, 500_000, 6_250_000, cache_write_1h=10_000_000, tools=(search,)
    )
    # Above 200K input tokens every token of the call bills at the tier's rates.
    assert book.price_of("claude-sonnet-4-5") == Price(
        3_000_000,
        15_000_000,
        300_000,
        3_750_000,
        cache_write_1h=6_000_000,
        tiers=(PriceTier(200_000, 6_000_000, 22_500_000, 600_000, 7_500_000, 12_000_000),),
        tools=(search,),
    )
    # No cache-write price: written tokens bill like input, the safe side.
    assert book.price_of("gpt-4.1-mini") == Price(
        400_000, 1_600_000, 100_000, 400_000, tools=(search, ToolFee("file_search", 2_500_000))
    )


def _rates(price: Price | None) -> tuple[int, int, int, int]:
    assert price is not None
    return price.input, price.output, price.cached_input, price.cache_write


def test_dated_and_hourly_prices() -> None:
    """A dated price change applies from its day; an off-peak discount is not relied on."""
    before = price_catalogue.lookup("gpt-5.6-sol", date(2026, 8, 20))
    after = price_catalogue.lookup("gpt-5.6-sol", date(2026, 8, 21))
    assert _rates(before) == (5_000_000, 30_000_000, 500_000, 6_250_000)
    assert _rates(after) == (4_000_000, 20_000_000, 400_000, 5_000_000)
    assert before is not None and after is not None
    assert before.tiers[0].input == 10_000_000 and after.tiers[0].input == 8_000_000
    # A dated change can drop the tiers: claude-sonnet-4-6 bills 1M context flat since March.
    assert price_catalogue.lookup("claude-sonnet-4-6", date(2026, 3, 12)).tiers  # type: ignore[union-attr]
    assert not price_catalogue.lookup("claude-sonnet-4-6", date(2026, 3, 13)).tiers  # type: ignore[union-attr]
    # deepseek-chat is cheaper off-peak; the full rate is billed at every hour.
    assert PriceBook().price_of("deepseek-chat").input == 270_000


def test_fake_prices_are_as_documented() -> None:
    """fake-small and fake-large are runcap's own models, with the prices tests rely on."""
    book = PriceBook()
    assert book.price_of("fake-small") == Price(500_000, 1_500_000, 500_000, 500_000)
    assert book.price_of("fake-large") == Price(5_000_000, 15_000_000, 500_000, 6_250_000)
    assert book.source_of("fake-small") == "runcap"
    assert {"fake-small", "fake-large", "claude-opus-4-8", "gpt-5.6-sol"} <= set(book.models())


def test_anthropic_cache_rates_follow_input() -> None:
    """Anthropic cache writes cost 1.25x input and cache reads 0.1x."""
    for model in ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "claude-opus-4-8"):
        price = PriceBook().price_of(model)
        assert price.cache_write * 4 == price.input * 5
        assert price.cached_input * 10 == price.input


def test_usd_to_micros_is_exact() -> None:
    """Decimal strings convert without rounding, down to one micro-dollar."""
    assert usd_to_micros("0.025") == 25_000
    assert usd_to_micros("18.75") == 18_750_000
    assert usd_to_micros(Decimal("0.000001")) == 1
    assert usd_to_micros(3) == 3_000_000


def test_usd_to_micros_refuses_floats_and_excess_precision() -> None:
    """Floats and sub-micro-dollar amounts are refused, never rounded."""
    with pytest.raises(TypeError):
        usd_to_micros(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more precise"):
        usd_to_micros("0.0000001")
    with pytest.raises(ValueError):
        usd_to_micros("NaN")
    with pytest.raises(ValueError):
        usd_to_micros("ten")


def test_micros_to_usd_has_six_decimals() -> None:
    """Micro-dollars render as exact six-decimal USD strings, sign included."""
    assert micros_to_usd(1_500_000) == "1.500000"
    assert micros_to_usd(0) == "0.000000"
    assert micros_to_usd(-5) == "-0.000005"
    assert micros_to_usd(123_456_789_012) == "123456.789012"


def test_lookup_strips_provider_prefix_and_date() -> None:
    """Prefixed and dated model names find their base model's price."""
    book = PriceBook()
    base = book.price_of("claude-sonnet-4-5")
    assert book.price_of("anthropic/claude-sonnet-4-5-20250929") == base
    assert book.price_of("gpt-4.1-2025-04-14") == book.price_of("gpt-4.1")
    assert book.price_of("openai/gpt-4.1-mini") == book.price_of("gpt-4.1-mini")


def test_unknown_model_is_refused_without_floor() -> None:
    """A model without a price raises UnknownModel with a message naming it."""
    with pytest.raises(UnknownModel, match="mystery-model"):
        PriceBook().price_of("mystery-model")


def test_floor_price_covers_unknown_and_free_models() -> None:
    """With a floor configured, unknown and zero-priced models bill at the floor."""
    floor = Price(input=1_000_000, output=2_000_000)
    book = PriceBook({"free-model": {"input": "0", "output": "0"}}, floor=floor)
    assert book.price_of("mystery-model") == floor
    assert book.price_of("free-model") == floor


def test_free_model_is_refused_without_floor() -> None:
    """A model priced at zero is refused: the budget could not cap it."""
    book = PriceBook({"free-model": {"input": "0.00", "output": "0"}})
    with pytest.raises(FreeModelRefused, match="free-model"):
        book.price_of("free-model")


def test_override_replaces_a_model_price(tmp_path: Path) -> None:
    """An override from a mapping or a JSON file replaces genai-prices' price whole."""
    override = {"gpt-4o": {"input": "1.00", "output": "4.00"}}
    book = PriceBook(override)
    assert book.price_of("gpt-4o") == Price(1_000_000, 4_000_000, 1_000_000, 1_000_000)
    assert book.price_of("openai/gpt-4o-2024-08-06") == book.price_of("gpt-4o")
    assert book.source_of("gpt-4o") == "overrides"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"my-model": {"input": "0.1", "output": "0.2"}}}))
    assert PriceBook(path).price_of("my-model").output == 200_000
    assert PriceBook(str(path)).knows("gpt-4o")


def test_bad_prices_are_rejected_with_the_model_name() -> None:
    """Malformed overrides fail loudly, naming the model."""
    with pytest.raises(ValueError, match="broken"):
        PriceBook({"broken": {"input": "1.0000001", "output": "1"}})
    with pytest.raises(ValueError, match="broken"):
        PriceBook({"broken": {"input": "1"}})
    with pytest.raises(ValueError, match="unknown price fields"):
        parse_price({"input": "1", "output": "1", "reasoning": "2"})
    with pytest.raises(ValueError, match="negative"):
        parse_price({"input": "-1", "output": "1"})


def test_overrides_give_tiers_one_hour_writes_and_tool_fees() -> None:
    """The README's overrides example: rates, a long-context tier and a per-search fee."""
    entry = {
        "input": "3.00",
        "output": "15.00",
        "cached_input": "0.30",
        "cache_write": "3.75",
        "cache_write_1h": "6.00",
        "tiers": [
            {
                "above_tokens": 200000,
                "input": "6.00",
                "output": "22.50",
                "cached_input": "0.60",
                "cache_write": "7.50",
                "cache_write_1h": "12.00",
            }
        ],
        "tools": {"web_search": "10.00"},
    }
    price = PriceBook({"my-model": entry}).price_of("my-model")
    assert price == PriceBook().price_of("claude-sonnet-4-5")
    bare = parse_price(
        {"input": "1", "output": "2", "tiers": [{"above_tokens": 5, "input": "3", "output": "4"}]}
    )
    assert bare.tiers == (PriceTier(5, 3_000_000, 4_000_000, 3_000_000, 3_000_000),)


def test_bad_tiers_and_tool_fees_are_rejected() -> None:
    """A tier without a threshold or rates, two tiers at one threshold, an unknown tool or a
    negative fee fail loudly."""
    base = {"input": "1", "output": "1"}
    bad: list[dict[str, object]] = [
        {"tiers": [{"input": "1", "output": "1"}]},
        {"tiers": [{"above_tokens": 10, "input": "1"}]},
        {"tiers": [{"above_tokens": 10, "input": "1", "output": "1", "speed": "2"}]},
        {"tiers": [{"above_tokens": 9, "input": "1", "output": "1"}] * 2},
        {"tiers": {"above_tokens": 9}},
        {"tools": {"image_generation": "1"}},
        {"tools": {"web_search": "-1"}},
        {"tools": ["web_search"]},
    ]
    for extra in bad:
        with pytest.raises(ValueError):
            parse_price({**base, **extra})
