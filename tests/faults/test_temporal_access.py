"""Temporal access is admin access (issue 15): who can reach the topology's Temporal.

On the production stack (``make prod-check``) the server requires mTLS as compose's does: a
client without a certificate from deploy/make-secrets.sh's CA is refused, so the attack of the
issue (``temporal workflow update execute --name top_up``, lifting a run's cap to $1,000,000)
fails. The worker and the api connect with the client certificate: the rest of the fault suite
running on this stack shows they work. On the dev stack (``make run``), the same command works:
the README's warning about ``make run`` is a fact, and this keeps it one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from prodcheck import compose
from prodcheck.stack import Stack
from settings.temporal import TemporalUnreachable, load_target
from tests.faults.conftest import KIND
from tests.faults.gateway import Gateway
from tests.faults.money import run_spend
from worker.temporal_cli import ensure_temporal_cli
from workflows.run_contracts import workflow_id

pytestmark = pytest.mark.prod
production_only = pytest.mark.skipif(KIND != "production", reason="mTLS: production stack only")
ATTACK_MICROS = 1_000_000_000_000
"""$1,000,000: the issue's ``--input '{"amount_micros":1000000000000}'``."""
CONNECT_SECONDS = 30.0


def _tls_env(
    stack: Stack, *, ca: Path | None = None, cert_dir: Path | None = None
) -> dict[str, str]:
    """Temporal's client variables for the topology's server: TLS when ``ca`` is given,
    a client certificate when ``cert_dir`` holds one; no profile from our home."""
    env = {"TEMPORAL_ADDRESS": stack.temporal_address, "TEMPORAL_CONFIG_FILE": os.devnull}
    if ca is not None:
        env |= {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca), "TEMPORAL_TLS_SERVER_NAME": "temporal"}
    if cert_dir is not None:
        env |= {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert_dir / "temporal_client_cert"),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(cert_dir / "temporal_client_key"),
        }
    return env


async def _refused(env: dict[str, str]) -> str:
    """The reason a client with ``env`` could not connect (the test fails if it could)."""
    with pytest.raises(TemporalUnreachable) as refused:
        await load_target(environ=env).connect(within=CONNECT_SECONDS)
    return str(refused.value)


@production_only
async def test_a_client_without_the_certificate_is_refused(stack: Stack, tmp_path: Path) -> None:
    """Plaintext, TLS without a client certificate, and a certificate from another CA are all
    refused; the api's own configuration (the client certificate) connects."""
    ca = stack.secret_files / "temporal_ca_cert"
    await _refused(_tls_env(stack))
    await _refused(_tls_env(stack, ca=ca))
    # A look-alike: a CA and client certificate made by the same script, elsewhere.
    foreign = tmp_path / "foreign"
    await asyncio.to_thread(
        subprocess.run,
        ["/bin/sh", str(compose.MAKE_SECRETS), str(foreign)],
        check=True,
        capture_output=True,
    )
    await _refused(_tls_env(stack, ca=ca, cert_dir=foreign))
    target = stack.temporal_target("api")
    assert target.security == "mTLS"
    client = await target.connect(within=CONNECT_SECONDS)
    assert await client.service_client.check_health()


def _top_up(stack: Stack, run_id: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """The issue's attack with the Temporal CLI, from a shell with no Temporal settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    argv = [
        str(ensure_temporal_cli()), "workflow", "update", "execute",
        "--address", stack.temporal_address, "--disable-config-file",
        "--command-timeout", "30s", "--workflow-id", workflow_id(run_id),
        "--name", "top_up", "--input", json.dumps({"amount_micros": ATTACK_MICROS}),
        *flags,
    ]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


async def _open_run(gateway: Gateway) -> tuple[str, int]:
    """A run with one answered call: its id and its budget."""
    key = await gateway.create_key("0.002")
    task = uuid.uuid4().hex[:8]
    assert (await gateway.chat(key, task)).ok
    run_id = f"{key.id}.{task}"
    return run_id, (await run_spend(gateway.temporal, run_id)).budget_micros


@production_only
async def test_top_up_without_the_client_certificate_fails(gateway: Gateway) -> None:
    """The issue's top_up fails in plaintext and over TLS without a client certificate, and
    the run's budget stays as it was; with the certificate the same command is accepted (so
    the certificate, not the command, is what stops it)."""
    stack = gateway.stack
    run_id, budget = await _open_run(gateway)
    ca = str(stack.secret_files / "temporal_ca_cert")
    tls = ["--tls-ca-path", ca, "--tls-server-name", "temporal"]
    for flags in ([], tls):
        done = await asyncio.to_thread(_top_up, stack, run_id, *flags)
        assert done.returncode != 0, (flags, done.stdout)
        assert (await run_spend(gateway.temporal, run_id)).budget_micros == budget
    cert = ["--tls-cert-path", str(stack.secret_files / "temporal_client_cert")]
    key = ["--tls-key-path", str(stack.secret_files / "temporal_client_key")]
    done = await asyncio.to_thread(_top_up, stack, run_id, *tls, *cert, *key)
    assert done.returncode == 0, done.stderr
    assert (await run_spend(gateway.temporal, run_id)).budget_micros == budget + ATTACK_MICROS


@pytest.mark.skipif(KIND != "dev", reason="the dev server of make run only")
async def test_on_the_dev_server_whoever_reaches_the_port_can_top_up(gateway: Gateway) -> None:
    """make run's dev server is plaintext with no authentication: the same command, with no
    credentials at all, lifts the run's budget (what the README warns about)."""
    run_id, budget = await _open_run(gateway)
    done = await asyncio.to_thread(_top_up, gateway.stack, run_id)
    assert done.returncode == 0, done.stderr
    assert (await run_spend(gateway.temporal, run_id)).budget_micros == budget + ATTACK_MICROS
