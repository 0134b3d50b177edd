"""Shared fixtures: configs, the app under test, and real external programs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from metricsd.config import Config, load_config

pytest_plugins = [
    "tests.fixtures.pg",
    "tests.fixtures.pgbouncer",
    "tests.fixtures.prometheus",
    "tests.fixtures.alertmanager",
    "tests.fixtures.process",
    "tests.fixtures.appclient",
]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the store's kernels into numba's disk cache before any test starts a
    metricsd process: a cold cache would spend the process's startup budget compiling."""
    from metricsd.export import kernel
    from metricsd.store.series import warm_up

    warm_up(2048)
    kernel.warm_up()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path: Any) -> Callable[..., Config]:
    """Factory: make_config({"ingest": {"max_series": 10}}) -> validated Config."""

    def factory(overrides: dict[str, Any] | None = None) -> Config:
        import yaml

        path = tmp_path / "metricsd.yml"
        path.write_text(yaml.safe_dump(_merge({}, overrides or {})))
        return load_config(path, env={})

    return factory
