"""The api process's settings, read once from ``RUNCAP_*`` variables and secret files.

One settings class per process: the api never reads the environment anywhere else, so tests
build a ``Settings`` by hand and pass it to ``create_app``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr

from api.output_limits import OUTPUT_TOKENS_CEILING
from api.wire import DEFAULT_MAX_OUTPUT_TOKENS
from settings import RuncapSettings
from workflows.contracts import TASK_QUEUE, Price
from workflows.money import usd_to_micros

MIB = 1024 * 1024


class Settings(RuncapSettings):
    """Everything the api needs to start; secrets are ``SecretStr`` so they never print."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    data_dir: Path = Path(".runcap")
    admin_key: SecretStr | None = None
    """Bearer token of ``/admin/*``; unset disables the admin endpoints (503)."""
    metrics_token: SecretStr | None = None
    """Bearer token ``GET /metrics`` asks for; unset (the usual scrape setup) asks for none."""
    temporal_connect_timeout_seconds: float = 5.0
    temporal_ui_url: str | None = None
    """The Temporal UI's address (``make run`` sets it): the dashboard links each run there."""
    max_body_bytes: int = 8 * MIB
    responses_default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    """The output bound of a Responses call that sets none (see ``api.wire``)."""
    max_output_tokens: int = Field(default=OUTPUT_TOKENS_CEILING, gt=0)
    """The most output tokens a call may ask for; a model's own limit, where known, is lower
    (``api.output_limits``). Past it a call gets a 400."""
    price_overrides_file: Path | None = None
    floor_price_input_per_mtok_usd: str | None = None
    """Price of a model missing from the table; unset refuses such models (no free calls)."""
    floor_price_output_per_mtok_usd: str | None = None
    routes_file: Path | None = None
    """JSON routes: which chain serves which model and tags (see ``api.routing``)."""
    workflow_task_queue: str = TASK_QUEUE
    run_idle_timeout_seconds: int = 3600
    run_caller_timeout_seconds: int = 30
    """An api instance silent this long is billed from its journal: what it recorded, and its
    calls that may have gone out at their reservations; the rest of its lines come back."""
    run_call_timeout_seconds: int = 900
    """No call holds money longer than this (the grant's deadline)."""
    idempotency_wait_seconds: float = Field(default=60.0, gt=0, le=60)
    """How long a retry waits for its ``Idempotency-Key``'s first request to end, before a 409
    ``idempotency_in_progress`` with Retry-After; the wait counts against the key's limits. At
    most 60 s: no request is held longer (Claude Code gives up past it)."""
    idempotency_purge_interval_seconds: float = Field(default=300.0, gt=0)
    """How often this instance deletes idempotent answers older than 24 h."""
    first_byte_timeout_seconds: float = 120.0
    """How long a provider may stay silent before the chain moves on; routes may override."""
    report_interval_seconds: float = 5.0
    """How often a line reports its calls' spend to its keeper (sooner when its room runs low):
    a run's ``RunCost`` lags by about this much; the ledger and ``/admin`` never do."""
    line_idle_seconds: float = 60.0
    """A line unused this long hands its room back (an agent's think time is shorter)."""
    max_concurrent_calls: int = Field(default=1000, gt=0)
    """Model calls in flight in this instance (streams until they end, retries waiting on an
    ``Idempotency-Key`` too); past it a call gets 503 with Retry-After."""
    server_limit_concurrency: int | None = Field(default=None, gt=0)
    """Connections and requests uvicorn holds at once, past which a request gets its plain 503;
    default: twice ``max_concurrent_calls`` and 100 (pooled idle connections count too), so the
    gateway's own 503 comes first."""
    server_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request's headers must arrive within this (a connection that sends none is closed)."""
    server_max_header_bytes: int = Field(default=64 * 1024, gt=0)
    """Larger request headers get 431."""
    server_keep_alive_seconds: int = Field(default=75, gt=0)
    """How long an idle kept-alive connection stays open. Longer than an agent's pause between
    calls, so its SDK's pooled connection is not closed under it (uvicorn's default of 5 s
    races with reuse and drops requests)."""
    forwarded_allow_ips: str | None = None
    """Proxies whose ``X-Forwarded-Proto``/``-For`` are believed (uvicorn's
    ``forwarded_allow_ips``: addresses or networks, comma-separated, or ``*``); unset, only
    127.0.0.1 (or ``FORWARDED_ALLOW_IPS``)."""
    public_url: str | None = None
    """The api as browsers reach it (``https://runcap.example.com``); https makes the dashboard's
    session cookie Secure whatever the hop from a proxy says."""
    key_cache_ttl_seconds: float = 1.0
    """How long a key's policy is reused; an edit through another instance lands within it."""
    unknown_key_cache_seconds: float = 10.0
    """How long a secret that matched no active key is refused without a database lookup."""
    unknown_key_cache_size: int = Field(default=10_000, gt=0)
    """How many such secrets are remembered (the oldest forgotten first)."""
    revocation_poll_seconds: float = 0.25
    """How often each instance looks for keys revoked through another one."""
    limit_slot_lease_seconds: float = 15.0
    """How long the parallel-call slots of an api instance that died still count."""
    limit_renew_seconds: float = 5.0
    """How often an instance renews the leases of its parallel-call slots (one statement)."""
    http_timeout_seconds: float = 300.0
    """Longest silence between two chunks of an answer being read."""
    http_max_connections: int = 512

    def floor_price(self) -> Price | None:
        """The price of an unpriced model, when one is configured (else such models are refused)."""
        if (
            self.floor_price_input_per_mtok_usd is None
            or self.floor_price_output_per_mtok_usd is None
        ):
            return None
        return Price(
            input=usd_to_micros(self.floor_price_input_per_mtok_usd),
            output=usd_to_micros(self.floor_price_output_per_mtok_usd),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, parsed once."""
    return Settings.load()
