"""The data converter with cached type hints decodes exactly as Temporal's default one."""

from __future__ import annotations

from temporalio.converter import DataConverter

from workflows.contracts import (
    Attempt,
    Price,
    Target,
    Usage,
)
from workflows.converter import DATA_CONVERTER
from workflows.legacy.contracts import (
    Grant,
    OpenCall,
    ReserveRequest,
    RunState,
    SettleBatch,
    Settlement,
)
from workflows.run_contracts import RunInput

TARGET = Target("fake", "fake-small", "openai", Price(1, 2, 3, 4))


def test_contracts_decode_the_same_with_cached_hints() -> None:
    """Grants, requests, settle batches and run state (nested dataclasses, dicts, optionals)
    come back equal, and equal to what the default converter gives."""
    held = OpenCall("c", 5, 10, [TARGET], ["step:a"], "m", "t0", "t1", ["day:2026-11-28"])
    values: list[object] = [
        Grant("c", [TARGET], 100, 123, "2026-01-01T00:00:00+00:00", 1, 2, 3),
        ReserveRequest("c", "x", [TARGET, TARGET], 100, 40, "m", ["a"], fingerprint="f"),
        SettleBatch(
            "x",
            [Settlement("c", "ok", TARGET, Usage(1, 2, 3, 4), True, [Attempt("p", "m", True)])],
        ),
        RunInput("r", 10, state=RunState(budget_micros=10, open_calls={"c": held})),
    ]
    for value in values:
        encoded = DATA_CONVERTER.payload_converter.to_payloads([value])
        ours = DATA_CONVERTER.payload_converter.from_payloads(encoded, [type(value)])[0]
        theirs = DataConverter.default.payload_converter.from_payloads(encoded, [type(value)])[0]
        assert ours == value == theirs
