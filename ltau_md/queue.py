"""The candidate queue: frames flagged during MD, waiting for a reference (DFT) label — and their
whole lifecycle: add → select → label | fail → export.

An ``ase.db`` database (a SQLite file by default, or a PostgreSQL URL through ASE and the
``ase-db-backends`` package: ``pip install "ltau-md[postgres]"``), so anything that opens ase.db
opens it (``ase db cand.db``, ``ase.db.connect``). One row per candidate frame:

* the frame (positions, velocities as momenta, cell, pbc, species; labelled rows also carry the
  reference energy/forces/stress as calculator results),
* key-value pairs: ``status`` (pending → labelled | failed; or duplicate: flagged, but every flagged
  atom was already known, :mod:`ltau_md.dedup` — recorded, never selected), ``selected`` (marked by
  :meth:`CandidateQueue.select`), ``run``, ``step``, ``reason`` (lo | hi | manual),
  ``max_error`` / ``mean_error`` (predicted, eV/Å), ``n_above_lo``, ``model`` and ``artifact``
  (fingerprints: ``sha256:`` + the first 16 hex), ``source`` (where it came from), ``dump`` (the dump file the
  frame was also written to, if any), ``fix`` (the fix ID that flagged it) and ``phase`` (md or
  minimize),
* data: per-atom ``ltau_error`` and ``ltau_p`` arrays, ``flagged`` (above lo), optional per-atom
  ``latent`` features,
  ``failure`` text for failed labels, full fingerprints.

Relabellers claim a row before they label it (``claimed_by``: host/boot/pid/start time, and
``claimed_at``), so several ``ltau-md relabel`` on one queue (on several nodes, for a PostgreSQL
queue) share its frames instead of labelling each twice. A claim of a process that has ended on
this host lapses by itself; one made on another host holds until ``reclaim`` is asked for. A label,
once stored, is never replaced by a later one or by a failure.

Every write is one database transaction, so a writer killed at any point leaves the queue as it
was before or after that row, never in between. Several writers (MD walkers: separate processes)
may add rows at once: a SQLite queue is in WAL mode and a writer waits up to ``BUSY_TIMEOUT_S``
for another's transaction (processes on one machine: WAL needs shared memory, so not a network
file system); a PostgreSQL queue takes writers from any machine that reaches the server.

Selection: a stuck or slowly drifting run flags near-identical frames again and again; labelling
all of them wastes reference calculations. Each frame is summarised by the mean latent vector of
its most uncertain atoms (the environments that made it a candidate); frames are picked by
farthest-point sampling — the most uncertain frame first, then repeatedly the one farthest from
everything picked — until the cap is reached or the next one is closer than ``min_distance``.
Frames without stored latents fall back to their per-atom uncertainty profile.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md import atomic_write
from ltau_md.errors import LtauError
from ltau_md.pidfile import process_identity

STATUSES = ("pending", "labelled", "failed", "duplicate")
REASONS = ("lo", "hi", "manual")
TOP_ATOMS = 5  # atoms whose latents summarise a frame for selection
BUSY_TIMEOUT_S = 60.0  # SQLite: how long a writer waits for another's transaction before "database is locked"
CONNECT_TIMEOUT_S = 10  # PostgreSQL: a server that never answers is an error, not a hang at the first frame
_PG_SCHEMES = ("postgresql://", "postgres://")
_PG_INIT_LOCK = 0x6C746175  # advisory lock ("ltau") under which one opener creates a new database's tables
_PG_CAMPAIGN_LOCK = 0x6C746163  # advisory lock ("ltac") a running campaign holds on its database
_PG_ROWS_LOCK = 0x6C746172  # advisory lock ("ltar") held by a transaction that reads a row's status, then writes it
_PG_EXTRA = 'pip install "ltau-md[postgres]"'


def short_fingerprint(fingerprint: str | None) -> str:
    """The key-value form of a sha256 fingerprint: ``sha256:`` + its first 16 hex digits. The
    prefix keeps it a string for ase.db, which refuses strings that read as numbers (a prefix
    like ``01667234e9069785`` is a float)."""
    return f"sha256:{fingerprint[:16]}" if fingerprint else ""


def is_url(url: str | os.PathLike) -> bool:
    return "://" in str(url)


def display_url(url: str | os.PathLike) -> str:
    """``url`` with any password replaced by ``***``: queue names end up in messages and logs."""
    text = re.sub(r"^([a-z][a-z0-9+.-]*://[^/?#@:]*):[^/?#@]*@", r"\1:***@", str(url), flags=re.I)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", text, flags=re.I)


def _check_sqlite_file(path: Path) -> None:
    """An existing file must be an ase.db SQLite database (an empty file is a new one)."""
    if path.is_dir():
        raise LtauError(f"queue {path}: is a directory; name a .db file")
    if path.stat().st_size == 0:
        return
    # SQLite reads the header itself: no open() of ours, since closing any descriptor of the file
    # drops every POSIX lock this process holds on it, those of its open SQLite connections too
    # (WAL then takes them for gone and may reset the log under them)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            # read here, before a writer switches the file to WAL: someone's own ase.db stays as it was
            first = con.execute("SELECT key_value_pairs FROM systems LIMIT 1").fetchone() if "systems" in tables else None
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise LtauError(f"queue {path}: not an SQLite database; name a new .db file or an ase.db queue") from None
        raise LtauError(f"queue {path}: unreadable SQLite database ({exc}); name another .db file") from None
    if tables and "systems" not in tables:
        raise LtauError(f"queue {path}: an SQLite database but not an ase.db (no 'systems' table); name another .db file")
    if first is not None:
        try:
            keys = json.loads(first[0] or "{}")
        except ValueError:
            keys = {}
        _check_queue_row(keys, str(path))


def _check_queue_row(key_value_pairs: dict, name: str) -> None:
    """A row of a candidate queue carries ltau-md's status/run/step keys (else: someone's own ase.db)."""
    if not {"status", "run", "step"} <= set(key_value_pairs):
        raise LtauError(f"queue {name}: an ase.db but not a candidate queue (its rows lack ltau-md's status/run/step keys); "
                        "give the .db file a run's fix ltau wrote (queue keyword)")


def _probe_writable(path: Path) -> None:
    """Fail now, naming the file, if ``path`` could not be written later (without leaving anything)."""
    if path.exists():
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise LtauError(f"queue {path}: not writable; choose a file in a writable directory")
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError as exc:
        raise LtauError(f"queue {path}: cannot be created ({exc.strerror}); choose a writable directory") from None
    os.close(fd)
    os.unlink(path)


class _ClosingConnection(sqlite3.Connection):
    """Closed when its ``with`` block ends: ASE 3.29 enters each call's connection as a context
    manager, which commits but leaves it open until garbage collection; a process piling up
    unused connections to a WAL database keeps their locks, whose loss (see _check_sqlite_file)
    let another process reset the log under them."""

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self.close()


def _sqlite_database(path: Path, reader: bool = False):
    """ASE's SQLite backend in WAL mode (writers do not block readers, and a commit is one append
    to the log), waiting ``BUSY_TIMEOUT_S`` for a busy database (ASE waits 20 s), creating the
    tables of a new file under a write lock (writers starting together on one new file: one
    creates them, the others wait and find them)."""
    from ase.db.sqlite import SQLite3Database

    class QueueSQLite(SQLite3Database):
        def _connect(self):
            return sqlite3.connect(self.filename, timeout=BUSY_TIMEOUT_S, factory=_ClosingConnection)

        def _initialize(self, con):
            if not self.initialized and not con.in_transaction:
                if con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name='systems'").fetchone()[0] == 0:
                    con.execute("BEGIN IMMEDIATE")  # ASE checks again inside, then creates and commits
            super()._initialize(con)

    # a read-only queue stays as it is, and so does any file a reader opens (a writer made a queue WAL already)
    if not reader and (not path.exists() or os.access(path, os.W_OK)) and os.access(path.parent, os.W_OK):
        try:
            con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
            try:
                con.execute("PRAGMA journal_mode=WAL")  # stored in the file: once for all later openers
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise LtauError(f"queue {path}: cannot switch to WAL mode ({exc}); is another program holding it?") from None
    return QueueSQLite(os.path.abspath(path), create_indices=True, use_lock_file=False, serial=True)


def _postgresql_database(url: str):
    """ase-db-backends' PostgreSQL backend with three repairs: a new row's id is this session's
    ``currval`` (the backend reads the sequence's ``last_value``, the latest id of *any* session,
    so with several writers a row's species and keys went to another writer's row, or broke
    its foreign key); a new database's tables are created under an advisory lock (writers
    starting together); ``with db:`` can roll back (its connection wrapper lacks rollback)."""
    try:
        from ase_db_backends.postgresql import Connection, PostgreSQLDatabase
        from psycopg2 import connect
    except ImportError as exc:
        raise LtauError(f"queue {display_url(url)}: PostgreSQL queues need the postgres extra ({exc}); {_PG_EXTRA}") from None

    class QueuePostgreSQL(PostgreSQLDatabase):
        def _connect(self):
            con = Connection(connect(self.filename, **_connect_options(self.filename)))
            con.rollback = con.con.rollback
            return con

        def _initialize(self, con):
            if not self.initialized:  # held to the end of this transaction (ASE commits after creating)
                con.cursor().execute(f"SELECT pg_advisory_xact_lock({_PG_INIT_LOCK})")
            super()._initialize(con)

        def get_last_id(self, cur):
            cur.execute("SELECT currval('systems_id_seq')")
            return int(cur.fetchone()[0])

    return QueuePostgreSQL(url, create_indices=True, use_lock_file=False, serial=True)


def _postgresql_problem(exc: Exception) -> str:
    """What went wrong, and the fix, from a psycopg2 error."""
    text = str(exc).strip()
    detail = re.sub(r"^.*? failed: ", "", text.splitlines()[0] if text else type(exc).__name__).replace("FATAL:  ", "")
    m = re.search(r'database "([^"]*)" does not exist', text)
    if m:
        return f"database {m[1]} does not exist on the server; create it (createdb {m[1]}) or fix the name in the URL"
    m = re.search(r'role "([^"]*)" does not exist', text)
    if m:
        return f"user {m[1]} does not exist on the server; fix the user in the URL or create the role"
    if re.search(r"authentication failed|no password supplied|password is required", text):
        return f"authentication failed ({detail}); fix the user or password in the URL (or the server's pg_hba.conf)"
    # (the last: a URL without a host, and no server on the local socket)
    if re.search(r"Connection refused|could not connect|could not translate host name|timeout expired|No route to host|"
                 r"Network is unreachable|server closed the connection|terminating connection|the database system is|"
                 r"No such file or directory", text):  # fmt: skip
        return f"cannot reach the PostgreSQL server ({detail}); start it, or fix the host and port in the URL"
    if re.search(r"invalid dsn|invalid integer value|invalid URI|missing '='", text):
        return f"not a valid PostgreSQL URL ({detail}); write postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    if re.search(r"permission denied", text):
        return f"permission denied ({detail}); the user needs to create tables in that database (or use its owner)"
    return f"database error ({type(exc).__name__}: {detail[:200]})"


@contextmanager
def _database_errors(name: str, doing: str) -> Iterator[None]:
    """Driver errors (locked, unreachable, refused) as one-line errors naming the queue."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        hint = f" (another writer held it over {BUSY_TIMEOUT_S:.0f} s)" if "locked" in str(exc) else ""
        raise LtauError(f"queue {name}: cannot {doing}: {exc}{hint}") from None
    except Exception as exc:  # psycopg2's errors, without importing it for SQLite queues
        if not type(exc).__module__.startswith("psycopg2"):
            raise
        problem = _postgresql_problem(exc)
        raise LtauError(f"queue {name}: {problem}" if doing == "connect" else f"queue {name}: cannot {doing}: {problem}") from None


def _connect(url: str | os.PathLike, must_exist: bool, writable: bool):
    """ase.db without its lock file (a writer killed with -9 leaves it behind and every later
    writer waits forever; SQLite's and PostgreSQL's own locking keep transactions atomic) and in
    serial mode (ASE would otherwise turn each call into an MPI collective under mpiexec, and
    only one rank writes the queue)."""
    text = str(url)
    if not is_url(text):
        path = Path(text)
        if path.suffix != ".db":
            raise LtauError(f"queue {text}: a queue is an ase.db file ending in .db (or a postgresql:// URL)")
        if not path.parent.is_dir():
            raise LtauError(f"queue {text}: directory {path.parent} does not exist; create it first")
        if path.exists():
            _check_sqlite_file(path)
        if must_exist and path.is_file() and path.stat().st_size == 0:  # a new database to writers, not a queue to read
            raise LtauError(f"queue {text}: an empty file, not a queue; give the .db file a run's fix ltau wrote (queue keyword)")
        if not path.exists() and must_exist:
            raise LtauError(f"queue {text}: no such queue; give the .db file a run's fix ltau wrote (queue keyword)")
        if writable:
            _probe_writable(path)
        return _sqlite_database(path, reader=must_exist and not writable)
    name = display_url(text)
    if not text.lower().startswith(_PG_SCHEMES):
        raise LtauError(f"queue {name}: a queue URL is postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or name a .db file)")
    db = _postgresql_database(text)
    with _database_errors(name, "connect"):
        db.count()  # connect now: a wrong URL, server or password is reported here, not at the first frame
    return db


LOCK_CHECK_S = 30.0  # how often a campaign checks that its PostgreSQL lock's session is still alive
# TCP keepalives on the lock's connection: a server gone without closing it (a crashed host, a
# dropped route) shows as an error within about a minute instead of a check blocked for ~15 min
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def _connect_options(url: str, **more: Any) -> dict[str, Any]:
    """psycopg2.connect keywords: a connect timeout (and ``more``) unless the URL sets them itself."""
    return {k: v for k, v in {"connect_timeout": CONNECT_TIMEOUT_S, **more}.items() if k not in url}


def _try_campaign_lock(con) -> bool:
    cur = con.cursor()
    cur.execute(f"SELECT pg_try_advisory_lock({_PG_CAMPAIGN_LOCK})")
    held = bool(cur.fetchone()[0])
    con.commit()
    return held


class _LockKeeper:
    """Every ``every`` seconds, checks that the lock's session is alive. A server restart (or a
    terminated backend) ends the session and releases the lock with it, silently: the keeper then
    connects again and takes the lock back. Where the lock is held by this campaign's old session
    (the server still keeps it after a network failure), that session is ended first. If another
    campaign took the lock in between, the keeper records why in ``lost`` and sends ``signum`` to
    the main thread, where :func:`campaign_lock` raises it as KeyboardInterrupt: the campaign stops
    as on Ctrl-C, within ``every`` s of the other one's start. A server still down is tried again
    at the next check."""

    def __init__(self, url: str, name: str, con, every: float, signum: int | None) -> None:
        import threading

        self.url, self.name, self.con, self.every, self.signum = url, name, con, every, signum
        self.backend = con.get_backend_pid()
        self.lost: str | None = None
        self._stop = threading.Event()
        self._closing = threading.Lock()  # no interrupt once close() began: the block has ended
        self._thread = threading.Thread(target=self._run, name="ltau-md campaign lock", daemon=True)
        self._thread.start()

    def _alive(self) -> bool:
        from psycopg2 import Error, InterfaceError, OperationalError

        try:
            self.con.cursor().execute("SELECT 1")
            self.con.commit()
            return True
        except (OperationalError, InterfaceError):
            return False  # the session is gone, and the lock with it
        except Error:
            self.con.rollback()  # any other error leaves the session, and the lock, as they were
            return True

    def _take_again(self) -> bool | None:
        """True: held again; False: another session holds it; None: the server cannot be reached."""
        from psycopg2 import Error, connect

        try:
            self.con.close()
            self.con = connect(self.url, **_connect_options(self.url, **_KEEPALIVES))
            if _try_campaign_lock(self.con):
                self.backend = self.con.get_backend_pid()
                return True
            cur = self.con.cursor()
            cur.execute(f"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = {_PG_CAMPAIGN_LOCK} AND granted "
                        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")  # fmt: skip
            holders = {int(row[0]) for row in cur.fetchall()}
            self.con.commit()
            if holders == {self.backend}:  # still held by this campaign's old session, which we can no longer reach
                cur.execute(f"SELECT pg_terminate_backend({self.backend}, {int(1000 * CONNECT_TIMEOUT_S)})")
                self.con.commit()
                if _try_campaign_lock(self.con):
                    self.backend = self.con.get_backend_pid()
                    return True
            return False
        except Error:
            return None

    def _run(self) -> None:
        import signal
        import sys
        import threading

        while not self._stop.wait(self.every):
            if self._alive():
                continue
            taken = self._take_again()
            if taken is None:
                continue  # the server is not back yet
            if taken:
                print(f"ltau-md: queue {self.name}: the server dropped this campaign's lock (restarted?); taken again", file=sys.stderr, flush=True)
                continue
            self.lost = (f"queue {self.name}: the server dropped this campaign's lock (restarted?) and another ltau-md campaign took "
                         "the database meanwhile; this one stopped so that the two do not mix rows (--resume it once that one has ended)")  # fmt: skip
            with self._closing:
                if self._stop.is_set():
                    return
                print(f"ltau-md: {self.lost}", file=sys.stderr, flush=True)
                if self.signum is not None:
                    signal.pthread_kill(threading.main_thread().ident, self.signum)
            return

    def close(self) -> None:
        with self._closing:
            self._stop.set()
        self._thread.join(timeout=self.every + 2 * CONNECT_TIMEOUT_S)  # a check blocked on a dead server is left to end by itself
        self.con.close()


@contextmanager
def campaign_lock(url: str, every: float = LOCK_CHECK_S) -> Iterator[None]:
    """Hold a PostgreSQL queue for one campaign while the block runs: a session advisory lock, which
    the server releases when this process's connection ends, however it ends. A second campaign
    started on the same database meanwhile is refused (run names say only the strategy and
    iteration, so two campaigns would select, and delete, each other's rows). The lock is checked
    every ``every`` seconds and taken again after a server restart (:class:`_LockKeeper`); if
    another campaign took it meanwhile, the block is interrupted with a one-line error (run on the
    main thread; elsewhere only a warning is printed)."""
    import signal
    import threading

    name = display_url(url)
    try:
        from psycopg2 import connect
    except ImportError as exc:
        raise LtauError(f"queue {name}: PostgreSQL queues need the postgres extra ({exc}); {_PG_EXTRA}") from None
    with _database_errors(name, "connect"):
        con = connect(url, **_connect_options(url, **_KEEPALIVES))
    try:
        with _database_errors(name, "lock it for this campaign"):
            held = _try_campaign_lock(con)
    except BaseException:
        con.close()
        raise
    if not held:
        con.close()
        raise LtauError(f"queue {name}: another ltau-md campaign is running on this database; give each campaign a database "
                        "of its own, or wait for that one to end")  # fmt: skip

    def interrupted(signum: int, frame) -> None:
        raise KeyboardInterrupt

    # a signal of its own, so that a process started with SIGINT ignored (`cmd &` in a batch script) still stops
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, interrupted) if on_main else None
    keeper = _LockKeeper(url, name, con, every, signal.SIGUSR1 if on_main else None)
    try:
        yield
    except KeyboardInterrupt:
        if keeper.lost is not None:
            raise LtauError(keeper.lost) from None
        raise
    finally:
        keeper.close()
        if on_main:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL if previous is None else previous)


@dataclass
class Candidate:
    id: int
    atoms: Any
    status: str
    step: int
    run: str
    reason: str
    max_error: float
    key_value_pairs: dict[str, Any]
    data: dict[str, Any]

    @property
    def selected(self) -> bool:
        return bool(self.key_value_pairs.get("selected"))


class CandidateQueue:
    """``CandidateQueue("cand.db")``; rows are ase.db rows with the keys above.

    ``must_exist=True`` for readers (a mistyped name is an error, not a new empty queue);
    ``writable=True`` checks now that rows can be added later (a fix that will write it).
    ``url`` is the queue's name in messages: the one given, any password replaced by ``***``."""

    def __init__(self, url: str | os.PathLike, must_exist: bool = False, writable: bool = False) -> None:
        self.url = display_url(url)  # passwords stay out of messages and logs
        self.db = _connect(url, must_exist, writable)
        if must_exist or writable:  # a writer too: fix ltau must not add its frames to someone's own ase.db
            with _database_errors(self.url, "read"):
                first = next(iter(self.db.select(limit=1)), None)
            if first is not None:
                _check_queue_row(first.key_value_pairs, self.url)

    # -- rows -------------------------------------------------------------------------------

    def add(
        self,
        atoms,
        *,
        error: np.ndarray,
        p: np.ndarray,
        run: str,
        step: int,
        reason: str,
        model_fingerprint: str | None = None,
        artifact_fingerprint: str | None = None,
        lo: float | np.ndarray | None = None,
        latent: np.ndarray | None = None,
        source: str = "",
        dump: str | None = None,
        fix: str | None = None,
        status: str = "pending",
        phase: str | None = None,
    ) -> int:
        """Queue one frame as ``pending`` (or record it as a ``duplicate``); returns its row id."""
        error = np.asarray(error, dtype=np.float64)
        if error.shape != (len(atoms),) or np.shape(p) != (len(atoms),):
            raise LtauError(f"queue {self.url}: per-atom arrays must have one value per atom ({len(atoms)})")
        if reason not in REASONS:
            raise LtauError(f"queue {self.url}: reason must be one of {', '.join(REASONS)}, got {reason!r}")
        if status not in ("pending", "duplicate"):
            raise LtauError(f"queue {self.url}: a new row is pending or duplicate, not {status!r}")
        kvp: dict[str, Any] = {
            "status": status,
            "run": str(run),
            "step": int(step),
            "reason": reason,
            "max_error": float(error.max()),
            "mean_error": float(error.mean()),
            "model": short_fingerprint(model_fingerprint),
            "artifact": short_fingerprint(artifact_fingerprint),
            "source": str(source),
        }
        if dump:
            kvp["dump"] = str(dump)
        if fix:
            kvp["fix"] = str(fix)
        if phase:
            kvp["phase"] = str(phase)
        if lo is not None:
            kvp["n_above_lo"] = int(np.sum(error > lo))
        data: dict[str, Any] = {
            "ltau_error": error,
            "ltau_p": np.asarray(p, dtype=np.float64),
            "model_fingerprint": model_fingerprint or "",
            "artifact_fingerprint": artifact_fingerprint or "",
        }
        if lo is not None:
            data["flagged"] = error > lo
        if latent is not None:
            data["latent"] = np.asarray(latent, dtype=np.float32)
        frame = atoms.copy()
        frame.calc = None  # a candidate has no reference label yet
        with _database_errors(self.url, "add a row"):
            return int(self.db.write(frame, key_value_pairs=kvp, data=data))

    def __len__(self) -> int:
        return self.db.count()

    def count(self, status: str | None = None) -> int:
        return self.db.count(status=status) if status else self.db.count()

    def rows(self, status: str | None = None, selected: bool | None = None, run_prefix: str | None = None, **keys: Any) -> Iterator[Candidate]:
        """Rows in id order; ``status``, ``selected``, the start of ``run`` (one campaign
        iteration's walkers in a shared queue) and other key-value pairs filter them."""
        if status is not None and status not in STATUSES:
            raise LtauError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        sel = dict(keys)
        if status:
            sel["status"] = status
        for row in self.db.select(sort="id", **sel):  # PostgreSQL returns updated rows last unless told
            # filtered on the row's keys before its atoms and arrays are built (most of a row's cost)
            kvp = row.key_value_pairs
            if selected is not None and bool(kvp.get("selected")) != selected:
                continue
            if run_prefix is not None and not str(kvp.get("run", "")).startswith(run_prefix):
                continue
            yield self._candidate(row)

    def get(self, row_id: int) -> Candidate:
        try:
            row = self.db.get(id=int(row_id))
        except KeyError:
            raise LtauError(f"queue {self.url}: no row {row_id}; 'ltau-md candidates list {self.url}' shows the ids") from None
        return self._candidate(row)

    @staticmethod
    def _candidate(row) -> Candidate:
        kvp = dict(row.key_value_pairs)
        return Candidate(
            id=row.id,
            atoms=row.toatoms(add_additional_information=False),
            status=kvp.get("status", "pending"),
            step=int(kvp.get("step", -1)),
            run=str(kvp.get("run", "")),
            reason=str(kvp.get("reason", "")),
            max_error=float(kvp.get("max_error", float("nan"))),
            key_value_pairs=kvp,
            data=dict(row.data),
        )

    # -- lifecycle --------------------------------------------------------------------------

    def select(self, max_frames: int, min_distance: float | None = 0.0, run_prefix: str | None = None) -> list[Candidate]:
        """Mark at most ``max_frames`` pending frames, diverse in latent space, for relabelling
        (and unmark the other pending ones), in one transaction; returns the chosen rows.
        ``min_distance=None``: take ``max_frames`` whatever their distances (exact duplicates too);
        ``run_prefix``: only rows whose run starts with it take part."""
        if max_frames < 1:
            raise LtauError(f"select: at most {max_frames} frames; give at least 1")
        with _database_errors(self.url, "read the pending rows"):
            pending = list(self.rows("pending", run_prefix=run_prefix))
        chosen = farthest_point_selection(pending, max_frames, min_distance)
        ids = {c.id for c in chosen}
        with _database_errors(self.url, "mark the selection"), self.db:  # the marks change together or not at all
            for c in pending:
                self.db.update(c.id, selected=c.id in ids)
        for c in chosen:
            c.key_value_pairs["selected"] = True
        return chosen

    def remove(self, run_prefix: str, after_step: int | None = None) -> int:
        """Delete every row whose run starts with ``run_prefix`` (what a killed walker queued,
        before it runs again) — with ``after_step``, only its rows of later steps (a walker
        resumed from a restart at that step) — in one transaction; returns how many."""
        with _database_errors(self.url, "read rows"):
            ids = [c.id for c in self.rows(run_prefix=run_prefix) if after_step is None or c.step > after_step]
        if ids:
            with _database_errors(self.url, "remove rows"), self.db:
                self.db.delete(ids)
        return len(ids)

    def mark_labelled(self, row_id: int, labelled_atoms, calculator: str) -> bool:
        """Store the reference energy/forces/stress (``labelled_atoms.calc`` results); False, and
        nothing changed, if the row was labelled meanwhile (another relabeller on this queue)."""
        return self._mark(int(row_id), "record a label", atoms=labelled_atoms, status="labelled", labelled_by=str(calculator))

    def mark_failed(self, row_id: int, error: str, calculator: str) -> bool:
        """Record the reference's failure on a row; False, and nothing changed, if it was labelled
        meanwhile (a failure never replaces a label)."""
        return self._mark(int(row_id), "record a failure", status="failed", labelled_by=str(calculator), data={"failure": str(error)[:2000]})

    def _mark(self, row_id: int, doing: str, **update: Any) -> bool:
        with self._read_then_write(doing):
            if self.db.get(id=row_id).key_value_pairs.get("status") == "labelled":
                return False
            self.db.update(row_id, **update)
        return True

    def claim(self, row_id: int, owner: str, statuses: Sequence[str] = ("pending",), reclaim: bool = False) -> str | None:
        """Claim a row whose status is one of ``statuses`` for labelling by ``owner``
        (:func:`claim_owner`); returns None when claimed, else why not: ``"labelled"`` (or another
        status it has now) or the owner holding it (a live process on this host, any on another
        host unless ``reclaim``)."""
        with self._read_then_write("claim a row"):
            kvp = self.db.get(id=int(row_id)).key_value_pairs
            status, holder = kvp.get("status", "pending"), str(kvp.get("claimed_by", ""))
            if status not in statuses:
                return status
            if holder and holder != owner and not reclaim and _claim_holds(holder):
                return holder
            self.db.update(int(row_id), claimed_by=owner, claimed_at=time.time())
        return None

    @contextmanager
    def _read_then_write(self, doing: str) -> Iterator[None]:
        """One transaction that reads a row and then writes it, serialised with every other such
        transaction on this queue (SQLite: the write lock from the start; PostgreSQL: an advisory
        lock), so two of them never both act on what they read."""
        with _database_errors(self.url, doing), self.db:
            if is_url(self.db.filename):
                self.db.connection.cursor().execute(f"SELECT pg_advisory_xact_lock({_PG_ROWS_LOCK})")
            else:
                self.db.connection.execute("BEGIN IMMEDIATE")
            yield

    def labelled_frames(self, status: str = "labelled", selected_only: bool = False, run_prefix: str | None = None) -> list:
        """Frames of rows with ``status`` (labelled: with their reference energy/forces/stress as a
        SinglePointCalculator), carrying the row id, run, step and per-atom ``ltau_error``."""
        from ase.calculators.singlepoint import SinglePointCalculator

        frames = []
        for c in self.rows(status, selected=True if selected_only else None, run_prefix=run_prefix):
            atoms = c.atoms
            row = self.db.get(id=c.id)
            results = {k: row.get(k) for k in ("energy", "forces", "stress") if row.get(k) is not None}
            atoms.calc = SinglePointCalculator(atoms, **results) if results else None
            atoms.info.update({"candidate_id": c.id, "run": c.run, "step": c.step, "status": c.status,
                               "labelled_by": c.key_value_pairs.get("labelled_by", "")})  # fmt: skip
            atoms.arrays["ltau_error"] = np.asarray(c.data["ltau_error"])
            frames.append(atoms)
        return frames

    def export(self, path: str | os.PathLike, status: str = "labelled", selected_only: bool = False, run_prefix: str | None = None) -> int:
        """Write those frames as extended XYZ (atomically); returns how many."""
        from ase.io import write

        frames = self.labelled_frames(status, selected_only, run_prefix)
        if not frames:
            hint = (f"run 'ltau-md relabel {self.url} --calculator SPEC{' --selected' if selected_only else ''}' first"
                    if status == "labelled" else "choose another --status")
            raise LtauError(f"{self.url}: no {status} frames{' marked selected' if selected_only else ''} to export; {hint}")
        atomic_write.write_with(path, lambda fh: write(fh, frames, format="extxyz"), text=True)
        return len(frames)


# -- selection ----------------------------------------------------------------------------------


def claim_owner(pid: int | None = None) -> str:
    """A process as a claim's owner: host/boot/pid/start (a later process with the same pid, or
    the same pid after a reboot, is another owner)."""
    import socket

    pid = os.getpid() if pid is None else pid
    ident = process_identity(pid)
    return f"{socket.gethostname()}/{ident.get('boot', '?')}/{pid}/{ident.get('start', '?')}"


def claimed_here(holder: str) -> bool:
    """Whether a claim was made on this host since its last boot (so its process can be checked)."""
    return holder.split("/")[:2] == claim_owner().split("/")[:2]


def _claim_holds(holder: str) -> bool:
    """Whether a claim still holds: its process still runs (this host), or it was made on another
    host (which cannot be checked from here)."""
    if not claimed_here(holder):
        return True
    pid = holder.split("/")[2]
    return pid.isdigit() and claim_owner(int(pid)) == holder


def frame_vector(c: Candidate, top: int = TOP_ATOMS, use_latent: bool = True) -> np.ndarray:
    """A frame's position for diversity: the mean latent of its ``top`` most uncertain atoms, or
    (no latents, or ``use_latent=False``) its ``top`` largest predicted errors, zero-padded."""
    err = np.asarray(c.data.get("ltau_error"), dtype=np.float64)
    order = np.argsort(err)[::-1][:top]
    latent = c.data.get("latent")
    if use_latent and latent is not None and len(latent) == len(err):
        return np.asarray(latent, dtype=np.float64)[order].mean(axis=0)
    profile = np.zeros(max(top, 1))
    head = np.sort(err)[::-1][: len(profile)]
    profile[: len(head)] = head
    return profile


def _frame_vectors(candidates: Sequence[Candidate]) -> np.ndarray:
    """One row per frame; latents when every frame has them of one size, else error profiles for
    all (rows queued without latents — recovered from a dump, added by hand — mix with fix rows)."""
    vectors = [frame_vector(c) for c in candidates]
    if len({len(v) for v in vectors}) > 1 or any("latent" not in c.data for c in candidates):
        vectors = [frame_vector(c, use_latent=False) for c in candidates]
    return np.stack(vectors)


def farthest_point_selection(candidates: Sequence[Candidate], cap: int, min_distance: float | None = 0.0) -> list[Candidate]:
    """Up to ``cap`` candidates, most uncertain first, each far from those before it (stopping
    early when the next is no farther than ``min_distance``; never with None)."""
    if not candidates or cap <= 0:
        return []
    vectors = _frame_vectors(candidates)
    first = int(np.argmax([c.max_error for c in candidates]))
    chosen = [first]
    dist = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(cap, len(candidates)):
        dist[chosen] = -np.inf
        nxt = int(np.argmax(dist))
        if min_distance is not None and dist[nxt] <= min_distance:
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return [candidates[i] for i in chosen]

