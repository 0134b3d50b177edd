"""`make bench`: run every benchmark script in bench/ one after another and show its output.

Each script measures its own baseline in the same run and prints medians and ratios;
record them by hand in docs/benchmarks.md with the command that produced them.
Run: .venv/bin/python bench/run.py [NAME ...]   (names without .py; default: all)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"common", "bare_server", "naive_server", "run"}


def main(names: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py")
                     if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))
    if names:
        scripts = [p for p in scripts if p.stem in names]
    # Compile the store's kernels once, so no benchmark's server spends its start on it.
    subprocess.call([sys.executable, "-c",
                     "from metricsd.store.series import warm_up; warm_up(2048); "
                     "from metricsd.export import kernel; kernel.warm_up()"], cwd=HERE.parent)
    failed = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.stem}: exit {code} in {time.monotonic() - start:.0f}s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
