import json

import numpy as np
import pytest
from conftest import atom_table, write_log

from ltau_md.error_log import AtomTable, ErrorLog, ErrorLogWriter, parse_window
from ltau_md.errors import ErrorLogError, LtauError


def test_epochs_written_whole_read_back_exactly(tmp_path, rng):
    atoms = atom_table()
    errs = rng.random((6, len(atoms))).astype(np.float32)
    log = write_log(tmp_path / "log", errs, atoms)
    assert log.n_epochs == 6 and log.n_atoms == len(atoms)
    assert isinstance(log.errors(), np.memmap)
    np.testing.assert_array_equal(np.asarray(log.errors()), errs)
    assert log.atoms.same_atoms(atoms)
    np.testing.assert_allclose(log.atoms.fref_norm, atoms.fref_norm)


def test_float16_log_halves_the_file_and_rounds_to_half_precision(tmp_path, rng):
    atoms = atom_table()
    errs = rng.random((3, len(atoms))).astype(np.float32)
    log = write_log(tmp_path / "log", errs, atoms, dtype="float16")
    assert (tmp_path / "log" / "errors.bin").stat().st_size == errs.size * 2
    np.testing.assert_array_equal(np.asarray(log.errors(), dtype=np.float32), errs.astype(np.float16).astype(np.float32))


def test_epoch_streamed_in_shuffled_batches_equals_whole_row(tmp_path, rng):
    atoms = atom_table()
    row = rng.random(len(atoms)).astype(np.float32)
    w = ErrorLogWriter(tmp_path / "log", atoms)
    w.begin_epoch(0)
    perm = rng.permutation(len(atoms))
    for batch in np.array_split(perm, 5):
        w.add(batch, row[batch])
    w.end_epoch()
    np.testing.assert_array_equal(ErrorLog(tmp_path / "log").epoch_errors(0), row)


def test_atoms_missing_from_an_epoch_are_nan(tmp_path):
    atoms = atom_table()
    w = ErrorLogWriter(tmp_path / "log", atoms)
    w.begin_epoch(0)
    w.add(np.arange(3), np.ones(3))
    w.end_epoch()
    row = ErrorLog(tmp_path / "log").epoch_errors(0)
    assert np.all(row[:3] == 1) and np.all(np.isnan(row[3:]))


def test_restart_from_checkpoint_replaces_the_rerun_epochs(tmp_path):
    atoms = atom_table()
    n = len(atoms)
    w = ErrorLogWriter(tmp_path / "log", atoms)
    for e in range(5):
        w.write_epoch(e, np.full(n, e, dtype=np.float32))
    # training resumed from the epoch-2 checkpoint: epochs 3, 4 are run again
    w2 = ErrorLogWriter(tmp_path / "log", atoms, resume=True)
    w2.write_epoch(3, np.full(n, 30.0, dtype=np.float32))
    log = ErrorLog(tmp_path / "log")
    assert log.epochs.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.asarray(log.errors())[:, 0], [0, 1, 2, 30])
    assert (tmp_path / "log" / "errors.bin").stat().st_size == 4 * n * 4


def test_killed_writer_leaves_log_readable_as_of_last_finished_epoch(tmp_path):
    atoms = atom_table()
    n = len(atoms)
    write_log(tmp_path / "log", np.ones((2, n), dtype=np.float32), atoms)
    # a row's bytes reached the disk but the writer died before committing meta.json
    with open(tmp_path / "log" / "errors.bin", "ab") as fh:
        fh.write(np.full(n // 2, 9, dtype=np.float32).tobytes())
    log = ErrorLog(tmp_path / "log")
    assert log.n_epochs == 2
    np.testing.assert_array_equal(np.asarray(log.errors()), np.ones((2, n)))


def test_resuming_with_different_training_atoms_is_refused(tmp_path):
    write_log(tmp_path / "log", np.ones((1, len(atom_table())), dtype=np.float32), atom_table())
    with pytest.raises(ErrorLogError, match="training atoms differ"):
        ErrorLogWriter(tmp_path / "log", atom_table(seed=5, n_atoms=4), resume=True)
    with pytest.raises(ErrorLogError, match="already exists"):
        ErrorLogWriter(tmp_path / "log", atom_table())


def test_truncated_errors_file_is_reported_in_one_line(tmp_path):
    atoms = atom_table()
    write_log(tmp_path / "log", np.ones((3, len(atoms)), dtype=np.float32), atoms)
    with open(tmp_path / "log" / "errors.bin", "r+b") as fh:
        fh.truncate(10)
    with pytest.raises(ErrorLogError) as exc:
        ErrorLog(tmp_path / "log")
    assert "errors.bin" in str(exc.value) and "truncated" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format="other"), "not an ltau-md error log"),
        (lambda m: m.update(format_version=99), "not supported"),
        (lambda m: m.update(dtype="int8"), "dtype"),
        (lambda m: m.update(epochs=[2, 1]), "increase"),
    ],
)
def test_bad_meta_json_is_reported(tmp_path, edit, message):
    atoms = atom_table()
    write_log(tmp_path / "log", np.ones((2, len(atoms)), dtype=np.float32), atoms)
    meta = json.loads((tmp_path / "log" / "meta.json").read_text())
    edit(meta)
    (tmp_path / "log" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ErrorLogError, match=message):
        ErrorLog(tmp_path / "log")


def test_column_blocks_stay_under_the_memory_bound_and_cover_every_atom(tmp_path, rng):
    atoms = atom_table(n_frames=20, n_atoms=25)
    errs = rng.random((12, len(atoms))).astype(np.float32)
    log = write_log(tmp_path / "log", errs, atoms)
    seen = []
    for cols, block in log.column_blocks(window=slice(2, 10), max_bytes=4 * 8 * 37):
        assert block.nbytes <= 4 * 8 * 37
        np.testing.assert_array_equal(block, errs[2:10, cols])
        seen.extend(range(cols.start, cols.stop))
    assert seen == list(range(len(atoms)))


def test_atom_ids_match_across_tables_in_any_order():
    a = atom_table()
    perm = np.random.default_rng(3).permutation(len(a))
    b = AtomTable(tuple(reversed(a.sources)), 1 - a.source[perm], a.frame[perm], a.atom[perm], a.species[perm], a.fref_norm[perm])
    cols = a.columns_of(b)
    np.testing.assert_array_equal(perm[cols], np.arange(len(a)))
    smaller = AtomTable(a.sources, a.source[:-3], a.frame[:-3], a.atom[:-3], a.species[:-3], a.fref_norm[:-3])
    assert np.sum(a.columns_of(smaller) < 0) == 3


def test_epoch_window_parsing():
    assert parse_window("10:") == slice(10, None)
    assert parse_window("-50:") == slice(-50, None)
    assert parse_window("3:7") == slice(3, 7)
    assert parse_window(None) is None
    with pytest.raises(LtauError, match="START:STOP"):
        parse_window("3")


def test_training_progress_shows_every_epoch_logged_since_the_last_poll(tmp_path, rng):
    from ltau_md.nequip.training import _progress_lines

    atoms = atom_table()
    write_log(tmp_path / "log", rng.random((3, len(atoms))).astype(np.float32), atoms)
    lines = _progress_lines(tmp_path / "log", "model 0", 5, shown=0)  # three epochs finished between two polls
    assert [line.split(",")[0] for line in lines] == ["model 0: epoch 1/5", "model 0: epoch 2/5", "model 0: epoch 3/5"]
    assert _progress_lines(tmp_path / "log", "model 0", 5, shown=3) == []
    assert _progress_lines(tmp_path / "missing", "model 0", 5, shown=0) == []
