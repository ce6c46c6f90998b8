"""The pure budget core: reserve, settle, release, clamp. No temporalio, no clock, no I/O.

Why pure: the cap is the product's promise, so its arithmetic is tested on its own (unit and
property tests) and the workflow only calls it synchronously, which is what makes a reservation
atomic among interleaved update handlers.

Invariant: ``spent + reserved <= budget`` after every ``reserve``; a settle at or under its
reservation can only lower ``spent + reserved``. A settle above it is an overrun, counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from workflows.contracts import (
    TOKENS_PER_PRICE_UNIT,
    CallStatus,
    Price,
    PriceTier,
    Refusal,
    StepSpend,
    Target,
    Usage,
)
from workflows.legacy.contracts import (
    OpenCall,
    RunState,
)
from workflows.run_contracts import RunSpend

ALERT_THRESHOLDS = (50, 80, 100)
NO_STEP = "(none)"


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """An upper bound of a prompt's tokens: a token is at least one byte of text, and JSON adds
    more bytes than a chat template adds tokens, so the UTF-8 size of the prompt parts bounds it."""
    prompt = ("messages", "system", "input", "instructions", "tools", "tool_choice")
    parts = {k: body[k] for k in prompt if k in body}
    return len(json.dumps(parts, ensure_ascii=False).encode())


class BudgetExceeded(Exception):
    """The remaining budget cannot pay for even the smallest useful answer."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            f"budget exhausted: this call needs at least {refusal.needed_micros} micro-USD, "
            f"{refusal.remaining_micros} remain"
        )
        self.refusal = refusal

    @property
    def needed_micros(self) -> int:
        return self.refusal.needed_micros

    @property
    def remaining_micros(self) -> int:
        return self.refusal.remaining_micros


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def rates_at(price: Price, input_tokens: int) -> PriceTier:
    """The rates of a call with ``input_tokens`` of input (cache reads and writes included):
    those of the highest tier it is above, else the base rates."""
    rates = _base(price)
    for tier in price.tiers:
        if input_tokens > tier.above_tokens >= rates.above_tokens:
            rates = tier
    return rates


def _base(price: Price) -> PriceTier:
    return PriceTier(
        0, price.input, price.output, price.cached_input, price.cache_write, price.cache_write_1h
    )


def _hour_rate(rates: PriceTier) -> int:
    return rates.cache_write_1h or rates.cache_write


TOOL_COUNTS = {
    "web_search": "web_searches",
    "file_search": "file_searches",
    "code_execution": "code_executions",
}
"""The ``Usage`` count each ``ToolFee.tool`` bills."""


def uses_of(usage: Usage, tool: str) -> int:
    """How many uses of ``tool`` ``usage`` reports (0 for a tool runcap does not count)."""
    count = TOOL_COUNTS.get(tool)
    return int(getattr(usage, count)) if count else 0


def _fees(price: Price, usage: Usage) -> int:
    """Tool fees, scaled like token costs (micro-dollars times ``TOKENS_PER_PRICE_UNIT``)."""
    return sum(fee.per_thousand * 1000 * uses_of(usage, fee.tool) for fee in price.tools)


def _fee_bound(price: Price) -> int:
    """The most the call's tools can cost, scaled like ``_fees``: every use it may make."""
    return sum(fee.per_thousand * 1000 * fee.max_uses for fee in price.tools)


def fee_bound_micros(price: Price) -> int:
    """The most the call's tool uses can cost, in micro-dollars (rounded up)."""
    return _ceil_div(_fee_bound(price), TOKENS_PER_PRICE_UNIT)


def with_every_use(usage: Usage, price: Price) -> Usage:
    """``usage`` with each tool the call may use counted at its ``max_uses``: a cut call's
    provider may have made them all before reporting any."""
    most = {
        TOOL_COUNTS[fee.tool]: max(uses_of(usage, fee.tool), fee.max_uses)
        for fee in price.tools
        if fee.tool in TOOL_COUNTS
    }
    return replace(usage, **most)


def cost_micros(price: Price, usage: Usage) -> int:
    """The billed cost of ``usage`` at ``price``: every token at the rates of the tier its
    input falls in, plus tool fees per use; one rounding, always up.

    This is ``genai_prices.calc_price``'s arithmetic (tests/providers/test_price_crosscheck.py
    checks it to the micro-dollar), in integers."""
    total_input = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    rates = rates_at(price, total_input)
    hour = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    scaled = (
        usage.input_tokens * rates.input
        + usage.output_tokens * rates.output
        + usage.cached_input_tokens * rates.cached_input
        + (usage.cache_write_tokens - hour) * rates.cache_write
        + hour * _hour_rate(rates)
        + _fees(price, usage)
    )
    return _ceil_div(scaled, TOKENS_PER_PRICE_UNIT)


def dearest_rates(price: Price, input_tokens: int) -> tuple[int, int]:
    """The input and output rates a call of at most ``input_tokens`` of input can be billed at:
    the dearest of every tier it may fall in, and any input token may be a cache write (the
    caller cannot know how a provider will split input into cache reads and writes)."""
    tiers = [_base(price), *(t for t in price.tiers if input_tokens > t.above_tokens)]
    worst_input = max(max(t.input, t.cached_input, t.cache_write, _hour_rate(t)) for t in tiers)
    return worst_input, max(t.output for t in tiers)


Factors = Mapping[str, int]
"""Per ``provider/model``: output tokens a provider really returns per ``max_tokens`` asked,
in thousandths (absent: 1000, the provider honours ``max_tokens``)."""
NO_FACTORS: Factors = {}


def target_key(target: Target) -> str:
    return f"{target.provider}/{target.model}"


def _factor(target: Target, factors: Factors) -> int:
    return max(1000, factors.get(target_key(target), 1000))


def worst_case_micros(
    target: Target, input_tokens: int, max_tokens: int, factors: Factors = NO_FACTORS
) -> int:
    """The most one call to ``target`` can cost: every input token at the dearest input rate
    of any tier ``input_tokens`` reaches, the output a provider that ignores ``max_tokens`` has
    been seen to return at that tier's dearest output rate, and every tool use it may make."""
    output = _ceil_div(max_tokens * _factor(target, factors), 1000)
    input_rate, output_rate = dearest_rates(target.price, input_tokens)
    scaled = input_tokens * input_rate + output * output_rate + _fee_bound(target.price)
    return _ceil_div(scaled, TOKENS_PER_PRICE_UNIT)


def reservation_micros(
    chain: Sequence[Target], input_tokens: int, max_tokens: int, factors: Factors = NO_FACTORS
) -> int:
    """Any target of the chain may serve the call, so the call reserves the dearest."""
    return max(worst_case_micros(t, input_tokens, max_tokens, factors) for t in chain)


def affordable_max_tokens(
    chain: Sequence[Target], input_tokens: int, remaining: int, factors: Factors = NO_FACTORS
) -> int:
    """The largest ``max_tokens`` whose reservation fits in ``remaining`` (may be negative)."""
    best: int | None = None
    for target in chain:
        input_rate, output_rate = dearest_rates(target.price, input_tokens)
        room = (
            remaining * TOKENS_PER_PRICE_UNIT - input_tokens * input_rate - _fee_bound(target.price)
        )
        if output_rate > 0:
            outputs = room // output_rate  # output tokens the room pays for
            fits = outputs * 1000 // _factor(target, factors) if outputs >= 0 else -1
        else:
            fits = 1 << 40 if room >= 0 else -1
        best = fits if best is None else min(best, fits)
    return -1 if best is None else best


@dataclass(frozen=True)
class Plan:
    """What a call may do: its (possibly clamped) ``max_tokens`` and the amount it holds."""

    max_tokens: int
    reserved_micros: int


def plan_call(
    chain: Sequence[Target],
    input_tokens: int,
    max_tokens: int,
    min_output_tokens: int,
    remaining: int,
    factors: Factors = NO_FACTORS,
) -> Plan:
    """Clamp ``max_tokens`` to what ``remaining`` affords; refuse (``BudgetExceeded``, with what
    the call needs and what it asked for) below ``min_output_tokens``. The keeper adds its own
    figures (budget, spent, held) to the refusal."""
    floor = min(max_tokens, min_output_tokens)
    fits = affordable_max_tokens(chain, input_tokens, remaining, factors)
    if fits < floor or remaining <= 0:
        raise BudgetExceeded(
            Refusal(
                budget_micros=0,
                spent_micros=0,
                reserved_micros=0,
                remaining_micros=max(remaining, 0),
                needed_micros=reservation_micros(chain, input_tokens, floor, factors),
                requested_micros=reservation_micros(chain, input_tokens, max_tokens, factors),
                input_tokens=input_tokens,
                max_tokens=max_tokens,
                min_output_tokens=floor,
            )
        )
    granted = min(max_tokens, fits)
    return Plan(granted, reservation_micros(chain, input_tokens, granted, factors))


@dataclass(frozen=True)
class Figures:
    """A cap's figures as every view shows them: spent, held by calls in flight, remaining."""

    cap_micros: int
    spent_micros: int
    held_micros: int
    remaining_micros: int


def figures(cap_micros: int, spent_micros: int, held_micros: int) -> Figures:
    """The one place spent, held and remaining are derived: what is neither spent nor held by
    calls in flight remains (money lent out but unused is recalled before a refusal, so it is
    remaining too)."""
    remaining = max(cap_micros - spent_micros - held_micros, 0)
    return Figures(cap_micros, spent_micros, held_micros, remaining)


def settled_cost(status: CallStatus, price: Price, usage: Usage, known: bool, held: int) -> int:
    """What a finished call is billed; the run and its caller both price it with this.

    - ``ok`` with the provider's usage: that usage at the price (above ``held`` is an overrun);
      with no usage, or a $0 reading, the reservation: there are no free calls.
    - ``cancelled`` (the client left) and ``broken`` (the provider's stream broke): the caller's
      bound of what was received, never more than the reservation.
    - ``unknown`` (the caller went silent): the reservation, as the provider may have done it all.
    - ``failed``: nothing.
    """
    if status == "failed":
        return 0
    if status == "unknown":
        return held
    cost = cost_micros(price, usage)
    if status in ("cancelled", "broken"):
        return min(cost, held)
    return cost if known and cost > 0 else held


def _bump(table: dict[str, StepSpend], key: str, cost: int, usage: Usage) -> None:
    row = table.setdefault(key, StepSpend())
    row.calls += 1
    row.cost_micros += cost
    row.input_tokens += usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    row.output_tokens += usage.output_tokens


MAX_BREAKDOWN = 64
"""Steps (and models) a run breaks its spend down by; any beyond go to ``OTHER``, so a client
inventing step tags cannot grow the run's state."""
OTHER = "(other)"


def merge_spend(table: dict[str, StepSpend], more: Mapping[str, StepSpend]) -> None:
    """Add ``more`` into ``table``, keeping at most ``MAX_BREAKDOWN`` keys."""
    for key, spend in more.items():
        if key not in table and len(table) >= MAX_BREAKDOWN:
            key = OTHER
        row = table.setdefault(key, StepSpend())
        row.calls += spend.calls
        row.cost_micros += spend.cost_micros
        row.input_tokens += spend.input_tokens
        row.output_tokens += spend.output_tokens


def step_of(tags: Iterable[str]) -> str:
    """The call's ``step:`` tag, which the per-step breakdown is keyed by."""
    for tag in tags:
        if tag.startswith("step:"):
            return tag
    return NO_STEP


class Budget:
    """The run's money: settled spend and open reservations, both in ``RunState``."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    @property
    def reserved_micros(self) -> int:
        return sum(call.reserved_micros for call in self.state.open_calls.values())

    @property
    def remaining_micros(self) -> int:
        return self.state.budget_micros - self.state.spent_micros - self.reserved_micros

    def plan(
        self,
        chain: Sequence[Target],
        input_tokens: int,
        max_tokens: int,
        min_output_tokens: int,
        *,
        limit: int | None = None,
        factors: Factors = NO_FACTORS,
    ) -> Plan:
        """Clamp ``max_tokens`` to what the budget (and ``limit``, another cap's room) affords;
        refuse below ``min_output_tokens``."""
        remaining = self.remaining_micros if limit is None else min(self.remaining_micros, limit)
        floor = min(max_tokens, min_output_tokens)
        fits = affordable_max_tokens(chain, input_tokens, remaining, factors)
        if fits < floor or remaining <= 0:
            refusal = self.refusal(chain, input_tokens, max_tokens, floor, factors)
            refusal.remaining_micros = max(remaining, 0)
            raise BudgetExceeded(refusal)
        granted = min(max_tokens, fits)
        return Plan(granted, reservation_micros(chain, input_tokens, granted, factors))

    def refusal(
        self,
        chain: Sequence[Target],
        input_tokens: int,
        max_tokens: int,
        floor: int,
        factors: Factors = NO_FACTORS,
    ) -> Refusal:
        """The figures a refused call is told: what it needs, what the run has, what would fit."""
        state = self.state
        return Refusal(
            budget_micros=state.budget_micros,
            spent_micros=state.spent_micros,
            reserved_micros=self.reserved_micros,
            remaining_micros=max(self.remaining_micros, 0),
            needed_micros=reservation_micros(chain, input_tokens, floor, factors),
            requested_micros=reservation_micros(chain, input_tokens, max_tokens, factors),
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            min_output_tokens=floor,
            max_tokens_that_fit_budget=max(
                affordable_max_tokens(chain, input_tokens, state.budget_micros, factors), 0
            ),
        )

    def reserve(self, call_id: str, plan: Plan, about: OpenCall | None = None) -> OpenCall:
        """Hold ``plan.reserved_micros`` for ``call_id``; raises if that would pass the cap.

        ``about`` describes the call (caller, chain, tags, deadline) for the run's records.
        """
        if call_id in self.state.open_calls:
            raise ValueError(f"call {call_id} already holds a reservation")
        if plan.reserved_micros > self.remaining_micros:
            raise BudgetExceeded(
                Refusal(
                    budget_micros=self.state.budget_micros,
                    spent_micros=self.state.spent_micros,
                    reserved_micros=self.reserved_micros,
                    remaining_micros=max(self.remaining_micros, 0),
                    needed_micros=plan.reserved_micros,
                    requested_micros=plan.reserved_micros,
                    max_tokens=plan.max_tokens,
                )
            )
        held = replace(
            about or OpenCall("", 0, 0, [], [], "", "", ""),
            reserved_micros=plan.reserved_micros,
            max_tokens=plan.max_tokens,
        )
        self.state.open_calls[call_id] = held
        return held

    def held(self, call_id: str) -> int:
        """The reservation of an open call (0 when it has none)."""
        call = self.state.open_calls.get(call_id)
        return call.reserved_micros if call else 0

    def release(self, call_id: str) -> OpenCall | None:
        """Give a reservation back unspent (the call failed before any provider work)."""
        return self.state.open_calls.pop(call_id, None)

    def settle(self, call_id: str, cost: int, usage: Usage, tags: Sequence[str], model: str) -> int:
        """Turn a reservation into spend. Returns the overrun (0 when the cap held)."""
        held = self.state.open_calls.pop(call_id, None)
        return self._spend(cost, usage, tags, model, held.reserved_micros if held else 0)

    def settle_under(
        self,
        advance_id: str,
        cost: int,
        usage: Usage,
        tags: Sequence[str],
        model: str,
        reserved: int,
    ) -> int:
        """A call its caller reserved under an advance (holding ``reserved`` of it): the cost
        moves from the advance to spend. Returns the overrun."""
        advance = self.state.open_calls[advance_id]
        advance.reserved_micros -= min(cost, advance.reserved_micros)
        return self._spend(cost, usage, tags, model, reserved)

    def _spend(self, cost: int, usage: Usage, tags: Sequence[str], model: str, held: int) -> int:
        state = self.state
        state.spent_micros += cost
        state.calls += 1
        _bump(state.by_step, step_of(tags), cost, usage)
        _bump(state.by_model, model, cost, usage)
        overrun = max(0, cost - held)
        if overrun:
            state.overruns += 1
            state.overrun_micros += overrun
        return overrun

    def report(self, run_id: str) -> RunSpend:
        """The run's figures as the ``spend`` query answers them."""
        state = self.state
        return RunSpend(
            run_id=run_id,
            status=state.status,
            budget_micros=state.budget_micros,
            spent_micros=state.spent_micros,
            reserved_micros=self.reserved_micros,
            remaining_micros=max(self.remaining_micros, 0),
            calls=state.calls,
            failed_calls=state.failed_calls,
            overruns=state.overruns,
            overrun_micros=state.overrun_micros,
            by_step=state.by_step,
            by_model=state.by_model,
            open_calls={cid: c.reserved_micros for cid, c in state.open_calls.items()},
            settled_under={
                cid: list(c.settled_calls) for cid, c in state.open_calls.items() if c.advance
            },
        )

    def crossed_thresholds(self) -> list[int]:
        """Alert thresholds newly crossed by settled spend; each is reported once per run."""
        state = self.state
        if state.budget_micros <= 0:
            return []
        crossed = [
            pct
            for pct in ALERT_THRESHOLDS
            if pct not in state.alerted_thresholds
            and state.spent_micros * 100 >= pct * state.budget_micros
        ]
        state.alerted_thresholds.extend(crossed)
        return crossed
