"""What the client distribution shares with the server without importing it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python" / "metricsd_client"


def test_the_retry_policy_is_the_same_file() -> None:
    assert (CLIENT / "retry.py").read_bytes() == (ROOT / "metricsd" / "retry.py").read_bytes()


def test_the_client_imports_nothing_of_the_server() -> None:
    for path in CLIENT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] != "metricsd", f"{path.name} imports {name}"


def test_the_server_package_no_longer_ships_the_client() -> None:
    assert not (ROOT / "metricsd" / "client").exists()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["metricsd", "metricsd.*"]' in pyproject  # not metricsd_client
