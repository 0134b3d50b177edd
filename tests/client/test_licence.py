"""The clients carry the project's licence, whatever it is: none while the project has none."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LICENCE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")
CLIENTS = (ROOT / "clients" / "js", ROOT / "clients" / "python")


def _licence_file(folder: Path) -> Path | None:
    """The folder's licence text, if it has one."""
    found = [folder / n for n in LICENCE_FILES if (folder / n).is_file()]
    assert len(found) <= 1, found
    return found[0] if found else None


def _declared(pyproject: Path) -> object:
    """The `license` a pyproject.toml declares (None when absent)."""
    return tomllib.loads(pyproject.read_text())["project"].get("license")


def test_clients_declare_the_projects_licence() -> None:
    project_file = _licence_file(ROOT)
    project = _declared(ROOT / "pyproject.toml")
    package = json.loads((ROOT / "clients" / "js" / "package.json").read_text())
    python_client = _declared(ROOT / "clients" / "python" / "pyproject.toml")
    if project_file is None and project is None:
        # No licence granted by the project, so none granted by its clients either.
        assert package["license"] == "UNLICENSED"
        assert python_client is None
        for client in CLIENTS:
            assert _licence_file(client) is None, client
        return
    assert project_file is not None, "pyproject declares a licence but the repo has no text"
    assert python_client == project
    for client in CLIENTS:
        text = _licence_file(client)
        assert text is not None, f"{client} lacks the project's licence text"
        assert text.read_bytes() == project_file.read_bytes()
    spdx = project.get("text") if isinstance(project, dict) else project
    assert package["license"] == spdx  # npm packs LICENSE files whatever "files" says
