"""docker-compose.yml and its deploy/ files, read statically (no Docker engine here, so
`docker compose config` cannot run; `make prod-check` runs the same topology without containers).

Each test stops one defect of issue 10 from coming back, or keeps Temporal behind mTLS (issue 15).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from api.limits import LIMITER_POOL_SIZE
from api.settings import Settings
from db.grants import PROCESSES
from prodcheck import compose as prod_compose
from prodcheck.tools import TEMPORAL_SERVER_VERSION
from settings import RuncapSettings
from settings.temporal import load_target
from worker.devserver import DYNAMIC_CONFIG, SEARCH_ATTRIBUTES
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|_KEY$")
RUNCAP = ("migrate", "worker", "api")
ONE_SHOTS = ("temporal-schema", "temporal-setup", "migrate")
SERVERS = ("postgresql", "temporal", "temporal-ui", "worker", "api")
TEMPORAL_CLIENTS = ("temporal-setup", "worker", "api")
"""Services that connect to Temporal with Temporal's environment configuration."""
CLIENT_TLS = {
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "temporal_ca_cert",
    "TEMPORAL_TLS_CLIENT_CERT_PATH": "temporal_client_cert",
    "TEMPORAL_TLS_CLIENT_KEY_PATH": "temporal_client_key",
}
"""The client's TLS variables and the secret each names."""
PROCESS_SETTINGS: dict[str, type[RuncapSettings]] = {
    "migrate": RuncapSettings,
    "worker": WorkerSettings,
    "api": Settings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed."""
    result: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return result


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    """Its services."""
    result: dict[str, Any] = compose["services"]
    return result


def env_default(value: str) -> str:
    """The default of a ``${NAME:-default}`` reference (or the value itself)."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", value)
    return match.group(1) if match else value


def mounted(service: dict[str, Any]) -> dict[str, str]:
    """A service's secrets: name in /run/secrets -> the compose secret it is."""
    result = {}
    for secret in service.get("secrets", []):
        source = secret if isinstance(secret, str) else secret["source"]
        result[secret if isinstance(secret, str) else secret.get("target", source)] = source
    return result


@pytest.fixture(scope="module")
def made_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What deploy/make-secrets.sh makes, in a directory of its own."""
    directory = tmp_path_factory.mktemp("made") / "secrets"
    done = subprocess.run(
        ["sh", str(DEPLOY / "make-secrets.sh"), str(directory)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return directory


def image_of(service: dict[str, Any]) -> str:
    image, _, tag = str(service["image"]).partition(":")
    return f"{image}:{env_default(tag)}"


def test_services_and_order(services: dict[str, Any]) -> None:
    """Every part is there; servers restart, one-shots run once, and the worker and the api
    wait for the migrations and the namespace setup to finish."""
    assert set(services) >= {*SERVERS, *ONE_SHOTS, "fake-provider"}
    for name in SERVERS:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name
    for name in ("worker", "api"):
        needs = services[name]["depends_on"]
        for one_shot in ("migrate", "temporal-setup"):
            assert needs[one_shot] == {"condition": "service_completed_successfully"}, name
    temporal_needs = services["temporal"]["depends_on"]["temporal-schema"]
    assert temporal_needs == {"condition": "service_completed_successfully"}
    assert services["temporal-setup"]["depends_on"]["temporal"]["condition"] == "service_healthy"


def test_temporal_server_and_admin_tools_not_auto_setup(services: dict[str, Any]) -> None:
    """Defects 1-2: temporalio/server pinned to the version prod-check builds, admin-tools
    one-shots for schema and namespace; no deprecated auto-setup (and its Custom*Field
    search attributes)."""
    images = {name: image_of(service) for name, service in services.items() if "image" in service}
    assert not any("auto-setup" in image for image in images.values())
    assert images["temporal"] == f"temporalio/server:{TEMPORAL_SERVER_VERSION.lstrip('v')}"
    for name in ("temporal-schema", "temporal-setup"):
        assert images[name].startswith("temporalio/admin-tools:1.29.1"), name
    assert "temporal-sql-tool" in (DEPLOY / "temporal" / "setup-schema.sh").read_text()
    assert "Custom" not in (ROOT / "docker-compose.yml").read_text()


def _script_attributes() -> dict[str, str]:
    text = (DEPLOY / "temporal" / "setup-namespace.sh").read_text()
    block = text.split("SEARCH_ATTRIBUTES='", 1)[1].split("'", 1)[0]
    return dict(line.split() for line in block.strip().splitlines())


def test_setup_waits_for_the_namespace_then_the_attributes() -> None:
    """Defect 3: the setup creates the namespace, waits for it, adds exactly the dev server's
    search attributes (one type per call), and ends only when a query naming them all works."""
    text = (DEPLOY / "temporal" / "setup-namespace.sh").read_text()
    assert _script_attributes() == dict(SEARCH_ATTRIBUTES)
    order = [
        "retry temporal operator cluster health",
        "temporal operator namespace create",
        "retry temporal operator namespace describe",
        "retry temporal operator search-attribute create",
        "retry temporal workflow list",
    ]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)
    assert '--name "$name" --type "$kind"' in text


def test_dynamic_config_matches_dev_server_and_suits_production(
    services: dict[str, Any],
) -> None:
    """The mounted dynamic config raises the update limits as the dev server does, and
    defect 4: no forceSearchAttributesCacheRefreshOnRead in production."""
    temporal = services["temporal"]
    config_name = Path(temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]).name
    assert "./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig:ro" in temporal["volumes"]
    config = yaml.safe_load((DEPLOY / "dynamicconfig" / config_name).read_text())
    assert {key: config[key][0]["value"] for key in DYNAMIC_CONFIG} == dict(DYNAMIC_CONFIG)
    assert "system.forceSearchAttributesCacheRefreshOnRead" not in config


def test_one_role_per_part(services: dict[str, Any]) -> None:
    """Defect 5: Temporal, the migrations, the worker and the api each connect as their own
    role, none as the superuser; the init script makes those roles; migrate grants the api's
    and the worker's privileges (db/grants.py)."""
    users = {
        name: make_url(services[name]["environment"]["RUNCAP_DATABASE_URL"]).username
        for name in RUNCAP
    }
    assert users == {"migrate": "runcap", "worker": "runcap_worker", "api": "runcap_api"}
    for name in ("temporal", "temporal-schema"):
        assert services[name]["environment"]["POSTGRES_USER"] == "temporal"
    init = (DEPLOY / "postgres" / "init-roles.sh").read_text()
    for role in ("temporal", "runcap", "runcap_api", "runcap_worker"):
        assert f"CREATE ROLE {role} LOGIN" in init
    command = services["migrate"]["command"]
    granted = dict(command[i + 1].split("=") for i, arg in enumerate(command) if arg == "--grant")
    assert granted == {"api": "runcap_api", "worker": "runcap_worker"}
    assert set(granted) == set(PROCESSES)


def test_passwords_never_go_into_a_url(services: dict[str, Any]) -> None:
    """Defect 6: database URLs carry no password; it comes from a secret file as its own
    setting, so any character works."""
    for name in RUNCAP:
        url = make_url(services[name]["environment"]["RUNCAP_DATABASE_URL"])
        assert url.password is None, name
        targets = [s["target"] for s in services[name]["secrets"] if isinstance(s, dict)]
        assert "runcap_database_password" in targets, name


def test_worker_gets_no_admin_key(services: dict[str, Any]) -> None:
    """Defect 7: the admin key reaches the api only."""
    for name, service in services.items():
        names = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
        has_key = "runcap_admin_key" in names or "RUNCAP_ADMIN_KEY" in service.get(
            "environment", {}
        )
        assert has_key == (name == "api"), name
    assert "admin_key" not in WorkerSettings.model_fields


def test_secrets_are_files_read_through_secrets_dir(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Defect 8: no secret in any environment, only the path of a secret file the service
    mounts; each is a file under deploy/secrets (ignored by git and by the image build),
    mounted under a name the process's settings read, or Temporal's TLS files, which its
    TEMPORAL_TLS_* variables name."""
    declared = compose["secrets"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                path = Path(str(value))
                assert path.parent == Path("/run/secrets"), (name, key)
                assert path.name in mounted(service), (name, key)
    for secret in declared.values():
        assert Path(secret["file"]).parent == Path("deploy/secrets")
    for name, settings_class in PROCESS_SETTINGS.items():
        for target, source in mounted(services[name]).items():
            assert source in declared
            if target.startswith("temporal_"):
                assert f"/run/secrets/{target}" in services[name]["environment"].values()
                continue
            field = target.removeprefix("runcap_")
            assert target.startswith("runcap_") and field in settings_class.model_fields, target
    assert (DEPLOY / "secrets" / ".gitignore").read_text().splitlines()[1] == "*"
    assert "deploy/secrets" in (ROOT / ".dockerignore").read_text().splitlines()
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"\b(rc-admin-|sk-)[A-Za-z0-9_-]{8,}", text)


def test_no_provider_means_fail_fast_or_the_fake_profile(services: dict[str, Any]) -> None:
    """Defect 9: the worker and the api refuse to start without a provider (tests/
    test_processes.py proves it); the fake profile runs the fake provider from the same image."""
    fake = services["fake-provider"]
    assert fake["profiles"] == ["fake"]
    assert fake["command"][:3] == ["python", "-m", "fake_provider"]
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["fake-provider"]["required"] is False
        assert services[name]["environment"]["RUNCAP_FAKE_PROVIDER_URL"] == (
            "${RUNCAP_FAKE_PROVIDER_URL:-}"
        )


def test_ui_allows_no_credentialed_origin(services: dict[str, Any]) -> None:
    """Defect 10: no CORS origin on a UI without authentication; loopback only."""
    ui = services["temporal-ui"]
    assert not any("CORS" in key for key in ui["environment"])
    assert all(port.startswith("127.0.0.1:") for port in ui["ports"])


def test_migrations_run_once_before_the_processes(services: dict[str, Any]) -> None:
    """Defect 11: a one-shot runs `python -m db upgrade`; the processes only check the schema."""
    assert services["migrate"]["command"][:4] == ["python", "-m", "db", "upgrade"]
    for name in ("worker", "api"):
        assert services[name]["command"] == ["python", "-m", name]


def test_one_image_and_real_health_checks(services: dict[str, Any]) -> None:
    """Defect 12: one build shared by every runcap service; the api's check is an HTTP GET of
    /healthz, the worker's the health file it keeps fresh."""
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["migrate"]
    images = {services[name]["image"] for name in (*RUNCAP, "fake-provider")}
    assert len(images) == 1
    for name in ("worker", "api", "fake-provider"):
        assert services[name]["pull_policy"] == "never"
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "/healthz" in api_check and "urlopen" in api_check
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.health"]
    assert services["worker"]["environment"]["RUNCAP_HEALTH_FILE"]


def test_postgres_connections_cover_the_pools(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """Defect 12: max_connections is at least Temporal's pools, each scaled api and worker's
    pools and overflow, the migrations and the superuser's reserve."""
    command = services["postgresql"]["command"]
    max_connections = int(command[command.index("-c") + 1].split("=")[1])
    temporal = services["temporal"]["environment"]
    need = int(temporal["SQL_MAX_CONNS"]) + int(temporal["SQL_VIS_MAX_CONNS"]) + 1 + 3
    for name, count in compose["x-sized-for"].items():
        env = services[name]["environment"]
        pool = int(env["RUNCAP_DATABASE_POOL_SIZE"]) + int(env["RUNCAP_DATABASE_MAX_OVERFLOW"])
        if name == "api":  # its rate limiter's own pool, overflow twice the size
            pool += 3 * LIMITER_POOL_SIZE
        need += count * pool
    assert max_connections >= need, (max_connections, need)


def test_image_holds_every_package_a_process_imports() -> None:
    """The Dockerfile copies each runtime package (the example agent stays out) and ignores
    secrets and local data in its build context."""
    text = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+)/ ", text, flags=re.M))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert copied == packages - {"examples"}


@pytest.mark.parametrize("script", sorted(p.name for p in DEPLOY.rglob("*.sh")))
def test_deploy_scripts_parse(script: str) -> None:
    """Each deploy script is valid POSIX sh (and passes shellcheck where it is installed)."""
    path = next(DEPLOY.rglob(script))
    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0
    if shellcheck := shutil.which("shellcheck"):
        done = subprocess.run([shellcheck, "-s", "sh", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_prod_check_reads_each_process_from_the_compose_file() -> None:
    """make prod-check takes commands and environments from docker-compose.yml itself, with
    service addresses pointed at 127.0.0.1, so the two cannot drift apart."""
    hosts = {"temporal:7233": "127.0.0.1:1", "postgresql:5432": "127.0.0.1:2"}
    env = prod_compose.environment("api", hosts, Path("/here"))
    assert env["TEMPORAL_ADDRESS"] == "127.0.0.1:1"
    assert env["TEMPORAL_TLS_CLIENT_KEY_PATH"] == "/here/temporal_client_key"
    assert make_url(env["RUNCAP_DATABASE_URL"]).port == 2
    assert prod_compose.command("worker")[1:] == ["-m", "worker"]
    targets = {s.target for s in prod_compose.secrets("api")}
    assert targets == {
        "runcap_database_password",
        "runcap_admin_key",
        "runcap_metrics_token",
        "runcap_openai_api_key",
        "runcap_anthropic_api_key",
        *CLIENT_TLS.values(),
    }
    assert prod_compose.interpolate("${X:-d}", {}) == "d"
    assert prod_compose.interpolate("${X:-d}", {"X": "v"}) == "v"
    assert prod_compose.image_tag("temporal") == TEMPORAL_SERVER_VERSION.lstrip("v")


# -- Temporal behind mTLS (issue 15) ---------------------------------------------------------


def test_temporal_is_published_nowhere(services: dict[str, Any]) -> None:
    """Temporal access is admin access: the frontend has no port on the host (not even
    loopback), and whatever is published is on 127.0.0.1 only (the api's bind is a choice
    that defaults to it)."""
    assert "ports" not in services["temporal"]
    for name, service in services.items():
        for port in service.get("ports", []):
            host, _, container = str(port).rpartition(":")
            assert container != "7233", (name, port)
            assert env_default(host.rsplit(":", 1)[0]) == "127.0.0.1", (name, port)
    assert [p for s in services.values() for p in s.get("ports", [])] == [
        "127.0.0.1:8080:8080",
        "${RUNCAP_API_BIND:-127.0.0.1}:8000:8000",
    ]


def test_temporal_frontend_requires_a_client_certificate(services: dict[str, Any]) -> None:
    """The server's config template (config/docker.yaml) gets mTLS on the frontend and
    between its own services, with the server's certificate and the CA mounted; its health
    check presents a certificate too."""
    temporal = services["temporal"]
    env = temporal["environment"]
    secrets = mounted(temporal)
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    files = {
        "TEMPORAL_TLS_SERVER_CA_CERT": "temporal_ca_cert",
        "TEMPORAL_TLS_CLIENT1_CA_CERT": "temporal_ca_cert",
        "TEMPORAL_TLS_CLIENT2_CA_CERT": "temporal_ca_cert",
        "TEMPORAL_TLS_SERVER_CERT": "temporal_server_cert",
        "TEMPORAL_TLS_SERVER_KEY": "temporal_server_key",
        "TEMPORAL_TLS_FRONTEND_CERT": "temporal_server_cert",
        "TEMPORAL_TLS_FRONTEND_KEY": "temporal_server_key",
    }
    for key, secret in files.items():
        assert env[key] == f"/run/secrets/{secret}" and secrets[secret] == secret, key
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"
    assert env["TEMPORAL_TLS_INTERNODE_SERVER_NAME"] == "temporal"
    assert "temporal_client_key" not in secrets and "temporal_ca_key" not in str(temporal)
    check = temporal["healthcheck"]["test"]
    assert "--tls-cert-path=/run/secrets/temporal_server_cert" in check
    assert "--tls-ca-path=/run/secrets/temporal_ca_cert" in check


def test_every_temporal_client_presents_the_client_certificate(
    services: dict[str, Any], made_secrets: Path
) -> None:
    """admin-tools, the worker and the api connect through Temporal's own variables with the
    mounted client certificate (read here with the very function the processes use); the UI
    with its server's TLS variables, read-only since it has no login; nothing else mounts a
    Temporal key."""
    for name in TEMPORAL_CLIENTS:
        service = services[name]
        env = service["environment"]
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233" and "RUNCAP_TEMPORAL_ADDRESS" not in env
        assert env["TEMPORAL_TLS_SERVER_NAME"] == "temporal"
        for key, secret in CLIENT_TLS.items():
            assert env[key] == f"/run/secrets/{secret}" and mounted(service)[secret] == secret
        here = prod_compose.environment(name, {}, made_secrets)
        target = load_target(environ={**here, "TEMPORAL_CONFIG_FILE": os.devnull})
        assert (target.address, target.security) == ("temporal:7233", "mTLS"), name
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_TLS_CERT"] == "/run/secrets/temporal_client_cert"
    assert ui["TEMPORAL_TLS_KEY"] == "/run/secrets/temporal_client_key"
    assert ui["TEMPORAL_TLS_CA"] == "/run/secrets/temporal_ca_cert"
    assert ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"  # its certificate is admin's
    holders = {n for n, s in services.items() if "temporal_client_key" in mounted(s)}
    assert holders == {*TEMPORAL_CLIENTS, "temporal-ui"}


def test_make_secrets_issues_a_ca_and_certificates_that_verify(
    compose: dict[str, Any], made_secrets: Path
) -> None:
    """deploy/make-secrets.sh makes every file compose mounts; the server's certificate is
    for the name ``temporal`` (and loopback, for prod-check), the client's for client auth
    only, both signed by the CA; the CA's key is private and mounted nowhere."""
    made = {p.name for p in made_secrets.iterdir()}
    declared = {Path(s["file"]).name for s in compose["secrets"].values()}
    assert declared <= made and made - declared == {"temporal_ca_key"}
    assert stat.S_IMODE((made_secrets / "temporal_ca_key").stat().st_mode) == 0o600
    ca = str(made_secrets / "temporal_ca_cert")
    for name in ("temporal_server_cert", "temporal_client_cert"):
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", ca, str(made_secrets / name)], capture_output=True
        )
        assert done.returncode == 0, done.stderr

    def text(name: str) -> str:
        argv = ["openssl", "x509", "-noout", "-text", "-in", str(made_secrets / name)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    server, client = text("temporal_server_cert"), text("temporal_client_cert")
    assert "DNS:temporal, DNS:localhost, IP Address:127.0.0.1" in server
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in server
    assert "TLS Web Client Authentication" in client and "Server Authentication" not in client
    assert "CA:TRUE" in text("temporal_ca_cert") and "CA:FALSE" in client
