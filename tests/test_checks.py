"""check-config beyond the schema: DSNs (scheme, port, parse) and writable files, each
problem named with its config path, no password ever printed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from metricsd.checks import dsn_problems, writable_problem

GOOD_DSNS = [
    "postgresql://metricsd:secret@127.0.0.1:5432/app",
    "postgres://db.internal/app",
    "postgresql://h1:5432,h2:5433/app",
    "postgresql://[::1]:5432/app",
    "postgresql://[2001:db8::1]/app",
    "postgresql:///app?host=/var/run/postgresql&port=5433",
    "postgresql://u@h:65535/app?sslmode=require",
    "postgresql://u:p@h:1/app",
]
BAD_DSNS = {
    "mysql://u:secret@h:3306/app": "scheme",
    "http://h/app": "scheme",
    "h:5432": "scheme",
    "host=h port=5432 dbname=app": "scheme",
    "": "scheme",
    "postgresql://u:secret@h:notaport/app": "port 'notaport'",
    "postgresql://h:0/app": "port '0'",
    "postgresql://h:65536/app": "port '65536'",
    "postgresql://h:-1/app": "port '-1'",
    "postgresql://h:/app": "port is empty",
    "postgresql://h1:5432,h2:x/app": "port 'x'",
    "postgresql://[::1]:abc/app": "port 'abc'",
    "postgresql:///app?port=abc": "query port 'abc'",
    "postgresql://[::1/app": "not a URL",
}


@pytest.mark.parametrize("dsn", GOOD_DSNS)
def test_valid_dsns_pass(dsn):
    assert dsn_problems(dsn) == []


@pytest.mark.parametrize(("dsn", "reason"), sorted(BAD_DSNS.items()))
def test_invalid_dsns_are_named(dsn, reason):
    problems = dsn_problems(dsn)
    assert problems and any(reason in p for p in problems), problems
    assert not any("secret" in p for p in problems)


def _paths(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    return {
        "parent is a file": (blocker / "state.json", "is not a directory"),
        "grandparent is a file": (blocker / "sub" / "state.json", "is not a directory"),
        "path is a directory": (a_dir, "is a directory"),
        "missing directories under a writable one": (tmp_path / "new" / "deep" / "s.json",
                                                     None),
        "existing file": (blocker, None),
    }


@pytest.mark.parametrize("case", ["parent is a file", "grandparent is a file",
                                  "path is a directory",
                                  "missing directories under a writable one", "existing file"])
def test_writable_problems(tmp_path, case):
    path, reason = _paths(tmp_path)[case]
    problem = writable_problem(path)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem


def test_check_config_names_every_problem_with_its_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    bad = [dsn for dsn in BAD_DSNS if dsn]  # an empty one is the schema's to refuse
    config = {
        "postgres": {"targets": [
            {"name": f"t{i}", "dsn": dsn} for i, dsn in enumerate(bad)
        ] + [{"name": "ok", "dsn": GOOD_DSNS[0]}]},
        "alerting": {"state_file": str(blocker / "state.json"),
                     "dead_letter_file": str(tmp_path / "a-dir-that-is-fine" / "dead.jsonl")},
    }
    path = tmp_path / "metricsd.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "metricsd", "check-config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    for i in range(len(bad)):
        assert f"postgres.targets[{i}].dsn (t{i}):" in err, err
    assert f"postgres.targets[{len(bad)}]" not in err  # the good one
    assert "alerting.state_file:" in err and "is not a directory" in err
    assert "alerting.dead_letter_file" not in err
    assert "secret" not in err
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump({
        "postgres": {"targets": [{"name": "ok", "dsn": d} for d in GOOD_DSNS[:1]]},
        "alerting": {"state_file": str(tmp_path / "new" / "state.json")}}))
    result = subprocess.run([sys.executable, "-m", "metricsd", "check-config", str(good)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
