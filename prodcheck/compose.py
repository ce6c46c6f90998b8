"""docker-compose.yml as the source of what each part runs: command, environment, secrets.

Why read it rather than restate it: ``make prod-check`` then exercises the compose file's own
settings (with its host names pointed at 127.0.0.1 ports), so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DYNAMIC_CONFIG = ROOT / "deploy" / "dynamicconfig" / "runcap.yaml"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-roles.sh"
TEMPORAL_SCHEMA = ROOT / "deploy" / "temporal" / "setup-schema.sh"
TEMPORAL_NAMESPACE = ROOT / "deploy" / "temporal" / "setup-namespace.sh"
MAKE_SECRETS = ROOT / "deploy" / "make-secrets.sh"
SECRETS_MOUNT = "/run/secrets"
"""Where compose mounts a service's ``secrets:``."""
_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Secret:
    """A compose secret: its file's name under deploy/secrets, and its name in /run/secrets."""

    source: str
    target: str


@lru_cache(maxsize=1)
def services() -> dict[str, Any]:
    """The compose file's services (YAML anchors and merges resolved)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    result: dict[str, Any] = document["services"]
    return result


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``${NAME}`` and ``${NAME:-default}`` as compose expands them (from our environment)."""
    source = os.environ if environ is None else environ

    def expand(match: re.Match[str]) -> str:
        return source.get(match.group(1)) or (match.group(2) or "")

    return _REFERENCE.sub(expand, value)


def environment(
    name: str, hosts: Mapping[str, str], secrets_dir: Path | None = None
) -> dict[str, str]:
    """A service's environment, expanded, with ``host:port`` of other services replaced by
    where they run here (``hosts``: ``{"temporal:7233": "127.0.0.1:41234", ...}``) and paths
    under /run/secrets by the same files in ``secrets_dir`` (certificates and keys)."""
    env: dict[str, str] = {}
    for key, value in (services()[name].get("environment") or {}).items():
        text = interpolate("" if value is None else str(value))
        for service_address, local in hosts.items():
            text = text.replace(service_address, local)
        if secrets_dir is not None and text.startswith(f"{SECRETS_MOUNT}/"):
            text = str(secrets_dir / text.removeprefix(f"{SECRETS_MOUNT}/"))
        env[key] = text
    return env


def command(name: str) -> list[str]:
    """A service's command, run by this interpreter (the image's ``python``)."""
    argv = [str(part) for part in services()[name]["command"]]
    return [sys.executable, *argv[1:]] if argv[0] == "python" else argv


def secrets(name: str) -> list[Secret]:
    """The secrets a service mounts."""
    result = []
    for entry in services()[name].get("secrets", []):
        if isinstance(entry, str):
            result.append(Secret(entry, entry))
        else:
            result.append(Secret(entry["source"], entry.get("target", entry["source"])))
    return result


def image_tag(name: str) -> str:
    """The tag a service's image defaults to (``${VERSION:-1.29.1}`` -> ``1.29.1``)."""
    image = str(services()[name]["image"])
    return interpolate(image.partition(":")[2], {})
