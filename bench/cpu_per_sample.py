"""Server CPU time per ingested sample (user+sys of the metricsd process / samples answered),
for two source trees in alternating rounds: robust on a loaded machine, unlike requests/s.

Run: .venv/bin/python bench/cpu_per_sample.py SECONDS ROUNDS BASELINE_TREE CANDIDATE_TREE...
(e.g. a `git worktree` of main and one of a branch); CASES=single_timing,... selects cases.
Without arguments (`make bench`): 4 s, 3 rounds, this tree against `bare` and `naive:columnar`.
A tree may also be `bare` (bench/bare_server.py: read the body, 204) or `naive:rows` /
`naive:columnar` (bench/naive_server.py), the baselines of issue 12's ratios: their CPU per
request against metricsd's is what bounds the requests/s ratio on a pinned core.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import PY, free_port, median, post_lua, wrk
from ingest import CONFIG, SINGLE, batch, columnar

HERE = Path(__file__).resolve().parent

VITAL = json.dumps({"name": "LCP", "value": 1200.0, "rating": "good", "delta": 1200.0,
                    "id": "v1", "page": "/home/123", "navigationType": "navigate"})
if len(sys.argv) > 4:
    TREES = dict(zip(["main", "branch", *sys.argv[5:]], sys.argv[3:], strict=True))
else:  # `make bench`: this tree against the baseline servers
    TREES = {"metricsd": str(HERE.parent), "bare": "bare", "naive:columnar": "naive:columnar"}
seconds, rounds = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (4, 3)
ALL = {"single_timing": ("/v1/beacons/timings", SINGLE, 1),
         "single_vital": ("/v1/beacons/vitals", VITAL, 1),
         "batch_100": ("/v1/beacons/timings", batch(100), 100),
         "batch_1000": ("/v1/beacons/timings", batch(1000), 1000),
         "columnar_1x100": ("/v1/beacons/timings", columnar(1, 100), 100),
         "columnar_10x100": ("/v1/beacons/timings", columnar(10, 100), 1000)}
cases = {k: v for k, v in ALL.items() if k in os.environ.get("CASES", ",".join(ALL)).split(",")}
def cpu(pid):
    with open(f"/proc/{pid}/stat") as stat:
        f = stat.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
res = {c: {t: [] for t in TREES} for c in cases}
for _ in range(rounds):
    for tree, root in TREES.items():
        port = free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as cfg:
            cfg.write(CONFIG)
        # cwd outside both trees, so PYTHONPATH decides which metricsd is imported
        argv = [PY, "-m", "metricsd", "--config", cfg.name, "--listen", f"127.0.0.1:{port}"]
        health = "/healthz"
        if root == "bare":
            argv, health = [PY, str(HERE / "bare_server.py"), str(port)], "/"
        elif root.startswith("naive:"):
            argv, health = [PY, str(HERE / "naive_server.py"), str(port), root[6:]], "/"
        p = subprocess.Popen(
            argv, cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": root},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(url + health, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for case, (path, body, n) in cases.items():
            wrk(url, post_lua(path, body), 1, connections=16)  # warm-up (series, caches)
            before = cpu(p.pid)
            out = wrk(url, post_lua(path, body), seconds, connections=16)
            used = cpu(p.pid) - before
            res[case][tree].append(used / (out["requests"] * n) * 1e6)  # CPU us per sample
        p.terminate()
        p.wait(10)
        os.unlink(cfg.name)
med = {c: {t: round(median(v), 2) for t, v in d.items()} for c, d in res.items()}
first = next(iter(TREES))
for c in med:
    for t in TREES:
        if t != first:
            med[c][f"ratio_{t}_to_{first}"] = round(med[c][t] / med[c][first], 3)
print(json.dumps({"cpu_us_per_sample": res, "median": med}, indent=1))
