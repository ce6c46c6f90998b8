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
from dataclasses import dataclass
from typing import Any

from workflows.contracts import (
    TOKENS_PER_PRICE_UNIT,
    Price,
    RunSpend,
    RunState,
    StepSpend,
    Target,
    Usage,
)

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

    def __init__(self, needed_micros: int, remaining_micros: int) -> None:
        super().__init__(
            f"budget exhausted: this call needs at least {needed_micros} micro-USD, "
            f"{remaining_micros} remain"
        )
        self.needed_micros = needed_micros
        self.remaining_micros = remaining_micros


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cost_micros(price: Price, usage: Usage) -> int:
    """The billed cost of ``usage`` at ``price``: one rounding, always up."""
    scaled = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cached_input_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
    )
    return _ceil_div(scaled, TOKENS_PER_PRICE_UNIT)


def _worst_input_price(price: Price) -> int:
    # The caller cannot know how a provider will split input into cache reads and writes.
    return max(price.input, price.cached_input, price.cache_write)


def worst_case_micros(target: Target, input_tokens: int, max_tokens: int) -> int:
    """The most one call to ``target`` can cost: every input token at the dearest input rate."""
    scaled = input_tokens * _worst_input_price(target.price) + max_tokens * target.price.output
    return _ceil_div(scaled, TOKENS_PER_PRICE_UNIT)


def reservation_micros(chain: Sequence[Target], input_tokens: int, max_tokens: int) -> int:
    """Any target of the chain may serve the call, so the call reserves the dearest."""
    return max(worst_case_micros(t, input_tokens, max_tokens) for t in chain)


def affordable_max_tokens(chain: Sequence[Target], input_tokens: int, remaining: int) -> int:
    """The largest ``max_tokens`` whose reservation fits in ``remaining`` (may be negative)."""
    best: int | None = None
    for target in chain:
        room = remaining * TOKENS_PER_PRICE_UNIT - input_tokens * _worst_input_price(target.price)
        if target.price.output > 0:
            fits = room // target.price.output
        else:
            fits = 1 << 40 if room >= 0 else -1
        best = fits if best is None else min(best, fits)
    return -1 if best is None else best


@dataclass(frozen=True)
class Plan:
    """What a call may do: its (possibly clamped) ``max_tokens`` and the amount it holds."""

    max_tokens: int
    reserved_micros: int


def _bump(table: dict[str, StepSpend], key: str, cost: int, usage: Usage) -> None:
    row = table.setdefault(key, StepSpend())
    row.calls += 1
    row.cost_micros += cost
    row.input_tokens += usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
    row.output_tokens += usage.output_tokens


def step_of(tags: Iterable[str]) -> str:
    """The call's ``step:`` tag, which the per-step breakdown is keyed by."""
    for tag in tags:
        if tag.startswith("step:"):
            return tag
    return NO_STEP


class Budget:
    """The run's money: settled spend lives in ``RunState``; reservations live here."""

    def __init__(self, state: RunState, reservations: dict[str, int] | None = None) -> None:
        self.state = state
        self.reservations: dict[str, int] = dict(reservations or {})

    @property
    def reserved_micros(self) -> int:
        return sum(self.reservations.values())

    @property
    def remaining_micros(self) -> int:
        return self.state.budget_micros - self.state.spent_micros - self.reserved_micros

    def plan(
        self, chain: Sequence[Target], input_tokens: int, max_tokens: int, min_output_tokens: int
    ) -> Plan:
        """Clamp ``max_tokens`` to what the budget affords; refuse below ``min_output_tokens``."""
        remaining = self.remaining_micros
        floor = min(max_tokens, min_output_tokens)
        fits = affordable_max_tokens(chain, input_tokens, remaining)
        if fits < floor or remaining <= 0:
            needed = reservation_micros(chain, input_tokens, floor)
            raise BudgetExceeded(needed, max(remaining, 0))
        granted = min(max_tokens, fits)
        return Plan(granted, reservation_micros(chain, input_tokens, granted))

    def reserve(self, call_id: str, plan: Plan) -> None:
        """Hold ``plan.reserved_micros``; raises if that would pass the cap."""
        if call_id in self.reservations:
            raise ValueError(f"call {call_id} already holds a reservation")
        if plan.reserved_micros > self.remaining_micros:
            raise BudgetExceeded(plan.reserved_micros, max(self.remaining_micros, 0))
        self.reservations[call_id] = plan.reserved_micros

    def release(self, call_id: str) -> int:
        """Give a reservation back unspent (failed call, caller gone)."""
        return self.reservations.pop(call_id, 0)

    def settle(self, call_id: str, cost: int, usage: Usage, tags: Sequence[str], model: str) -> int:
        """Turn a reservation into spend. Returns the overrun (0 when the cap held)."""
        held = self.reservations.pop(call_id, 0)
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
