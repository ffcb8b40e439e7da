"""The candidate queue on both backends — a SQLite file (WAL) and a real PostgreSQL server started
for this module: several writer processes at once, a writer killed with -9, the whole lifecycle,
and PostgreSQL URLs that cannot work."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from conftest import ltau_md
from postgres_server import find_bin_dir, free_port, postgres_server

from ltau_md.errors import LtauError
from ltau_md.queue import CandidateQueue, campaign_lock, display_url

BIN_DIR = find_bin_dir()
NO_SERVER = "PostgreSQL server programs (initdb, pg_ctl, createdb, psql) not found in PATH or /usr/lib/postgresql/*/bin"
PW_USER, PW = "walker", "s3cret-pw"  # a role that must give a password (scram), for the auth-failure case
WRITERS, ROWS = 4, 30
N_ATOMS = 54

# One writer process: opens the queue, says it is ready, waits for the go file, then adds rows
# (step 0, 1, ...; forever with n < 0) and prints each returned row id.
WRITER = r"""
import sys, time
from pathlib import Path
import numpy as np
from ase.build import bulk
from ltau_md.queue import CandidateQueue
url, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
q = CandidateQueue(url, writable=True)
(go.parent / f"ready-{name}").touch()
while not go.exists():
    time.sleep(0.002)
i = 0
while n < 0 or i < n:
    a = bulk("Li", "bcc", a=3.5, cubic=True).repeat((3, 3, 3))
    a.rattle(0.01, seed=i)
    err = np.full(len(a), 0.1 + 1e-3 * i)
    row = q.add(a, error=err, p=1 - err, run=name, step=i, reason="lo", lo=0.05, source=name,
                latent=np.full((len(a), 8), i, dtype=np.float32))
    print(row, i, flush=True)
    i += 1
"""

_databases = itertools.count()


@pytest.fixture(scope="module")
def pg_server():
    if BIN_DIR is None:
        pytest.skip(NO_SERVER)
    with postgres_server(BIN_DIR, durable=False, hba=[f"host all {PW_USER} 127.0.0.1/32 scram-sha-256"]) as server:
        server.sql(f"CREATE ROLE {PW_USER} LOGIN PASSWORD '{PW}'")
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request, tmp_path) -> str:
    """A new, empty queue: a .db file that does not exist yet, or a new database on the server."""
    if request.param == "sqlite":
        return str(tmp_path / "q.db")
    return request.getfixturevalue("pg_server").create_database(f"q{next(_databases)}")


def start_writers(url: str, tmp_path: Path, n_rows: int, names: list[str]) -> list[subprocess.Popen]:
    """Writer processes that all opened the queue before any adds a row (they start together)."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(n_rows), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in names]  # fmt: skip
    deadline = time.time() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            raise AssertionError("writers did not start: " + " | ".join(p.communicate()[1][-500:] for p in procs))
        time.sleep(0.02)
    go.touch()
    return procs


def frame(seed: int):
    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    return atoms


def assert_one_line_error(exc: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(exc.value)
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


# -- several writers --------------------------------------------------------------------------------


def test_concurrent_writer_processes_lose_and_duplicate_no_row(queue_url, tmp_path):
    names = [f"w{k}" for k in range(WRITERS)]
    procs = start_writers(queue_url, tmp_path, ROWS, names)
    returned = {}
    for name, p in zip(names, procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        returned[name] = [tuple(map(int, line.split())) for line in out.splitlines()]
    q = CandidateQueue(queue_url, must_exist=True)
    rows = list(q.rows())
    assert len(q) == len(rows) == WRITERS * ROWS
    seen = Counter((r.run, r.step) for r in rows)
    assert seen == Counter({(name, i): 1 for name in names for i in range(ROWS)})  # every (writer, step) exactly once
    assert [r.id for r in rows] == sorted({r.id for r in rows})  # id order, ids unique
    by_id = {r.id: r for r in rows}
    for name in names:  # the id each add returned is that writer's own row (not a concurrent writer's)
        assert [(by_id[i].run, by_id[i].step) for i in (row for row, _ in returned[name])] == [(name, s) for s in range(ROWS)]
    for r in rows:  # data and key-value pairs belong together
        assert float(r.data["latent"][0, 0]) == r.step and r.key_value_pairs["source"] == r.run
    assert q.db.count("n_above_lo") == WRITERS * ROWS  # per-key index rows point at the right rows too


# -- a writer killed -------------------------------------------------------------------------------


def test_writer_killed_with_sigkill_leaves_only_complete_rows_and_a_writable_queue(queue_url, tmp_path):
    (proc,) = start_writers(queue_url, tmp_path, -1, ["k"])
    deadline = time.time() + 60
    while CandidateQueue(queue_url).count() < 15 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    if "://" not in queue_url:
        con = sqlite3.connect(queue_url)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    q = CandidateQueue(queue_url, must_exist=True, writable=True)
    rows = list(q.rows())
    assert len(rows) >= 15
    assert [r.step for r in rows] == list(range(len(rows)))  # the committed rows, in order, none half-written
    for r in rows:
        assert len(r.atoms) == N_ATOMS and r.status == "pending" and r.key_value_pairs["n_above_lo"] == N_ATOMS
        np.testing.assert_allclose(r.data["ltau_error"], 0.1 + 1e-3 * r.step)
        np.testing.assert_allclose(r.data["ltau_p"], 0.9 - 1e-3 * r.step)
        assert r.data["latent"].shape == (N_ATOMS, 8) and float(r.data["latent"][-1, -1]) == r.step
        assert r.max_error == pytest.approx(0.1 + 1e-3 * r.step)
    new = q.add(frame(0), error=np.zeros(16), p=np.ones(16), run="after", step=-1, reason="manual")
    assert len(q) == len(rows) + 1 and q.get(new).run == "after"


# -- lifecycle ---------------------------------------------------------------------------------------


def test_lifecycle_add_select_label_fail_export(queue_url, tmp_path):
    q = CandidateQueue(queue_url, writable=True)
    rng = np.random.default_rng(0)
    ids = []
    for i in range(6):
        err = np.full(16, 0.05) + (0.5 if i == 4 else 0.01 * i)  # frame 4 is the most uncertain
        ids.append(q.add(frame(i), error=err, p=1 - err, run="r0", step=10 * i, reason="lo", lo=0.1,
                         latent=rng.normal(size=(16, 4)) + 10.0 * i, model_fingerprint="m" * 64))  # fmt: skip
    dup = q.add(frame(9), error=np.full(16, 0.9), p=np.zeros(16), run="r0", step=90, reason="lo", status="duplicate")
    assert ids == sorted(ids) and len(set(ids + [dup])) == 7
    assert (q.count("pending"), q.count("duplicate"), len(q)) == (6, 1, 7)

    chosen = q.select(3)
    assert len(chosen) == 3 and chosen[0].id == ids[4] and dup not in {c.id for c in chosen}
    assert sorted(c.id for c in q.rows("pending", selected=True)) == sorted(c.id for c in chosen)
    assert len(list(q.rows("pending", selected=False))) == 3

    good, bad = chosen[0], chosen[1]
    labelled = good.atoms.copy()
    forces = np.random.default_rng(1).normal(size=(16, 3))
    labelled.calc = SinglePointCalculator(labelled, energy=-12.5, forces=forces, stress=np.arange(6) * 0.01)
    q.mark_labelled(good.id, labelled, "fake-dft")
    q.mark_failed(bad.id, "SCF did not converge", "fake-dft")

    q = CandidateQueue(queue_url, must_exist=True)  # what another process sees
    assert (q.count("labelled"), q.count("failed"), q.count("pending"), q.count("duplicate")) == (1, 1, 4, 1)
    assert [r.id for r in q.rows()] == sorted(ids + [dup])  # id order after updates too
    failed = q.get(bad.id)
    assert "SCF did not converge" in failed.data["failure"] and failed.key_value_pairs["labelled_by"] == "fake-dft"
    assert len(failed.data["ltau_error"]) == 16  # the update kept the row's other data
    done = q.get(good.id)
    assert done.status == "labelled" and done.selected and done.step == 40 and done.key_value_pairs["model"] == "sha256:" + "m" * 16

    assert q.export(tmp_path / "new.xyz", "labelled", selected_only=True) == 1
    (out,) = read(tmp_path / "new.xyz", ":")
    assert out.info["candidate_id"] == good.id and out.get_potential_energy() == pytest.approx(-12.5)
    np.testing.assert_allclose(out.get_forces(), forces, atol=1e-6)  # extxyz keeps 8 digits
    np.testing.assert_allclose(out.positions, labelled.positions, atol=1e-6)
    with pytest.raises(LtauError, match="no row 999"):
        q.get(999)


def test_a_label_is_never_replaced_by_a_later_failure_or_label(queue_url):
    # two relabellers on one queue: the first label stays, whatever the second one then records
    q, other = CandidateQueue(queue_url, writable=True), None
    row = q.add(frame(0), error=np.full(16, 0.2), p=np.full(16, 0.5), run="r0", step=0, reason="lo")
    first = frame(0)
    first.calc = SinglePointCalculator(first, energy=-1.0, forces=np.zeros((16, 3)))
    assert q.mark_labelled(row, first, "dft-a")
    other = CandidateQueue(queue_url, writable=True)
    second = frame(0)
    second.calc = SinglePointCalculator(second, energy=-2.0, forces=np.ones((16, 3)))
    assert not other.mark_failed(row, "SCF did not converge", "dft-b")
    assert not other.mark_labelled(row, second, "dft-b")
    got = CandidateQueue(queue_url, must_exist=True).get(row)
    assert got.status == "labelled" and got.key_value_pairs["labelled_by"] == "dft-a" and "failure" not in got.data
    assert CandidateQueue(queue_url).labelled_frames()[0].get_potential_energy() == pytest.approx(-1.0)


def test_a_status_read_and_its_write_are_one_step_for_other_writers(queue_url):
    # relabeller A reads 'pending' and is about to store its label; B's failure must not land between
    import threading

    q = CandidateQueue(queue_url, writable=True)
    row = q.add(frame(0), error=np.full(16, 0.2), p=np.full(16, 0.5), run="r0", step=0, reason="lo")
    other, result = CandidateQueue(queue_url, writable=True), {}
    second = threading.Thread(target=lambda: result.update(marked=other.mark_failed(row, "SCF did not converge", "b")))
    with q._read_then_write("test"):
        assert q.db.get(id=row).key_value_pairs["status"] == "pending"
        second.start()
        second.join(1.0)
        assert second.is_alive(), "the other writer did not wait for this read-then-write"
        q.db.update(row, status="labelled", labelled_by="a")
    second.join(60)
    assert result == {"marked": False}
    got = CandidateQueue(queue_url).get(row)
    assert got.status == "labelled" and got.key_value_pairs["labelled_by"] == "a"


def test_two_relabels_started_together_share_the_queue_and_label_each_frame_once(queue_url, tmp_path):
    # one relabel per node on a shared queue: each frame is claimed by one of them, computed once
    q = CandidateQueue(queue_url, writable=True)
    for i in range(12):
        q.add(frame(i), error=np.full(16, 0.2), p=np.full(16, 0.5), run="r0", step=i, reason="lo")
    (tmp_path / "markers").mkdir()
    spec = f'slow_calculators:SlowLJ:{{"delay": 0.3, "marker_dir": "{tmp_path / "markers"}", "start_dir": "{tmp_path}"}}'
    env = dict(os.environ, PYTHONPATH=f"{Path(__file__).resolve().parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [str(Path(sys.executable).parent / "ltau-md"), "relabel", queue_url, "--calculator", spec]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.time() + 60
        while len(list(tmp_path.glob("ready-*"))) < 2:
            assert time.time() < deadline and all(p.poll() is None for p in procs), "the relabels did not start"
            time.sleep(0.02)
        (tmp_path / "go").touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    assert len(list((tmp_path / "markers").iterdir())) == 12  # no frame computed twice
    labelled = [int(re.search(r"labelled (\d+)", out).group(1)) for out, _ in outs]
    assert sum(labelled) == 12 and min(labelled) > 0, labelled
    assert not any("--reclaim" in out for out, _ in outs)  # the other relabel runs on this host: its claims lapse by themselves
    assert CandidateQueue(queue_url).count("labelled") == 12


def test_a_postgresql_queue_holds_one_running_campaign_at_a_time(pg_server):
    url = pg_server.create_database(f"q{next(_databases)}")
    with campaign_lock(url):
        with pytest.raises(LtauError) as exc:
            with campaign_lock(url):
                pass
        assert_one_line_error(exc, "another ltau-md campaign is running on this database", "a database of its own")
    with campaign_lock(url):  # released when the first campaign ended
        pass


def _lock_holder(server, database: str) -> str:
    """The backend pid holding the campaign lock on ``database`` ('' if none)."""
    from ltau_md.queue import _PG_CAMPAIGN_LOCK

    return server.sql(f"SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' "
                      f"AND l.objid = {_PG_CAMPAIGN_LOCK} AND l.granted AND d.datname = '{database}'").strip()  # fmt: skip


def test_a_campaign_takes_its_postgresql_lock_again_after_the_server_dropped_its_session(pg_server, capsys):
    name = f"q{next(_databases)}"
    url = pg_server.create_database(name)
    with campaign_lock(url, every=0.1):
        first = _lock_holder(pg_server, name)
        pg_server.sql(f"SELECT pg_terminate_backend({first}, 5000)")  # what a server restart does to the session and its lock
        deadline = time.time() + 10
        while _lock_holder(pg_server, name) in ("", first):
            assert time.time() < deadline, "the lock was not taken again"
            time.sleep(0.05)
        with pytest.raises(LtauError, match="another ltau-md campaign is running"):
            with campaign_lock(url):
                pass
    assert "dropped this campaign's lock (restarted?); taken again" in capsys.readouterr().err
    assert _lock_holder(pg_server, name) == ""  # released at the end


def test_a_campaign_whose_dropped_lock_another_took_stops_with_a_one_line_error(pg_server):
    from psycopg2 import connect

    from ltau_md.queue import _PG_CAMPAIGN_LOCK

    name = f"q{next(_databases)}"
    url = pg_server.create_database(name)
    other = connect(url)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for `ltau-md loop ... &` in a batch script: it must stop anyway
    try:
        with pytest.raises(LtauError) as exc:
            with campaign_lock(url, every=0.5):
                pg_server.sql(f"SELECT pg_terminate_backend({_lock_holder(pg_server, name)}, 5000)")
                cur = other.cursor()
                cur.execute(f"SELECT pg_try_advisory_lock({_PG_CAMPAIGN_LOCK})")  # a second campaign, in the gap
                assert cur.fetchone()[0]
                time.sleep(20)  # the campaign's work, interrupted
        assert_one_line_error(exc, "another ltau-md campaign took the database meanwhile", "--resume it")
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handler of the block is gone with it
    finally:
        signal.signal(signal.SIGINT, ignored)
        other.close()


def test_a_campaign_whose_lock_session_the_server_still_keeps_ends_it_and_takes_the_lock_again(pg_server):
    """After a network failure the server may keep the old session (and the lock) for a while: the
    lock is this campaign's, not another's, so the keeper ends that session and goes on."""
    from psycopg2 import connect

    from ltau_md.queue import _LockKeeper

    name = f"q{next(_databases)}"
    url = pg_server.create_database(name)
    with campaign_lock(url, every=3600):
        first = _lock_holder(pg_server, name)
        keeper = _LockKeeper(url, name, connect(url), 3600, None)
        keeper.backend = int(first)  # as if this keeper had taken the lock on that session and lost its connection to it
        assert keeper._take_again() is True
        assert _lock_holder(pg_server, name) == str(keeper.backend) != first
        keeper.close()


def test_cli_lists_selects_relabels_and_exports_a_postgresql_queue(pg_server, tmp_path):
    url = pg_server.create_database(f"q{next(_databases)}")
    q = CandidateQueue(url)
    for i in range(3):
        q.add(frame(i), error=np.full(16, 0.1 + 0.01 * i), p=np.full(16, 0.5), run="r", step=i, reason="lo")
    assert "pending 3, labelled 0" in ltau_md("candidates", "list", url).stdout
    assert "selected 2 of 3" in ltau_md("candidates", "select", url, "--max", 2).stdout
    assert "labelled 2, failed 0" in ltau_md("relabel", url, "--calculator", "meam", "--selected").stdout
    ltau_md("candidates", "export", url, "-o", tmp_path / "new.xyz")
    assert len(read(tmp_path / "new.xyz", ":")) == 2 and CandidateQueue(url).count("labelled") == 2


# -- URLs that cannot work ------------------------------------------------------------------------------


def test_postgresql_url_with_nothing_listening_is_a_one_line_error_naming_it():
    url = f"postgresql://ltau@127.0.0.1:{free_port()}/queue"
    with pytest.raises(LtauError) as exc:
        CandidateQueue(url)
    assert_one_line_error(exc, url, "cannot reach the PostgreSQL server", "Connection refused", "host and port")
    p = ltau_md("candidates", "list", url, check=False)  # the command line says the same, once
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert url in p.stderr and "cannot reach" in p.stderr


def test_wrong_password_or_database_name_says_which_and_hides_the_password(pg_server):
    wrong = pg_server.url("postgres", PW_USER, "not-the-pw")
    with pytest.raises(LtauError) as exc:
        CandidateQueue(wrong)
    text = assert_one_line_error(exc, "authentication failed", f"{PW_USER}:***@127.0.0.1:{pg_server.port}/postgres")
    assert "not-the-pw" not in text
    with pytest.raises(LtauError) as exc:
        CandidateQueue(pg_server.url("no_such_db"))
    assert_one_line_error(exc, pg_server.url("no_such_db"), "database no_such_db does not exist", "createdb no_such_db")
    pg_server.sql(f"GRANT CREATE ON SCHEMA public TO {PW_USER}")
    right = pg_server.url("postgres", PW_USER, PW)  # and the right password works, and stays out of messages
    q = CandidateQueue(right)
    assert PW not in q.url and q.url == display_url(right) and len(q) == 0
    with pytest.raises(LtauError) as exc:
        q.get(1)
    assert PW not in str(exc.value)


def test_postgresql_url_without_the_extra_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ase_db_backends.postgresql", None)  # as if ase-db-backends were absent
    with pytest.raises(LtauError) as exc:
        CandidateQueue("postgresql://u:pw@db.example:5432/queue")
    text = assert_one_line_error(exc, "postgresql://u:***@db.example:5432/queue", 'pip install "ltau-md[postgres]"')
    assert ":pw@" not in text


def test_other_url_schemes_are_refused_naming_the_forms_that_work():
    with pytest.raises(LtauError) as exc:
        CandidateQueue("mysql://u@host/db")
    assert_one_line_error(exc, "mysql://u@host/db", "postgresql://", ".db")


def test_display_url_hides_passwords_in_the_user_part_and_the_query():
    assert display_url("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert display_url("postgresql://h/db?user=u&password=x&sslmode=require") == "postgresql://h/db?user=u&password=***&sslmode=require"
    assert display_url("postgresql://u@h/db") == "postgresql://u@h/db" and display_url(Path("q.db")) == "q.db"


def test_sqlite_queue_is_in_wal_mode(tmp_path):
    q = CandidateQueue(tmp_path / "q.db")
    q.add(frame(0), error=np.zeros(16), p=np.ones(16), run="r", step=0, reason="manual")
    con = sqlite3.connect(tmp_path / "q.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()
    assert os.path.getsize(tmp_path / "q.db") > 0
