"""Configuration: YAML, ${VAR}, METRICSD_* overrides, strictness, every problem at once."""

from __future__ import annotations

import pytest

from metricsd.config import load_config
from metricsd.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "metricsd.yml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    config = load_config(None, env={})
    assert config.listen == "127.0.0.1:9811"
    assert config.ingest.window.samples == 2048 and config.ingest.window.seconds == 300
    assert config.ingest.cors_origins == ["*"] and config.ingest.tokens == []
    assert config.postgres.targets == [] and config.alerting.receivers == []


def test_contract_keys_and_durations(tmp_path):
    path = write(tmp_path, """
listen: 0.0.0.0:9000
ingest:
  tokens: [abc]
  max_series: 500
  window: {samples: 1024, seconds: 2m}
postgres:
  scrape_interval: 30s
  slow_query_ms: 250
  targets:
    - name: main
      dsn: postgresql://metricsd@db:5432/app
""")
    config = load_config(path, env={})
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.ingest.window.seconds == 120.0
    assert config.postgres.scrape_interval == 30.0
    assert config.postgres.targets[0].name == "main"


def test_env_interpolation_and_defaults(tmp_path):
    path = write(tmp_path, """
ingest:
  tokens: ["${APP_TOKEN}", "${OTHER:-fallback}"]
""")
    config = load_config(path, env={"APP_TOKEN": "t0ps3cret"})
    assert config.ingest.tokens == ["t0ps3cret", "fallback"]
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "ingest.tokens[0]: environment variable APP_TOKEN is not set" in err.value.problems


def test_metricsd_env_overrides(tmp_path):
    path = write(tmp_path, "ingest: {max_series: 10}\n")
    config = load_config(path, env={
        "METRICSD_INGEST__MAX_SERIES": "5000",
        "METRICSD_LISTEN": "127.0.0.1:1234",
        "METRICSD_WEBHOOK_SECRET": "not an override",  # a secret for ${VAR}, left alone
    })
    assert config.ingest.max_series == 5000 and config.port == 1234


def test_every_problem_reported_with_its_path(tmp_path):
    path = write(tmp_path, """
listen: nowhere
ingest:
  max_series: 0
  windw: {samples: 10}
postgres:
  scrape_interval: soon
  targets:
    - {name: a, dsn: x}
    - {name: a, dsn: y}
alerting:
  receivers:
    - {name: oncall, url: "ftp://x"}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    problems = "\n".join(err.value.problems)
    for fragment in ("listen:", "ingest.max_series:", "ingest.windw: unknown key",
                     "postgres.scrape_interval:", "target names must be unique",
                     "alerting.receivers.0.url:"):
        assert fragment in problems, fragment
    assert len(err.value.problems) >= 6


def test_not_yaml_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [b"), env={})
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml", env={})


def test_shipped_example_config_is_valid(pytestconfig):
    example = pytestconfig.rootpath / "metricsd.example.yml"
    config = load_config(example, env={"METRICSD_WEBHOOK_SECRET": "x", "PGPASSWORD": "y",
                                       "METRICSD_INGEST_TOKEN": "z"})
    assert config.ingest.window.samples == 2048


def _missing_keys(model, raw, path=""):
    """Config fields absent from the example, recursing into sections and list items."""
    from pydantic import BaseModel

    missing = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        where = f"{path}.{key}" if path else key
        if key not in raw:
            missing.append(where)
            continue
        value = raw[key]
        annotation = field.annotation
        if getattr(annotation, "__origin__", None) is dict:  # dict[str, Model]: first entry
            model_of = annotation.__args__[1]
            if isinstance(value, dict) and value and isinstance(model_of, type) and issubclass(
                    model_of, BaseModel):
                name0 = next(iter(value))
                missing += _missing_keys(model_of, value[name0], f"{where}.{name0}")
            continue
        inner = getattr(annotation, "__args__", (annotation,))
        for kind in inner:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                if isinstance(value, dict):
                    missing += _missing_keys(kind, value, where)
                elif isinstance(value, list) and value and isinstance(value[0], dict):
                    missing += _missing_keys(kind, value[0], f"{where}[0]")
            for sub in getattr(kind, "__args__", ()):  # list[Model]
                if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(
                        value, list) and value:
                    missing += _missing_keys(sub, value[0], f"{where}[0]")
    return missing


def test_example_config_shows_every_key(pytestconfig):
    import yaml

    from metricsd.config import Config

    raw = yaml.safe_load((pytestconfig.rootpath / "metricsd.example.yml").read_text())
    assert _missing_keys(Config, raw) == []


def test_an_unknown_receiver_format_is_a_config_error(make_config):
    """Receiver kinds live in alerting, which checks them at start-up and in check-config."""
    from metricsd.alerting.rules.validate import compile_alerting
    from metricsd.errors import ConfigError

    config = make_config({"alerting": {"receivers": [
        {"name": "ok", "url": "http://127.0.0.1:1/"},
        {"name": "pager", "url": "http://127.0.0.1:1/", "format": "pagerduty"}],
        "default_receiver": "ok"}})
    with pytest.raises(ConfigError) as info:
        compile_alerting(config.alerting)
    [problem] = info.value.problems
    assert "alerting.receivers.pager: unknown format 'pagerduty'" in problem
    assert "alertmanager" in problem and "slack" in problem


@pytest.mark.parametrize("listen", ["127.0.0.1:¹", "127.0.0.1:٩٨١١", "127.0.0.1:９８１１",  # noqa: RUF001
                                    "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1"])
def test_listen_port_takes_ascii_digits_only(make_config, listen):
    """int() reads Arabic-Indic and full-width digits; a port in the config must not."""
    with pytest.raises(ConfigError) as info:
        make_config({"listen": listen})
    assert "listen" in str(info.value)
