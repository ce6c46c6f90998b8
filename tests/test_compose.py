"""docker-compose.yml, read statically: the services, Temporal settings and secrets handling."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.devserver import DYNAMIC_CONFIG, SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|_KEY$")
ENV_REFERENCE = re.compile(r"^\$\{[A-Z0-9_]+(:\?[^}]*)?\}$")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The services of docker-compose.yml."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    result: dict[str, Any] = compose["services"]
    return result


def test_services_present(services: dict[str, Any]) -> None:
    """Every part of the production shape is there."""
    expected = {"postgresql", "temporal", "temporal-setup", "temporal-ui", "worker", "api"}
    assert expected <= set(services)


def test_long_running_services_restart_and_check_health(services: dict[str, Any]) -> None:
    """Servers restart on failure and have health checks others can wait on."""
    for name in ("postgresql", "temporal", "temporal-ui", "worker", "api"):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("postgresql", "temporal", "temporal-ui", "api"):
        assert services[name]["healthcheck"]["test"], name


def test_runcap_waits_for_search_attributes(services: dict[str, Any]) -> None:
    """The worker and api start only after the search attributes are registered."""
    for name in ("worker", "api"):
        needs = services[name]["depends_on"]["temporal-setup"]
        assert needs == {"condition": "service_completed_successfully"}


def test_dynamic_config_matches_dev_server(services: dict[str, Any]) -> None:
    """The mounted dynamic config raises the update limits exactly as the dev server does."""
    temporal = services["temporal"]
    config_name = Path(temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]).name
    assert "./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig:ro" in temporal["volumes"]
    config = yaml.safe_load((ROOT / "deploy" / "dynamicconfig" / config_name).read_text())
    assert {key: config[key][0]["value"] for key in DYNAMIC_CONFIG} == dict(DYNAMIC_CONFIG)


def test_search_attributes_match_dev_server(services: dict[str, Any]) -> None:
    """The one-shot setup registers exactly worker.devserver.SEARCH_ATTRIBUTES."""
    script = " ".join(services["temporal-setup"]["command"])
    created = dict(re.findall(r"--name (\w+) --type (\w+)", script))
    assert created == dict(SEARCH_ATTRIBUTES)


def test_no_literal_secrets(services: dict[str, Any]) -> None:
    """Secrets are environment references (required, or passed through), never values."""
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value is None or ENV_REFERENCE.match(str(value)), f"{name}: {key}"
            if key.endswith("DATABASE_URL"):
                assert ":${POSTGRES_PASSWORD:?" in str(value), f"{name}: {key}"
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\b(rc-admin-|sk-)[A-Za-z0-9_-]{8,}", text)
