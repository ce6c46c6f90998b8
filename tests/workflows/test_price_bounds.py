"""Tiered prices and tool fees in the pure budget core: billed exactly, reserved as a bound."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from providers.pricing import PriceBook
from workflows.budget import (
    affordable_max_tokens,
    cost_micros,
    rates_at,
    reservation_micros,
    settled_cost,
    with_every_use,
    worst_case_micros,
)
from workflows.contracts import Price, PriceTier, Target, ToolFee, Usage

LONG = PriceTier(200_000, 6_000_000, 22_500_000, 600_000, 7_500_000, 12_000_000)
SONNET = Price(
    3_000_000,
    15_000_000,
    300_000,
    3_750_000,
    cache_write_1h=6_000_000,
    tiers=(LONG,),
    tools=(ToolFee("web_search", 10_000_000),),
)


def test_a_call_above_the_threshold_bills_every_token_at_the_tier() -> None:
    """Above 200K input tokens (cache included) the whole call, output too, takes the tier's
    rates; at exactly 200K it is still the base tier."""
    assert rates_at(SONNET, 200_000).input == 3_000_000
    assert rates_at(SONNET, 200_001) == LONG
    at = Usage(input_tokens=100_000, output_tokens=1_000, cached_input_tokens=100_000)
    above = replace(at, cache_write_tokens=1)
    assert cost_micros(SONNET, at) == 300_000 + 30_000 + 15_000
    assert cost_micros(SONNET, above) == 600_000 + 60_000 + 22_500 + 8  # 7.5 rounds up


def test_one_hour_cache_writes_and_tool_uses_are_billed() -> None:
    """One-hour writes at their own rate (as 5-minute ones when the price has none); each
    web search at its fee."""
    usage = Usage(cache_write_tokens=100_000, cache_write_1h_tokens=40_000, web_searches=3)
    assert cost_micros(SONNET, usage) == 225_000 + 240_000 + 30_000
    flat = Price(1_000_000, 2_000_000, 100_000, 1_250_000)
    assert cost_micros(flat, usage) == 125_000


def test_reservation_takes_the_tier_of_the_input_bound_and_every_tool_use() -> None:
    """A call that may carry 300K input tokens reserves at the long-context tier's dearest
    input rate (a one-hour write) and output rate, plus its searches' fees."""
    searching = replace(SONNET, tools=(ToolFee("web_search", 10_000_000, max_uses=5),))
    target = Target("anthropic", "claude-sonnet-4-5", "anthropic", searching)
    assert worst_case_micros(target, 300_000, 2_000) == 3_600_000 + 45_000 + 50_000
    assert worst_case_micros(target, 100_000, 2_000) == 600_000 + 30_000 + 50_000


def test_affordable_max_tokens_pays_for_tools_and_the_tier() -> None:
    """The clamp leaves room for the tool fees and uses the tier's output rate."""
    searching = replace(SONNET, tools=(ToolFee("web_search", 10_000_000, max_uses=5),))
    chain = [Target("anthropic", "claude-sonnet-4-5", "anthropic", searching)]
    fits = affordable_max_tokens(chain, 300_000, 4_000_000)
    assert fits == (4_000_000 - 3_600_000 - 50_000) * 10**6 // 22_500_000
    assert (
        reservation_micros(chain, 300_000, fits)
        <= 4_000_000
        < reservation_micros(chain, 300_000, fits + 1)
    )


def test_a_cut_call_is_billed_every_tool_use_it_was_allowed() -> None:
    """A call cut short may have searched before reporting: its bound counts every use."""
    searching = replace(SONNET, tools=(ToolFee("web_search", 10_000_000, max_uses=4),))
    assert with_every_use(Usage(5, 5, web_searches=1), searching) == Usage(5, 5, web_searches=4)
    assert with_every_use(Usage(5, 5, web_searches=6), searching).web_searches == 6


def test_catalogue_reservations_cover_the_issue_examples() -> None:
    """A 300K-token prompt with 2K output reserves at least what genai-prices bills it."""
    book = PriceBook()
    for model, billed in (("claude-sonnet-4-5", 1_845_000), ("gemini-2.5-pro", 780_000)):
        target = Target("x", model, "openai", book.price_of(model))
        assert worst_case_micros(target, 300_000, 2_000) >= billed
        assert cost_micros(target.price, Usage(300_000, 2_000)) == billed


rates = st.integers(0, 100_000_000)
tiers = st.lists(
    st.builds(PriceTier, st.integers(0, 400_000), rates, rates, rates, rates, rates),
    max_size=3,
    unique_by=lambda t: t.above_tokens,
).map(lambda ts: tuple(sorted(ts, key=lambda t: t.above_tokens)))
fees = st.lists(
    st.builds(
        ToolFee,
        st.sampled_from(["web_search", "file_search", "code_execution"]),
        st.integers(0, 50_000_000),
        st.integers(0, 20),
    ),
    max_size=3,
    unique_by=lambda f: f.tool,
).map(tuple)
prices = st.builds(Price, rates, rates, rates, rates, rates, tiers, fees)


@st.composite
def call_and_usage(draw: st.DrawFn) -> tuple[Price, int, int, Usage]:
    """A price, a call's bounds (input, max_tokens), and any usage within those bounds."""
    price = draw(prices)
    input_bound = draw(st.integers(0, 500_000))
    max_tokens = draw(st.integers(1, 100_000))
    total = draw(st.integers(0, input_bound))
    cached = draw(st.integers(0, total))
    written = draw(st.integers(0, total - cached))
    uses = {fee.tool: draw(st.integers(0, fee.max_uses)) for fee in price.tools}
    usage = Usage(
        input_tokens=total - cached - written,
        output_tokens=draw(st.integers(0, max_tokens)),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        cache_write_1h_tokens=draw(st.integers(0, written)),
        web_searches=uses.get("web_search", 0),
        file_searches=uses.get("file_search", 0),
        code_executions=uses.get("code_execution", 0),
    )
    return price, input_bound, max_tokens, usage


@given(call_and_usage())
def test_reservation_is_never_below_the_settled_cost(case: tuple[Price, int, int, Usage]) -> None:
    """For any price (tiers in any order of cost, tool fees) and any usage within the call's
    input bound, ``max_tokens`` and tool uses, the reservation covers the settled cost."""
    price, input_bound, max_tokens, usage = case
    target = Target("p", "m", "openai", price)
    held = reservation_micros([target], input_bound, max_tokens)
    assert settled_cost("ok", price, usage, True, held) <= held
    assert cost_micros(price, usage) <= held


@given(call_and_usage(), st.integers(0, 10_000_000))
def test_what_affordable_max_tokens_grants_fits(
    case: tuple[Price, int, int, Usage], remaining: int
) -> None:
    """The clamp never grants a ``max_tokens`` whose reservation passes ``remaining``."""
    price, input_bound, _, _ = case
    chain = [Target("p", "m", "openai", price)]
    fits = min(affordable_max_tokens(chain, input_bound, remaining), 10**9)
    if fits >= 0:
        assert reservation_micros(chain, input_bound, fits) <= remaining
