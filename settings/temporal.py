"""How every runcap process reaches Temporal: Temporal's own environment configuration.

Why Temporal's (``temporalio.envconfig``) rather than settings of our own: the Temporal CLI and
every Temporal SDK read the same variables and TOML profiles, so a secured cluster or Temporal
Cloud is configured once, the way its operator already knows:

- ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY`` (which turns TLS on),
  ``TEMPORAL_TLS`` (``true``/``false``) and ``TEMPORAL_TLS_*``: ``CLIENT_CERT_PATH``,
  ``CLIENT_KEY_PATH``, ``SERVER_CA_CERT_PATH`` (or ``*_DATA`` with the PEM itself) and
  ``SERVER_NAME``; ``TEMPORAL_GRPC_META_*`` for headers;
- a TOML profile: ``TEMPORAL_CONFIG_FILE`` (else ``~/.config/temporalio/temporal.toml``) and
  ``TEMPORAL_PROFILE`` (else ``default``). A variable wins over the file.

runcap's older names stay as aliases, and win when set: ``RUNCAP_TEMPORAL_ADDRESS`` over
``TEMPORAL_ADDRESS``, ``RUNCAP_TEMPORAL_NAMESPACE`` over ``TEMPORAL_NAMESPACE``. The more specific
name wins: it was set for runcap, while a ``TEMPORAL_ADDRESS`` may be left in a shell for other
tools. With nothing set at all, runcap reaches the plaintext dev server of ``make run`` on
``127.0.0.1:7233``.

Two runcap rules apply on top: an empty variable is unset (compose passes ``${X:-}``), and a
``TEMPORAL_CONFIG_FILE`` that does not exist is an error, not a silent plaintext default.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.service import TLSConfig

DEFAULT_ADDRESS: Final = "127.0.0.1:7233"
DEFAULT_NAMESPACE: Final = "default"
PREFIX: Final = "TEMPORAL_"
ALIASES: Final = ("RUNCAP_TEMPORAL_ADDRESS", "RUNCAP_TEMPORAL_NAMESPACE")


class TemporalConfigError(ValueError):
    """Temporal's client configuration cannot be read; the message says which part."""


class TemporalUnreachable(RuntimeError):
    """No client could connect with this configuration; the message says where and how."""


@dataclass(frozen=True, eq=False)
class TemporalTarget:
    """Where runcap's Temporal is and how to reach it: ``Client.connect``'s arguments."""

    options: ClientConnectConfig

    @property
    def address(self) -> str:
        return self.options.get("target_host", DEFAULT_ADDRESS)

    @property
    def namespace(self) -> str:
        return self.options.get("namespace", DEFAULT_NAMESPACE)

    @property
    def security(self) -> str:
        """``mTLS``, ``TLS``, ``TLS + API key``, ``API key`` (no TLS) or ``plaintext``."""
        tls = self.options.get("tls", False)
        api_key = "API key" if self.options.get("api_key") else ""
        if isinstance(tls, TLSConfig) and tls.client_cert is not None:
            kind = "mTLS"
        else:
            kind = "TLS" if tls else ""
        return " + ".join(part for part in (kind, api_key) if part) or "plaintext"

    def __str__(self) -> str:
        # Never the key nor a certificate: this goes into logs and error messages.
        return f"{self.address} (namespace {self.namespace!r}, {self.security})"

    async def connect(self, *, within: float | None = None, **options: Any) -> Client:
        """A client, or ``TemporalUnreachable`` saying where it tried and how to fix it.
        ``options`` go to ``Client.connect`` (data converter, interceptors, ...)."""
        try:
            async with asyncio.timeout(within):
                return await Client.connect(**self.options, **options)
        except Exception as error:
            reason = str(error) or type(error).__name__
            raise TemporalUnreachable(
                f"cannot reach Temporal at {self}: {reason}. Start it (make run), or set "
                "TEMPORAL_ADDRESS and, for a secured server, TEMPORAL_TLS_CLIENT_CERT_PATH, "
                "TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH or "
                "TEMPORAL_API_KEY (or a TEMPORAL_PROFILE in TEMPORAL_CONFIG_FILE)"
            ) from error


def temporal_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``TEMPORAL_*`` variables of ``environ`` (default: ours) that are set and not empty."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k.startswith(PREFIX) and v.strip()}


def load_target(
    address: str | None = None,
    namespace: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    default_address: str = DEFAULT_ADDRESS,
) -> TemporalTarget:
    """Temporal's environment configuration from ``environ`` (default: ours) and its TOML
    profile, then runcap's aliases ``address`` and ``namespace`` over it, then the defaults.

    Reads certificate and key files now, so a wrong path fails at startup, not at the first
    call. Every process that connects to Temporal calls this; nothing else builds a client.
    """
    env = temporal_env(environ)
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file is not None and not Path(config_file).exists():
        raise TemporalConfigError(f"TEMPORAL_CONFIG_FILE={config_file} does not exist")
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
        options = profile.to_client_connect_config()
    except (RuntimeError, OSError, ValueError) as error:
        # The first line only: a TOML parse error quotes the offending line, maybe a key.
        reason = (str(error) or type(error).__name__).splitlines()[0]
        raise TemporalConfigError(f"Temporal's client configuration: {reason}") from None
    if address:
        options["target_host"] = address
    options.setdefault("target_host", default_address)
    if namespace:
        options["namespace"] = namespace
    options.setdefault("namespace", DEFAULT_NAMESPACE)
    return TemporalTarget(options)


def dev_server_env(
    environ: Mapping[str, str], address: str, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, str]:
    """``environ`` for a child process that must reach the plaintext dev server at
    ``address`` which its parent started (``make run``, the bench): no Temporal variable,
    profile or runcap alias left in the caller's shell can send it elsewhere or turn on TLS."""
    env = {k: v for k, v in environ.items() if not k.startswith(PREFIX) and k not in ALIASES}
    env.update(
        TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE=namespace, TEMPORAL_CONFIG_FILE=os.devnull
    )
    return env
