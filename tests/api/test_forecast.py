"""The burn rate and the cap's forecast: exact integer arithmetic, and the ledger window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session

from api.forecast import MIN_SPAN, WINDOW, burn, run_forecast, window_spend
from db.models import LedgerEntry
from workflows.run_contracts import RunSpend

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def test_rate_and_cap_over_the_whole_window() -> None:
    """$3 settled over the full ten minutes is $0.30/min; $1.50 left lasts exactly five."""
    old_run = NOW - timedelta(hours=2)
    forecast = burn(3_000_000, old_run, NOW, remaining_micros=1_500_000)
    assert forecast.span == WINDOW
    assert forecast.rate_usd_per_minute == Decimal("0.300000")
    assert forecast.to_cap == timedelta(minutes=5)
    assert forecast.cap_at == datetime(2026, 12, 7, 15, 5, tzinfo=UTC)
    assert forecast.json() == {
        "window_seconds": 600,
        "window_spent_usd": "3.000000",
        "burn_usd_per_minute": "0.300000",
        "cap_at": "2026-12-07T15:05:00+00:00",
        "seconds_to_cap": 300,
    }


def test_a_young_run_burns_over_its_own_age() -> None:
    """A run whose first call started 4 minutes ago spreads its spend over 4 minutes, not 10."""
    forecast = burn(1_000_000, NOW - timedelta(minutes=4), NOW, remaining_micros=7_000_000)
    assert forecast.rate_usd_per_minute == Decimal("0.250000")
    assert forecast.to_cap == timedelta(minutes=28)


def test_the_first_seconds_count_as_a_minute() -> None:
    """One call a second old is read over ``MIN_SPAN``, not as a rate 60 times its cost."""
    forecast = burn(60_000, NOW - timedelta(seconds=1), NOW, remaining_micros=120_000)
    assert forecast.span == MIN_SPAN
    assert forecast.rate_usd_per_minute == Decimal("0.060000")
    assert forecast.to_cap == timedelta(minutes=2)


def test_rounding_is_half_up_to_the_micro_dollar_and_the_eta_floors() -> None:
    """1 micro-dollar over 3 minutes shows as $0.000000/min (a third rounds down), 2 over 3
    as $0.000001 (two thirds round up); the time to the cap is floored to the microsecond."""
    start = NOW - timedelta(minutes=3)
    assert burn(1, start, NOW, 10).rate_usd_per_minute == Decimal("0.000000")
    assert burn(2, start, NOW, 10).rate_usd_per_minute == Decimal("0.000001")
    thirds = burn(3, start, NOW, remaining_micros=1)
    assert thirds.to_cap == timedelta(minutes=1)
    assert burn(7, start, NOW, remaining_micros=1).to_cap == timedelta(microseconds=25_714_285)


def test_no_forecast_without_burn_or_cap() -> None:
    """An idle run, or one with no cap, has a rate but no time to its cap; one at its cap is
    due now."""
    idle = burn(0, NOW - timedelta(hours=1), NOW, remaining_micros=5_000_000)
    assert idle.rate_usd_per_minute == Decimal("0.000000")
    assert idle.cap_at is None and idle.json()["seconds_to_cap"] is None
    uncapped = burn(1_000_000, None, NOW, remaining_micros=0, capped=False)
    assert uncapped.rate_usd_per_minute == Decimal("0.100000") and uncapped.cap_at is None
    full = burn(1_000_000, None, NOW, remaining_micros=0)
    assert full.cap_at == NOW and full.json()["seconds_to_cap"] == 0


def _row(run_id: str, call: str, cost: int, started: datetime, settled: datetime) -> LedgerEntry:
    return LedgerEntry(
        call_id=call,
        run_id=run_id,
        key_id="key_0123456789abcdef",
        cost_micros=cost,
        started_at=started,
        settled_at=settled,
    )


def test_window_spend_reads_the_runs_settled_money(engine: Engine) -> None:
    """Only the run's rows settled in the last ten minutes count; its first call's start is
    its oldest row's, on SQLite and PostgreSQL."""
    run = "key_0123456789abcdef.forecast"
    minute = timedelta(minutes=1)
    with Session(engine) as session:
        session.add(_row(run, "c1", 500_000, NOW - 30 * minute, NOW - 29 * minute))
        session.add(_row(run, "c2", 1_000_000, NOW - 9 * minute, NOW - 8 * minute))
        session.add(_row(run, "c3", 2_000_000, NOW - 2 * minute, NOW - minute))
        session.add(_row("key_0123456789abcdef", "c4", 9_000_000, NOW - minute, NOW))
        session.commit()
    with engine.connect() as conn:
        assert window_spend(conn, [run], NOW) == (3_000_000, NOW - 30 * minute)
        assert window_spend(conn, ["key_0123456789abcdef.none"], NOW) == (0, None)
        both = window_spend(conn, [run, "key_0123456789abcdef"], NOW)
        assert both == (12_000_000, NOW - 30 * minute)
    spend = RunSpend(run, "open", 10_000_000, 3_500_000, 0, 6_500_000, 3, 0, 0, 0, {}, {})
    forecast = run_forecast(engine, spend, NOW)
    assert forecast.rate_usd_per_minute == Decimal("0.300000")
    assert forecast.cap_at == NOW + timedelta(seconds=1300)
