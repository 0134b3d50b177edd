"""What `metricsd check-config` checks beyond the schema: DSNs parse, files can be written.

The schema (config.py) stays pure; these checks look at the file system, so they run in
check-config, where an operator wants every problem before a deploy, each named with
its config path. Nothing here prints a DSN: it may hold a password.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from metricsd.config import Config

DSN_SCHEMES = ("postgresql", "postgres")


def _port_problem(port: str) -> str | None:
    if port.isdigit() and 1 <= int(port) <= 65535:
        return None
    return f"port {port!r} is not a number from 1 to 65535"


def _host_ports(hosts: str) -> list[str]:
    """The port of every host in `h1:5432,[::1]:5433,h3` ('' where none is given)."""
    ports = []
    for host in hosts.split(","):
        if host.startswith("["):
            _, bracket, rest = host.partition("]")
            if not bracket:
                ports.append("[")  # an unclosed IPv6 bracket: reported as a bad port
                continue
            ports.append(rest[1:] if rest.startswith(":") else rest)
        else:
            ports.append(host.partition(":")[2] if ":" in host else "")
    return ports


def dsn_problems(dsn: str) -> list[str]:
    """Why asyncpg could not use `dsn` (URI form: postgresql://user:pw@host:port/db?...)."""
    try:
        parts = urlsplit(dsn.strip())
    except ValueError as exc:
        return [f"not a URL: {exc}"]
    problems = []
    if parts.scheme not in DSN_SCHEMES:
        got = repr(parts.scheme) if parts.scheme else "none"
        problems.append(f"scheme must be postgresql:// or postgres:// (got {got})")
    hosts = parts.netloc.rpartition("@")[2]
    for port in _host_ports(hosts) if hosts else []:
        problem = _port_problem(port) if port else None
        if port == "" and hosts.rstrip().endswith(":"):
            problem = "port is empty"
        if problem:
            problems.append(problem)
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        return [*problems, "the query string does not parse"]
    for value in query.get("port", []):
        for port in value.split(","):
            problem = _port_problem(port)
            if problem:
                problems.append(f"query {problem}")
    return problems


def writable_problem(path: str | os.PathLike[str]) -> str | None:
    """Why metricsd could not create or replace the file `path` (None when it can).

    The state file is replaced through a temporary file beside it, so its directory
    must be writable; missing directories are created, so the nearest existing one must
    be a writable directory.
    """
    target = Path(path)
    if target.is_dir():
        return f"{target} is a directory"
    if target.exists() and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():
            return f"{parent} is a broken symbolic link"
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def config_problems(config: Config) -> list[str]:
    """Every DSN and file problem, as `config.path: reason`."""
    problems = []
    for i, target in enumerate(config.postgres.targets):
        problems += [f"postgres.targets[{i}].dsn ({target.name}): {p}"
                     for p in dsn_problems(target.dsn)]
    files = {"alerting.state_file": config.alerting.state_file,
             "alerting.dead_letter_file": config.alerting.dead_letter_file}
    for key, value in files.items():
        if value:
            problem = writable_problem(value)
            if problem:
                problems.append(f"{key}: {problem}")
    return problems
