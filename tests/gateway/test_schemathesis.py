"""schemathesis over every operation of ``/openapi.json``, against the real app on 127.0.0.1
with the fake provider behind it: no server error, and no failed check that is not accepted,
with its reason, in ``schemathesis_accepted.toml``."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err

from tests.gateway.conftest import ADMIN_KEY, Gateway

ACCEPTED_FILE = Path(__file__).with_name("schemathesis_accepted.toml")
EXAMPLES = 30
"""Per operation and mode (valid and invalid data): bounded, so the suite stays quick."""
NEVER_ACCEPTED = {"not_a_server_error"}


@dataclass(frozen=True)
class Found:
    """One distinct failure: where, in which mode, which check, and an example of it."""

    operation: str
    mode: str
    check: str
    title: str
    example: str


def accepted() -> dict[str, dict[str, str]]:
    """``{operation: {check: reason}}`` from the accepted file."""
    entries: list[dict[str, str]] = tomllib.loads(ACCEPTED_FILE.read_text())["accepted"]
    table: dict[str, dict[str, str]] = {}
    for entry in entries:
        table.setdefault(entry["operation"], {})[entry["check"]] = entry["reason"]
    return table


def credentials(path: str, virtual_key: str) -> dict[str, str]:
    """What a real client sends: the admin key on /admin, a virtual key on /v1 (as x-api-key
    on Anthropic's paths, as Claude Code does)."""
    if path.startswith("/admin"):
        return {"Authorization": f"Bearer {ADMIN_KEY}"}
    if path.startswith("/v1/messages"):
        return {"x-api-key": virtual_key}
    return {"Authorization": f"Bearer {virtual_key}"}


def fuzz(base_url: str, virtual_key: str, skip: dict[str, dict[str, str]]) -> list[Found]:
    """Every operation, valid and invalid data, every check but the accepted ones."""
    load_all_checks()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=schemathesis.Config())

    @schema.auth(refresh_interval=None)
    class Keys:
        """Credentials come from here, so schemathesis neither generates nor mangles them
        (its ``ignored_auth`` check still proves that requests without them are refused)."""

        def get(self, case: Any, ctx: Any) -> dict[str, str]:
            return credentials(case.operation.path, virtual_key)

        def set(self, case: Any, data: dict[str, str], ctx: Any) -> None:
            case.headers = {**(case.headers or {}), **data}

    session = requests.Session()
    found: dict[tuple[str, str, str, str], Found] = {}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is invalid
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        accepted_here = skip.get(label, {})
        checks = [c for c in CHECKS.get_all() if c.__name__ not in accepted_here]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, auth_storage=schema.auth)
            for failure in examples(strategy, base_url, session, checks):
                found.setdefault(
                    (label, mode.value, failure.check, failure.title),
                    replace(failure, operation=label, mode=mode.value),
                )
    return list(found.values())


def examples(strategy: Any, base_url: str, session: Any, checks: list[Any]) -> list[Found]:
    """Up to ``EXAMPLES`` generated cases (a fixed seed), sent and checked; every failure is
    kept and none stops the run, so one report shows them all."""
    failures: list[Found] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=base_url, session=session, checks=checks, timeout=60)
        except FailureGroup as group:
            for failure in group.exceptions:
                check = ",".join(getattr(failure, "checks", ())) or type(failure).__name__
                sent = f"query={case.query!r} body={case.body!r}"[:300]
                example = f"{sent} -> {failure.message[:400]}"
                failures.append(Found("", "", check, failure.title, example))

    run()
    return failures


def test_the_accepted_list_gives_a_reason_for_each() -> None:
    """Every accepted failure has a reason, and a server error is never accepted."""
    load_all_checks()
    for operation, checks in accepted().items():
        for check, reason in checks.items():
            assert check not in NEVER_ACCEPTED, (operation, check)
            assert check in CHECKS.get_all_names(), (operation, check)
            assert len(reason.split()) >= 5, (operation, check)


async def test_schemathesis_finds_nothing_unaccepted(gateway: Gateway) -> None:
    """No 5xx and no failed check beyond the accepted list, over every documented operation."""
    key = await gateway.create_key(name="schemathesis", budget_usd="1000")
    # Hypothesis drives a blocking HTTP client: in a thread, so this loop keeps serving.
    found = await asyncio.to_thread(fuzz, gateway.base_url, key["key"], accepted())
    report = "\n".join(
        f"{f.operation} [{f.mode}] {f.check}: {f.title}\n  {f.example}" for f in found
    )
    assert found == [], report
