"""A throwaway PostgreSQL server for the tests (../shared/LOCAL-SERVICES.md): its own data directory
in a temp dir, a free port on 127.0.0.1 only, fsync off; stopped and removed afterwards.

initdb and postgres refuse to run as root: as root they run as the `postgres` user (`runuser`),
otherwise as the current user. `make test` installs PostgreSQL when it is missing
(scripts/install_system_deps.sh).
"""
from __future__ import annotations

import glob
import os
import shutil

import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from devtools.local_serve import free_port

PREFERRED_BIN = Path("/usr/lib/postgresql/15/bin")


def find_bin() -> Path | None:
    """The server binaries: $PROCTOR_PG_BIN, else PostgreSQL 15's, else the newest installed."""
    candidates = [os.environ.get("PROCTOR_PG_BIN", ""), str(PREFERRED_BIN)]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None."""
    if find_bin() is None:
        return ("PostgreSQL server binaries not found (/usr/lib/postgresql/15/bin); `make test` installs them "
                "(scripts/install_system_deps.sh), or set PROCTOR_PG_BIN")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root, and runuser (to start PostgreSQL as the postgres user) is missing"
    return None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Starts a server; yields its admin URL (postgresql://postgres@127.0.0.1:PORT/postgres)."""
    bin_dir = find_bin()
    assert bin_dir is not None, unavailable_reason()
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    tmp = Path(tempfile.mkdtemp(prefix="proctor-pg-"))
    data, sock, log = tmp / "data", tmp / "sock", tmp / "server.log"
    data.mkdir()
    sock.mkdir()
    log.touch()
    if as_root:
        shutil.chown(tmp, "postgres", "postgres")
        for path in (data, sock, log):
            shutil.chown(path, "postgres", "postgres")
    data.chmod(0o700)

    def run(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               f"server log:\n{log.read_text(errors='replace')}")

    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync")
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            port = free_port()
            try:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "start", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off "
                    f"-c full_page_writes=off")
                started = True
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        try:
            if started:
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def create_database(admin_url: str, name: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
