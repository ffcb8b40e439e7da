"""A throwaway PostgreSQL server for the queue tests and the queue benchmark.

``initdb`` into a temporary directory, ``pg_ctl start`` listening on 127.0.0.1 only, on a free
port, with its unix socket inside that directory and trust authentication on loopback; stopped
and removed on exit, whatever happened inside. As root the server runs as user ``postgres``
(PostgreSQL refuses to run as root). The benchmark imports this file too (tests/ on sys.path).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "pg_ctl", "createdb", "psql")


def find_bin_dir() -> Path | None:
    """The directory with initdb, pg_ctl, createdb and psql: PATH first, then the newest
    /usr/lib/postgresql/*/bin (Debian keeps the server programs off PATH)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent, Path(found).parent] if found else []
    version = lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for d in candidates:
        if all((d / prog).is_file() and os.access(d / prog, os.X_OK) for prog in SERVER_PROGRAMS):
            return d
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    bin_dir: Path
    root: Path  # data/, the socket and the log live here
    port: int
    as_user: list[str]  # command prefix that runs a program as the server's owner

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [*self.as_user, str(self.bin_dir / program), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
        return p

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                        "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement).stdout  # fmt: skip


@contextmanager
def postgres_server(bin_dir: Path | None = None, durable: bool = True, hba: Sequence[str] = ()) -> Iterator[Server]:
    """A running server (database ``postgres``, superuser ``postgres``); ``durable=False`` turns
    off fsync (tests: a killed client, not a power cut); ``hba`` lines go before the trust ones."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server programs (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="ltau-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Server(bin_dir, root, free_port(), as_user)
    data = root / "data"
    started = False
    try:
        server.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        (data / "pg_hba.conf").write_text("\n".join([*hba, "local all all trust", "host all all 127.0.0.1/32 trust", ""]))
        opts = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root}"
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = True  # from here on a half-started server is stopped too
        server.run("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o", opts, "start")
        yield server
    finally:
        try:
            if started:
                server.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        except RuntimeError:
            pass  # never started, or already gone: nothing to stop
        finally:
            shutil.rmtree(root, ignore_errors=True)
