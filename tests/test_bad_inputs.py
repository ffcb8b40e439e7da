"""Bad inputs, every command and every LAMMPS keyword: each is refused before any work starts with
one line on stderr that names the offending file/keyword/value and says what to do, a non-zero
exit status, no traceback, and nothing written or changed.

Table driven: ``CASES`` maps a case id to a :class:`Case`; each is its own test. Commands run
in-process (``ltau_app.cli.main``, captured at the file-descriptor level because LAMMPS writes from
C) in a fresh working directory; only the few cases about two MPI ranks start ``mpiexec``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import LI_BOX

BIN = Path(sys.executable).parent

# words that tell the user what to do, for messages without one obvious fix phrase
FIX_WORDS = re.compile(
    r"\b(must|give|pass|use|run|re-run|create|choose|remove|name|set|install|expected|need|add|restore|reinstall"
    r"|drop|fix|rename|write|delete|not|no such|needs?|save)\b"
)


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...] = ()  # ltau-md arguments; {placeholders} filled from the fixtures (see _context)
    expect: tuple[str, ...] = ()  # substrings of the error line: the offending file / keyword / value
    fix: str | None = None  # substring saying the fix; None: FIX_WORDS must match
    script: str | None = None  # LAMMPS lines after LI_BOX: runs `ltau-md run in.case -screen none -log none`
    files: tuple[tuple[str, str], ...] = ()  # (name, text) written into the case directory first
    setup: tuple[str, ...] = ()  # names of SETUPS run in the case directory first
    outputs: tuple[str, ...] = ()  # paths that must not exist afterwards
    ranks: int = 1  # 2: a subprocess under mpiexec
    status: int | None = None  # default: 2 for usage errors, 1 for LAMMPS script errors
    box: bool = True  # prepend LI_BOX to script

    @property
    def lammps(self) -> bool:
        return self.script is not None


def C(*argv: str, expect=(), fix=None, **kw) -> Case:
    return Case(argv=tuple(argv), expect=tuple(expect), fix=fix, **kw)


def L(script: str, expect=(), fix=None, **kw) -> Case:
    return Case(script=script, expect=tuple(expect), fix=fix, **kw)


PAIR = "pair_style nequip {model}\npair_coeff * * Li\n"
LOG = "Step Temp f_u[1] f_u[2]\n0 600 0.1 0.05\n10 610 0.2 0.08\nLoop time of 1.0 on 1 procs\n"

CASES: dict[str, Case] = {
    # -- make-data ----------------------------------------------------------------------------------
    "make-data/o-missing-dir": C("make-data", "--system", "Li", "-o", "nodir/li.xyz", expect=["nodir"], fix="create it",
                                 outputs=["nodir"]),
    "make-data/o-suffix": C("make-data", "--system", "Li", "-o", "li.txt", expect=["li.txt"], fix=".xyz", outputs=["li.txt"]),
    "make-data/o-is-dir": C("make-data", "--system", "Li", "-o", "sub.xyz", setup=["subdir.xyz"],
                            expect=["-o sub.xyz", "directory"], fix="give a file name"),
    "make-data/unknown-system": C("make-data", "--system", "Xx", "-o", "li.xyz", expect=["--system", "Xx"], fix="choose",
                                  outputs=["li.xyz"]),
    "make-data/atoms-1": C("make-data", "--system", "Li", "--atoms", "1", "-o", "li.xyz", expect=["--atoms 1"],
                           outputs=["li.xyz"]),
    "make-data/frames-0": C("make-data", "--system", "Li", "--frames", "0", "-o", "li.xyz", expect=["--frames 0"],
                            fix="must be", outputs=["li.xyz"]),
    "make-data/every-0": C("make-data", "--system", "Li", "--every", "0", "-o", "li.xyz", expect=["--every 0"],
                           fix="must be", outputs=["li.xyz"]),
    "make-data/temperature-negative": C("make-data", "--system", "Li", "--temperature", "-5", "-o", "li.xyz",
                                        expect=["--temperature", "-5"], fix="must be", outputs=["li.xyz"]),
    "make-data/temperature-end-negative": C("make-data", "--system", "Li", "--temperature-end", "-5", "-o", "li.xyz",
                                            expect=["--temperature-end", "-5"], fix="must be", outputs=["li.xyz"]),
    "make-data/temperature-nan": C("make-data", "--system", "Li", "--temperature", "nan", "-o", "li.xyz",
                                   expect=["--temperature", "nan"], fix="must be", outputs=["li.xyz"]),
    "make-data/vacancies-too-many": C("make-data", "--system", "Li", "--atoms", "54", "--vacancies", "54", "-o", "li.xyz",
                                      expect=["--vacancies 54"], fix="must be fewer", outputs=["li.xyz"]),
    "make-data/seed-negative": C("make-data", "--system", "Li", "--seed", "-1", "-o", "li.xyz", expect=["--seed", "-1"],
                                 outputs=["li.xyz"]),
    "make-data/frames-not-int": C("make-data", "--system", "Li", "--frames", "many", "-o", "li.xyz",
                                  expect=["--frames", "many"], outputs=["li.xyz"]),
    # -- train --------------------------------------------------------------------------------------
    "make-data/atoms-too-many": C("make-data", "--system", "Li", "--atoms", "1000000000", "-o", "li.xyz",
                                  expect=["--atoms 1000000000", "1000000"], fix="ask for fewer", outputs=["li.xyz"]),
    # LAMMPS stops the reference MD (atoms lost at 10^9 K): one line, not LAMMPS's exception
    "make-data/reference-md-stops": C("make-data", "--system", "Li", "--atoms", "16", "--temperature", "1e9", "--frames", "2",
                                      "--equilibrate", "10", "-o", "md.xyz", expect=["reference MD", "Lost atoms"],
                                      fix="lower the temperature", outputs=["md.xyz"]),
    "train/o-missing-dir": C("train", "--data", "{train_a}", "--val", "{val}", "-o", "nodir/model", expect=["nodir"],
                             fix="create it", outputs=["nodir"]),
    "train/o-is-file": C("train", "--data", "{train_a}", "--val", "{val}", "-o", "afile", files=[("afile", "x\n")],
                         expect=["afile"], fix="give a directory name"),
    "train/species-only-in-val": C("train", "--data", "{train_a}", "--val", "mg_labelled.xyz", "-o", "model",
                                   setup=["mg_labelled.xyz"], expect=["mg_labelled.xyz", "Mg", "--data"], outputs=["model"]),
    "train/empty-data": C("train", "--data", "empty.xyz", "--val", "{val}", "-o", "model", setup=["empty.xyz"],
                          expect=["empty.xyz"], outputs=["model"]),
    "train/no-forces": C("train", "--data", "noforces.xyz", "--val", "{val}", "-o", "model", setup=["noforces.xyz"],
                         expect=["noforces.xyz", "forces"], outputs=["model"]),
    "train/no-energy": C("train", "--data", "noenergy.xyz", "--val", "{val}", "-o", "model", setup=["noenergy.xyz"],
                         expect=["noenergy.xyz", "energy"], outputs=["model"]),
    "train/nan-positions": C("train", "--data", "nan.xyz", "--val", "{val}", "-o", "model", setup=["nan.xyz"],
                             expect=["nan.xyz", "NaN"], fix="fix or drop", outputs=["model"]),
    "train/nan-in-val": C("train", "--data", "{train_a}", "--val", "nan.xyz", "-o", "model", setup=["nan.xyz"],
                          expect=["nan.xyz", "NaN"], fix="fix or drop", outputs=["model"]),
    "train/missing-data-file": C("train", "--data", "nowhere.xyz", "-o", "model", expect=["nowhere.xyz"], fix="no such file",
                                 outputs=["model"]),
    "train/no-data": C("train", "-o", "model", expect=["--data"], fix="give", outputs=["model"]),
    "train/unknown-species": C("train", "--data", "{train_a}", "--val", "{val}", "--species", "Xx", "-o", "model",
                               expect=["--species", "Xx"], outputs=["model"]),
    "train/species-missing-element": C("train", "--data", "{train_a}", "--val", "{val}", "--species", "Mg", "-o", "model",
                                       expect=["Li", "--species Mg"], fix="add it to --species", outputs=["model"]),
    "train/epochs-0": C("train", "--data", "{train_a}", "-o", "model", "--epochs", "0", expect=["--epochs", "0"],
                        fix="at least 1", outputs=["model"]),
    "train/lr-0": C("train", "--data", "{train_a}", "-o", "model", "--lr", "0", expect=["--lr", "0"], fix="must be",
                    outputs=["model"]),
    "train/ensemble-0": C("train", "--data", "{train_a}", "-o", "model", "--ensemble", "0", expect=["--ensemble", "0"],
                          fix="at least 1", outputs=["model"]),
    "train/r-max-negative": C("train", "--data", "{train_a}", "-o", "model", "--r-max", "-1", expect=["--r-max", "-1"],
                              fix="must be", outputs=["model"]),
    "train/reweight-without-weights": C("train", "--data", "{train_a}", "--val", "{val}", "--reweight", "easy", "-o",
                                        "model", expect=["--reweight", "--weights-from"], outputs=["model"]),
    "train/weights-from-without-reweight": C("train", "--data", "{train_a}", "--val", "{val}", "--weights-from", "{art}", "-o",
                                             "model", expect=["--weights-from", "--reweight"], outputs=["model"]),
    "train/weights-from-missing": C("train", "--data", "{train_a}", "--val", "{val}", "--reweight", "easy",
                                    "--weights-from", "nowhere.ltau", "-o", "model", expect=["nowhere.ltau"],
                                    outputs=["model"]),
    "train/config-bad-yaml": C("train", "--config", "bad.yaml", "-o", "model", files=[("bad.yaml", "trainer: [1, 2\n")],
                               expect=["bad.yaml", "YAML"], outputs=["model"]),
    "train/config-not-utf8": C("train", "--data", "{train_a}", "--config", "latin1.yaml", "-o", "model", setup=["latin1.yaml"],
                               expect=["latin1.yaml, line 2", "UTF-8"], fix="save it as UTF-8", outputs=["model"]),
    "train/config-without-sections": C("train", "--data", "{train_a}", "--config", "t.yaml", "-o", "model",
                                       files=[("t.yaml", "foo: 1\n")], expect=["t.yaml", "'trainer'"], fix="needs",
                                       outputs=["model"]),
    "train/config-trainer-not-a-mapping": C("train", "--data", "{train_a}", "--config", "t.yaml", "-o", "model",
                                            files=[("t.yaml", "trainer: 5\ntraining_module: {model: {}}\n")],
                                            expect=["t.yaml", "'trainer'"], fix="must be mappings", outputs=["model"]),
    "train/o-already-trained": C("train", "--data", "{train_a}", "--val", "{val}", "-o", "model", setup=["model_manifest"],
                                 expect=["model", "already holds a trained ensemble"], fix="choose another -o"),
    # -- fit ----------------------------------------------------------------------------------------
    "fit/o-missing-dir": C("fit", "--model", "{model}", "-o", "nodir/li.ltau", expect=["nodir"], fix="create it",
                           outputs=["nodir"]),
    "fit/model-missing": C("fit", "--model", "nowhere", "-o", "li.ltau", expect=["nowhere", "model"], outputs=["li.ltau"]),
    "fit/model-truncated-ensemble-json": C("fit", "--model", "trunc_model", "-o", "li.ltau", setup=["trunc_model"],
                                           expect=["ensemble.json", "truncated"], fix="re-run 'ltau-md train'",
                                           outputs=["li.ltau"]),
    "fit/model-empty-dir": C("fit", "--model", "sub", "-o", "li.ltau", setup=["subdir"], expect=["sub", "ensemble.json"],
                             outputs=["li.ltau"]),
    "fit/model-txt": C("fit", "--model", "model.txt", "--logs", "sub", "-o", "li.ltau", setup=["subdir"],
                       files=[("model.txt", "not a model\n")], expect=["model.txt"], fix="checkpoint",
                       outputs=["li.ltau"]),
    "fit/k-0": C("fit", "--model", "{model}", "--k", "0", "-o", "li.ltau", expect=["--k", "0"], fix="at least 1",
                 outputs=["li.ltau"]),
    "fit/k-too-large": C("fit", "--model", "{model}", "--k", "100000", "-o", "li.ltau", expect=["100000", "648"],
                         outputs=["li.ltau"]),
    "fit/atol-negative": C("fit", "--model", "{model}", "--atol", "-1", "-o", "li.ltau", expect=["--atol", "-1"],
                           fix="must be", outputs=["li.ltau"]),
    "fit/rtol-negative": C("fit", "--model", "{model}", "--rtol", "-1", "-o", "li.ltau", expect=["--rtol", "-1"],
                           fix="must be", outputs=["li.ltau"]),
    "fit/contact-fraction-above-1": C("fit", "--model", "{model}", "--contact-fraction", "1.5", "-o", "li.ltau",
                                      expect=["--contact-fraction", "1.5"], fix="must be in [0, 1]", outputs=["li.ltau"]),
    "fit/window-bad": C("fit", "--model", "{model}", "--window", "abc", "-o", "li.ltau", expect=["abc"], outputs=["li.ltau"]),
    "fit/ckpt-without-logs": C("fit", "--model", "{ckpt}", "-o", "li.ltau", expect=["--logs"], fix="give the error-log",
                               outputs=["li.ltau"]),
    "fit/logs-missing": C("fit", "--model", "{ckpt}", "--logs", "nowhere", "-o", "li.ltau", expect=["nowhere"],
                          outputs=["li.ltau"]),
    "fit/error-log-truncated": C("fit", "--model", "m", "-o", "li.ltau", setup=["model_log_truncated"],
                                 expect=["atoms.npz", "unreadable"], outputs=["li.ltau"]),
    "fit/data-missing": C("fit", "--model", "{model}", "--data", "nowhere.xyz", "-o", "li.ltau", expect=["nowhere.xyz"],
                          fix="no such file", outputs=["li.ltau"]),
    "fit/data-nan": C("fit", "--model", "{model}", "--data", "train_a.xyz", "{train_b}", "-o", "li.ltau",
                      setup=["nan_train_a"], expect=["train_a.xyz", "NaN"], fix="fix or drop", outputs=["li.ltau"]),
    "fit/o-is-file": C("fit", "--model", "{model}", "-o", "afile", files=[("afile", "x\n")], expect=["afile"],
                       fix="give a directory name"),
    "fit/o-holds-an-artifact": C("fit", "--model", "{model}", "-o", "art", setup=["art"], expect=["-o art", "artifact"],
                                 fix="--force"),
    "fit/index-unknown": C("fit", "--model", "{model}", "--index", "tree", "-o", "li.ltau", expect=["--index", "tree"],
                           outputs=["li.ltau"]),
    # -- calibrate ----------------------------------------------------------------------------------
    "calibrate/plots-missing-dir": C("calibrate", "art", "--data", "{val}", "--plots", "nodir/plots", setup=["art"],
                                     expect=["nodir"], fix="create it", outputs=["nodir"]),
    "calibrate/data-nan": C("calibrate", "art", "--data", "nan.xyz", setup=["art", "nan.xyz"], expect=["nan.xyz", "NaN"],
                            fix="fix or drop"),
    "calibrate/data-no-forces": C("calibrate", "art", "--data", "noforces.xyz", setup=["art", "noforces.xyz"],
                                  expect=["noforces.xyz", "forces"]),
    "calibrate/data-other-species-in-second-file": C("calibrate", "art", "--data", "{val}", "mg_labelled.xyz",
                                                     setup=["art", "mg_labelled.xyz"], expect=["mg_labelled.xyz: frame 0", "Mg"]),
    "calibrate/data-too-few-atoms": C("calibrate", "art", "--data", "few.xyz", setup=["art", "few.xyz"],
                                      expect=["12 Li atoms", "≥ 20"], fix="give more validation frames"),
    "calibrate/data-empty": C("calibrate", "art", "--data", "empty.xyz", setup=["art", "empty.xyz"], expect=["empty.xyz"]),
    "calibrate/error-model-unknown": C("calibrate", "art", "--data", "{val}", "--error-model", "cubic", setup=["art"],
                                       expect=["--error-model", "cubic"], fix="choose from"),
    "calibrate/data-missing": C("calibrate", "art", "--data", "nowhere.xyz", setup=["art"], expect=["nowhere.xyz"],
                                fix="no such file"),
    "calibrate/artifact-missing": C("calibrate", "nowhere.ltau", "--data", "{val}", expect=["nowhere.ltau"],
                                    fix="ltau-md fit"),
    "calibrate/artifact-no-meta": C("calibrate", "art", "--data", "{val}", setup=["art", "art_nometa"],
                                    expect=["meta.json", "missing"], fix="ltau-md fit"),
    "calibrate/artifact-truncated-npz": C("calibrate", "art", "--data", "{val}", setup=["art", "art_trunc"],
                                          expect=["train.npz"], fix="re-run 'ltau-md fit'"),
    "calibrate/artifact-meta-k-text": C("calibrate", "art", "--data", "{val}", setup=["art", "art_k_text"],
                                        expect=["meta.json", "'k'"]),
    "calibrate/n-1": C("calibrate", "art", "--data", "{val}", "--n", "1", setup=["art"], expect=["--n", "1"],
                       fix="at least 2"),
    "calibrate/k-0": C("calibrate", "art", "--data", "{val}", "--k", "0", setup=["art"], expect=["--k", "0"],
                       fix="at least 1"),
    "calibrate/model-missing": C("calibrate", "art", "--data", "{val}", "--model", "nowhere", setup=["art"],
                                 expect=["nowhere", "model"]),
    "calibrate/plots-is-file": C("calibrate", "art", "--data", "{val}", "--plots", "afile", setup=["art"],
                                 files=[("afile", "x\n")], expect=["afile"], fix="give a directory name"),
    # -- predict ------------------------------------------------------------------------------------
    "predict/calibrated-without-calibration": C("predict", "{art}", "{val}", "--predictor", "calibrated", "-o", "out.xyz",
                                                expect=["no calibrated error model"], fix="ltau-md calibrate", outputs=["out.xyz"]),
    "predict/o-missing-dir": C("predict", "{art}", "{val}", "-o", "nodir/out.xyz", expect=["nodir"], fix="create it",
                               outputs=["nodir"]),
    "predict/o-suffix": C("predict", "{art}", "{val}", "-o", "out.txt", expect=["out.txt"], fix=".xyz",
                          outputs=["out.txt"]),
    "predict/frames-nan": C("predict", "{art}", "nan.xyz", "-o", "out.xyz", setup=["nan.xyz"], expect=["nan.xyz", "NaN"],
                            fix="fix or drop", outputs=["out.xyz"]),
    "predict/frames-missing": C("predict", "{art}", "nowhere.xyz", "-o", "out.xyz", expect=["nowhere.xyz"],
                                fix="no such file", outputs=["out.xyz"]),
    "predict/frames-empty": C("predict", "{art}", "empty.xyz", "-o", "out.xyz", setup=["empty.xyz"], expect=["empty.xyz"],
                              outputs=["out.xyz"]),
    "predict/frames-not-xyz": C("predict", "{art}", "junk.xyz", "-o", "out.xyz", files=[("junk.xyz", "3\nnot\nextxyz\n")],
                                expect=["junk.xyz"], outputs=["out.xyz"]),
    "predict/frames-unknown-element": C("predict", "{art}", "zz.xyz", "-o", "out.xyz",
                                        files=[("zz.xyz", "2\nProperties=species:S:1:pos:R:3\nLi 0 0 0\nZz 1 1 1\n")],
                                        expect=["zz.xyz, line 4", "unknown element 'Zz'"], fix="fix that line", outputs=["out.xyz"]),
    "predict/frames-word-for-number": C("predict", "{art}", "w.xyz", "-o", "out.xyz",
                                        files=[("w.xyz", "2\nProperties=species:S:1:pos:R:3\nLi 0 0 0\nLi abc 1 1\n")],
                                        expect=["w.xyz, line 4", "'abc' is not a number"], fix="fix that line",
                                        outputs=["out.xyz"]),
    "predict/frames-other-species": C("predict", "{art}", "mg.xyz", "-o", "out.xyz", setup=["mg.xyz"], expect=["mg.xyz", "Mg"],
                                      outputs=["out.xyz"]),
    "predict/model-truncated-checkpoint": C("predict", "{art}", "{val}", "--model", "half.ckpt", "-o", "out.xyz",
                                            setup=["half.ckpt"], expect=["half.ckpt", "cannot load the model"],
                                            fix="give a whole nequip checkpoint", outputs=["out.xyz"]),
    "predict/model-truncated-ensemble-json": C("predict", "{art}", "{val}", "--model", "trunc_model", "-o", "out.xyz",
                                               setup=["trunc_model"], expect=["ensemble.json", "truncated"],
                                               fix="re-run 'ltau-md train'", outputs=["out.xyz"]),
    "predict/model-missing": C("predict", "{art}", "{val}", "--model", "nowhere.ckpt", "-o", "out.xyz",
                               expect=["nowhere.ckpt", "model"], outputs=["out.xyz"]),
    "predict/artifact-no-meta": C("predict", "art", "{val}", "-o", "out.xyz", setup=["art", "art_nometa"],
                                  expect=["meta.json", "missing"], fix="ltau-md fit", outputs=["out.xyz"]),
    "predict/artifact-truncated-npz": C("predict", "art", "{val}", "-o", "out.xyz", setup=["art", "art_trunc"],
                                        expect=["train.npz"], fix="re-run 'ltau-md fit'", outputs=["out.xyz"]),
    "predict/artifact-meta-bad-json": C("predict", "art", "{val}", "-o", "out.xyz", setup=["art", "art_badjson"],
                                        expect=["meta.json", "JSON"], fix="re-run 'ltau-md fit'", outputs=["out.xyz"]),
    "predict/artifact-meta-descriptor-dim": C("predict", "art", "{val}", "-o", "out.xyz", setup=["art", "art_dim"],
                                              expect=["descriptor", "99"], fix="ltau-md fit",
                                              outputs=["out.xyz"]),
    "predict/k-0": C("predict", "{art}", "{val}", "--k", "0", "-o", "out.xyz", expect=["--k", "0"], fix="at least 1",
                     outputs=["out.xyz"]),
    "predict/k-too-large": C("predict", "{art}", "{val}", "--k", "100000", "-o", "out.xyz", expect=["100000"],
                             outputs=["out.xyz"]),
    "predict/o-existing-unchanged": C("predict", "{art}", "nan.xyz", "-o", "old.xyz", setup=["nan.xyz"],
                                      files=[("old.xyz", "keep me\n")], expect=["nan.xyz"]),
    # -- cutoffs ------------------------------------------------------------------------------------
    "cutoffs/plot-missing-dir": C("cutoffs", "values.npy", "--n", "100", "--plot", "nodir/c.png", setup=["values.npy"],
                                  expect=["nodir"], fix="create it", outputs=["nodir"]),
    "cutoffs/plot-suffix": C("cutoffs", "values.npy", "--n", "100", "--plot", "c.txt", setup=["values.npy"],
                             expect=["c.txt"], fix=".png", outputs=["c.txt"]),
    "cutoffs/alpha-5": C("cutoffs", "values.npy", "--n", "100", "--alpha", "5", setup=["values.npy"], expect=["--alpha", "5"],
                         fix="must be in"),
    "cutoffs/alpha-0": C("cutoffs", "values.npy", "--n", "100", "--alpha", "0", setup=["values.npy"], expect=["--alpha", "0"],
                         fix="must be in"),
    "cutoffs/n-1": C("cutoffs", "values.npy", "--n", "1", setup=["values.npy"], expect=["--n", "1"], fix="at least 2"),
    "cutoffs/values-missing": C("cutoffs", "nowhere.npy", "--n", "100", expect=["nowhere.npy"], fix="no such file"),
    "cutoffs/values-not-npy": C("cutoffs", "text.npy", "--n", "100", files=[("text.npy", "1 2 3\n")], expect=["text.npy"],
                                fix="numpy.save"),
    "cutoffs/values-2d": C("cutoffs", "2d.npy", "--n", "100", setup=["2d.npy"], expect=["2d.npy", "(3, 4)"]),
    "cutoffs/values-nan": C("cutoffs", "nan.npy", "--n", "100", setup=["nan.npy"], expect=["nan.npy", "NaN"]),
    "cutoffs/values-pickled": C("cutoffs", "obj.npy", "--n", "100", setup=["obj.npy"], expect=["obj.npy", "pickle"]),
    "cutoffs/values-strings": C("cutoffs", "str.npy", "--n", "100", setup=["str.npy"], expect=["str.npy", "numeric"]),
    "cutoffs/values-one": C("cutoffs", "one.npy", "--n", "100", setup=["one.npy"], expect=["one.npy", "at least 2"]),
    "cutoffs/species-length": C("cutoffs", "values.npy", "--n", "100", "--species", "sp3.npy",
                                setup=["values.npy", "sp3.npy"], expect=["sp3.npy"]),
    "cutoffs/species-unknown-symbol": C("cutoffs", "values.npy", "--n", "100", "--species", "spxx.npy",
                                        setup=["values.npy", "spxx.npy"], expect=["spxx.npy", "Xx"]),
    "cutoffs/species-not-an-atomic-number": C("cutoffs", "values.npy", "--n", "100", "--species", "sp999.npy",
                                              setup=["values.npy", "sp999.npy"], expect=["sp999.npy", "999"]),
    "cutoffs/kind-unknown": C("cutoffs", "values.npy", "--n", "100", "--kind", "energy", setup=["values.npy"],
                              expect=["--kind", "energy"]),
    # -- candidates ---------------------------------------------------------------------------------
    "candidates/list-missing-queue": C("candidates", "list", "nothere.db", expect=["nothere.db"], fix="no such queue",
                                       outputs=["nothere.db"]),
    "candidates/list-text-db": C("candidates", "list", "x.db", files=[("x.db", "just some text\n")], expect=["x.db"],
                                 fix="not an SQLite database"),
    "candidates/list-empty-file": C("candidates", "list", "e.db", files=[("e.db", "")], expect=["e.db", "empty file"],
                                    fix="give the .db file"),
    "candidates/list-not-db-suffix": C("candidates", "list", "queue.txt", files=[("queue.txt", "")],
                                       expect=["queue.txt"], fix="ending in .db"),
    "candidates/list-foreign-sqlite": C("candidates", "list", "other.db", setup=["other.db"], expect=["other.db", "ase.db"]),
    "candidates/list-plain-ase-db": C("candidates", "list", "plain.db", setup=["plain.db"], expect=["plain.db", "not a candidate queue"],
                                      fix="fix ltau wrote"),
    "candidates/list-missing-dir": C("candidates", "list", "nodir/q.db", expect=["nodir"], outputs=["nodir"]),
    "candidates/list-bad-status": C("candidates", "list", "good.db", "--status", "done", setup=["good.db"],
                                    expect=["--status", "done"]),
    "candidates/show-missing-row": C("candidates", "show", "good.db", "999", setup=["good.db"], expect=["good.db", "999"],
                                     fix="candidates list"),
    "candidates/show-id-not-int": C("candidates", "show", "good.db", "first", setup=["good.db"], expect=["first"]),
    "candidates/select-max-0": C("candidates", "select", "good.db", "--max", "0", setup=["good.db"], expect=["--max", "0"],
                                 fix="at least 1"),
    "candidates/select-min-distance-negative": C("candidates", "select", "good.db", "--max", "2", "--min-distance", "-1",
                                                 setup=["good.db"], expect=["--min-distance", "-1"], fix="must be"),
    "candidates/select-missing-queue": C("candidates", "select", "nothere.db", "--max", "2", expect=["nothere.db"],
                                         fix="no such queue", outputs=["nothere.db"]),
    "candidates/export-o-missing-dir": C("candidates", "export", "good.db", "--status", "pending", "-o", "nodir/f.xyz",
                                         setup=["good.db"], expect=["nodir"], fix="create it", outputs=["nodir"]),
    "candidates/export-o-suffix": C("candidates", "export", "good.db", "--status", "pending", "-o", "f.txt",
                                    setup=["good.db"], expect=["f.txt"], fix=".xyz", outputs=["f.txt"]),
    "candidates/export-missing-queue": C("candidates", "export", "nothere.db", "-o", "f.xyz", expect=["nothere.db"],
                                         fix="no such queue", outputs=["nothere.db", "f.xyz"]),
    "candidates/export-nothing-labelled": C("candidates", "export", "good.db", "-o", "f.xyz", setup=["good.db"],
                                            expect=["good.db", "labelled"], outputs=["f.xyz"]),
    "candidates/no-action": C("candidates", expect=["ACTION"], fix="required"),
    # -- relabel ------------------------------------------------------------------------------------
    "relabel/calculator-unknown": C("relabel", "good.db", "--calculator", "nosuch", setup=["good.db"],
                                    expect=["nosuch", "meam"], fix="give one of them"),
    "relabel/calculator-bad-json": C("relabel", "good.db", "--calculator", "meam:{bad json", setup=["good.db"],
                                     expect=["meam:{bad json", "JSON"]),
    "relabel/calculator-meam-unknown-setting": C("relabel", "good.db", "--calculator", 'meam:{"cutof": 5}', setup=["good.db"],
                                                 expect=["meam", "cutof"], fix="drop them"),
    "relabel/calculator-json-not-object": C("relabel", "good.db", "--calculator", "meam:[1, 2]", setup=["good.db"],
                                            expect=["meam:[1, 2]", "JSON object"]),
    "relabel/calculator-unimportable-module": C("relabel", "good.db", "--calculator", "nosuchmodule_xyz:Calc",
                                                setup=["good.db"], expect=["nosuchmodule_xyz"], fix="cannot import"),
    "relabel/calculator-missing-class": C("relabel", "good.db", "--calculator", "ase.calculators.emt:NoSuchCalc",
                                          setup=["good.db"], expect=["NoSuchCalc"], fix="cannot import"),
    "relabel/calculator-not-a-calculator": C("relabel", "good.db", "--calculator", "collections:OrderedDict", setup=["good.db"],
                                             expect=["OrderedDict", "not an ASE calculator"]),
    "relabel/calculator-gpaw-missing": C("relabel", "good.db", "--calculator", "gpaw", setup=["good.db"],
                                         expect=["--calculator gpaw"], fix="install"),
    "relabel/limit-0": C("relabel", "good.db", "--calculator", "meam", "--limit", "0", setup=["good.db"],
                         expect=["--limit", "0"], fix="at least 1"),
    "relabel/missing-queue": C("relabel", "nothere.db", "--calculator", "meam", expect=["nothere.db"], fix="no such queue",
                               outputs=["nothere.db"]),
    "relabel/text-db": C("relabel", "x.db", "--calculator", "meam", files=[("x.db", "just some text\n")], expect=["x.db"],
                         fix="not an SQLite database"),
    # -- trajectory ---------------------------------------------------------------------------------
    "trajectory/o-missing-dir": C("trajectory", "log.lammps", "-o", "nodir/t.png", files=[("log.lammps", LOG)],
                                  expect=["nodir"], fix="create it", outputs=["nodir"]),
    "trajectory/o-suffix": C("trajectory", "log.lammps", "-o", "t.txt", files=[("log.lammps", LOG)], expect=["t.txt"],
                             fix=".png", outputs=["t.txt"]),
    "trajectory/log-missing": C("trajectory", "nowhere.log", "-o", "t.png", expect=["nowhere.log"], fix="no such file",
                                outputs=["t.png"]),
    "trajectory/log-without-ltau": C("trajectory", "log.lammps", "-o", "t.png",
                                     files=[("log.lammps", "Step Temp\n0 600\n10 610\nLoop time\n")],
                                     expect=["log.lammps", "f_ID[1]"], fix="thermo_style", outputs=["t.png"]),
    "trajectory/fix-unknown": C("trajectory", "log.lammps", "--fix", "v", "-o", "t.png", files=[("log.lammps", LOG)],
                                expect=["f_v[1]"], fix="thermo_style", outputs=["t.png"]),
    "trajectory/queue-missing": C("trajectory", "log.lammps", "--queue", "nothere.db", "-o", "t.png",
                                  files=[("log.lammps", LOG)], expect=["nothere.db"], fix="no such queue",
                                  outputs=["t.png", "nothere.db"]),
    "trajectory/queue-text-db": C("trajectory", "log.lammps", "--queue", "x.db", "-o", "t.png",
                                  files=[("log.lammps", LOG), ("x.db", "just some text\n")], expect=["x.db"],
                                  fix="not an SQLite database", outputs=["t.png"]),
    "trajectory/lo-negative": C("trajectory", "log.lammps", "--lo", "-1", "-o", "t.png", files=[("log.lammps", LOG)],
                                expect=["--lo", "-1"], fix="must be", outputs=["t.png"]),
    # -- inputs -------------------------------------------------------------------------------------
    "inputs/o-missing-dir": C("inputs", "-o", "nodir/inputs", expect=["nodir"], fix="create it", outputs=["nodir"]),
    "inputs/o-is-file": C("inputs", "-o", "afile", files=[("afile", "x\n")], expect=["afile"], fix="give a directory name"),
    "inputs/o-holds-inputs": C("inputs", "-o", "sub", setup=["subdir"], files=[("sub/in.li_nvt", "my edits\n")],
                               expect=["in.li_nvt"], fix="--force"),
    # -- loop ---------------------------------------------------------------------------------------
    "loop/o-missing-dir": C("loop", "-", "-o", "nodir/run", expect=["nodir"], fix="create it", outputs=["nodir"]),
    "loop/config-missing": C("loop", "nowhere.yaml", "-o", "run", expect=["nowhere.yaml"], outputs=["run"]),
    "loop/config-bad-yaml": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md: {steps: [1, 2\n")],
                              expect=["c.yaml", "YAML"], outputs=["run"]),
    "loop/config-bad-yaml-says-the-line": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md:\n  steps: 3\n    t_end: 900\n")],
                                            expect=["c.yaml, line 3", "YAML"], outputs=["run"]),
    "loop/config-inside-o": C("loop", "sub/config.yaml", "-o", "sub", setup=["subdir"], files=[("sub/config.yaml", "iterations: 1\n")],
                              expect=["sub/config.yaml"], fix="keep your config outside"),
    "loop/o-holds-other-files": C("loop", "-", "-o", "sub", setup=["subdir"], files=[("sub/notes.txt", "mine\n")],
                                  expect=["sub", "no ltau-md campaign"], fix="choose"),
    "loop/config-list": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "- 1\n- 2\n")], expect=["c.yaml", "mapping"],
                          outputs=["run"]),
    "loop/md-steps-text": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md: {steps: many}\n")],
                            expect=["c.yaml", "md.steps", "many"], fix="must be an integer", outputs=["run"]),
    "loop/train-not-mapping": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "train: 5\n")],
                                expect=["c.yaml", "'train'", "5"], fix="must be a mapping", outputs=["run"]),
    "loop/strategies-string": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "strategies: ltau\n")],
                                expect=["c.yaml", "strategies", "ltau"], fix="must be a non-empty list", outputs=["run"]),
    "loop/strategies-unknown": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "strategies: [ltau, greedy]\n")],
                                 expect=["strategies", "greedy"], fix="must be one of", outputs=["run"]),
    "loop/iterations-0": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "iterations: 0\n")],
                           expect=["iterations", "0"], fix="must be positive", outputs=["run"]),
    "loop/iterations-bool": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "iterations: yes\n")],
                              expect=["iterations", "True"], fix="must be", outputs=["run"]),
    "loop/engine-unknown-key": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "engine: {wrokers: 2}\n")],
                                 expect=["c.yaml", "wrokers", "'engine'"], fix="known:", outputs=["run"]),
    "loop/walker-unknown-key": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "walkers: [{tmperature: 900}]\n")],
                                 expect=["c.yaml", "tmperature", "walkers[0]"], fix="known:", outputs=["run"]),
    "loop/resume-nothing": C("loop", "-", "-o", "run", "--resume", expect=["run", "no campaign to resume"], fix="without --resume"),
    "loop/unknown-key": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "iteratoins: 3\n")],
                          expect=["c.yaml", "iteratoins"], fix="known:", outputs=["run"]),
    "loop/config-is-a-directory": C("loop", "sub", "-o", "run", setup=["subdir"], expect=["sub", "is a directory"],
                                    fix="give the YAML file", outputs=["run"]),
    "loop/config-not-utf8": C("loop", "latin1.yaml", "-o", "run", setup=["latin1.yaml"], expect=["latin1.yaml, line 2", "UTF-8"],
                              fix="save it as UTF-8", outputs=["run"]),
    "loop/reference-unknown": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "reference: nope\n")],
                                expect=["c.yaml", "'reference'", "nope"], fix="give one of them", outputs=["run"]),
    "loop/reference-not-a-calculator": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "reference: collections:OrderedDict\n")],
                                         expect=["c.yaml", "'reference'", "not an ASE calculator"], outputs=["run"]),
    "loop/unknown-nested-key": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md: {stepz: 10}\n")],
                                 expect=["stepz", "'md'"], fix="known:", outputs=["run"]),
    "loop/system-unknown": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "system: Xx\n")], expect=["system", "Xx"],
                             fix="must be one of", outputs=["run"]),
    "loop/halt-maybe": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md: {halt: maybe}\n")],
                         expect=["md.halt", "maybe"], fix="must be one of", outputs=["run"]),
    "loop/hi-negative": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "md: {hi: -1}\n")], expect=["md.hi", "-1"],
                          fix="must be auto or a positive number", outputs=["run"]),
    "loop/lr-nan": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "train: {lr: .nan}\n")], expect=["train.lr", "nan"],
                     fix="must be positive", outputs=["run"]),
    "loop/model-nested-wrong": C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "train: {model: {r_max: big}}\n")],
                                 expect=["train.model.r_max", "big"], fix="must be a number", outputs=["run"]),
    "loop/o-is-file": C("loop", "-", "-o", "afile", files=[("afile", "x\n")], expect=["afile"], fix="give a directory name"),
    # -- demo ---------------------------------------------------------------------------------------
    "demo/iterations-0": C("demo", "--iterations", "0", "-o", "demo", expect=["--iterations", "0"], fix="at least 1",
                           outputs=["demo", "ltau-demo"]),
    "demo/o-missing-dir": C("demo", "-o", "nodir/demo", expect=["nodir"], fix="create it", outputs=["nodir", "ltau-demo"]),
    "demo/o-is-file": C("demo", "-o", "afile", files=[("afile", "x\n")], expect=["afile"], fix="give a directory name",
                        outputs=["ltau-demo"]),
    # -- top level ----------------------------------------------------------------------------------
    "cli/unknown-command": C("trian", "--data", "x.xyz", expect=["trian"], fix="choose"),
    "predict/unknown-option": C("predict", "{art}", "{val}", "-o", "out.xyz", "--bogus", expect=["--bogus"],
                            outputs=["out.xyz"]),
    # -- ltau-md run: the command line ----------------------------------------------------------------
    "run/script-missing": C("run", "in.none", expect=["in.none"], fix="no such input script", status=1),
    "run/script-is-dir": C("run", "sub", setup=["subdir"], expect=["sub", "a directory, not an input script"], status=1),
    "run/var-without-value": C("run", "in.x", "-var", "T", files=[("in.x", LI_BOX)], expect=["-var T"],
                               fix="give a name and at least one value"),
    "run/unknown-flag": C("run", "in.x", "-bogus", files=[("in.x", LI_BOX)], expect=["-bogus"], fix="expected -var"),
    # a mistyped flag after a -var's values is not taken for one more value (LAMMPS would fail on it with a traceback)
    "run/mistyped-flag-after-var": C("run", "in.x", "-var", "T", "300", "-vra", "x", "1", files=[("in.x", LI_BOX)], expect=["-vra"],
                                     fix="expected -var"),
    "run/log-missing-dir": C("run", "in.x", "-log", "nodir/log.lammps", files=[("in.x", LI_BOX)], expect=["-log", "nodir"],
                             fix="create it", outputs=["nodir"]),
    "run/log-is-dir": C("run", "in.x", "-log", "sub", setup=["subdir"], files=[("in.x", LI_BOX)], expect=["-log sub"],
                        fix="give a file name"),
    "run/log-two-values": C("run", "in.x", "-log", "a.log", "b.log", files=[("in.x", LI_BOX)], expect=["-log"],
                            fix="exactly one value", outputs=["a.log", "b.log"]),
    "run/screen-missing-dir": C("run", "in.x", "-screen", "nodir/screen.txt", files=[("in.x", LI_BOX)],
                                expect=["-screen", "nodir"], fix="create it", outputs=["nodir"]),
    # (not ${model}: scripts here are filled from the fixtures' {placeholders})
    "run/variable-not-given": L("run 0\npair_style nequip ${potential}\npair_coeff * * Li\nrun 0\n",  # said before 'run 0'
                                expect=["in.case, line", "${potential}", "-var potential"], fix="pass -var"),
    "run/variable-not-given-in-included-file": L("include inc.in\n", files=[("inc.in", "pair_style nequip ${potential}\n")],
                                                 expect=["illegal variable potential", "-var potential"], fix="pass -var"),
    # -- LAMMPS: pair_style nequip ----------------------------------------------------------------------
    "pair/no-model": L("pair_style nequip\n", expect=["pair_style nequip", "MODEL"]),
    "pair/model-missing": L("pair_style nequip nowhere.ckpt\npair_coeff * * Li\nrun 0\n",
                            expect=["pair_style nequip", "nowhere.ckpt", "no such model"]),
    "pair/model-txt": L("pair_style nequip model.txt\npair_coeff * * Li\nrun 0\n", files=[("model.txt", "not a model\n")],
                        expect=["model.txt"], fix="checkpoint"),
    "pair/model-empty-dir": L("pair_style nequip sub\npair_coeff * * Li\nrun 0\n", setup=["subdir"],
                              expect=["sub", "ensemble.json"]),
    "pair/model-truncated-ensemble-json": L("pair_style nequip trunc_model\npair_coeff * * Li\nrun 0\n",
                                            setup=["trunc_model"], expect=["ensemble.json", "truncated"],
                                            fix="re-run 'ltau-md train'"),
    "pair/model-dir-without-checkpoints": L("pair_style nequip model\npair_coeff * * Li\nrun 0\n",
                                            setup=["model_manifest"], expect=["best.ckpt", "missing"]),
    "pair/mode-bad": L("pair_style nequip {model} mode sideways\npair_coeff * * Li\nrun 0\n",
                       expect=["mode", "sideways"], fix="must be auto, domain or gathered"),
    "pair/dtype-bad": L("pair_style nequip {model} dtype float16\npair_coeff * * Li\nrun 0\n",
                        expect=["dtype", "float16"], fix="must be float32 or float64"),
    "pair/keyword-unknown": L("pair_style nequip {model} precision high\npair_coeff * * Li\nrun 0\n",
                              expect=["precision"], fix="expected mode, dtype or device"),
    "pair/keyword-without-value": L("pair_style nequip {model} mode\npair_coeff * * Li\nrun 0\n",
                                    expect=["mode"], fix="needs a value"),
    "pair/device-bad": L("pair_style nequip {model} device gpu0\npair_coeff * * Li\nrun 0\n",
                         expect=["device", "gpu0"], fix="must be cpu, cuda or auto"),
    "pair/device-cuda-without-gpu": L("pair_style nequip {model} device cuda\npair_coeff * * Li\nrun 0\n",
                                      expect=["device cuda", "no CUDA device"], fix="use device cpu or auto"),
    "pair/units-real": L(LI_BOX.replace("units metal", "units real") + PAIR + "run 0\n", box=False, expect=["units real"],
                         fix="units metal"),
    # -- LAMMPS: pair_coeff -------------------------------------------------------------------------------
    "pair_coeff/unknown-element": L("pair_style nequip {model}\npair_coeff * * Xx\nrun 0\n", expect=["Xx"],
                                    fix="not an element symbol"),
    "pair_coeff/species-model-lacks": L("pair_style nequip {model}\npair_coeff * * Mg\nrun 0\n", expect=["Mg", "Li"]),
    "pair_coeff/too-many-elements": L("pair_style nequip {model}\npair_coeff * * Li Li\nrun 0\n",
                                      expect=["pair_coeff", "2 elements"], fix="one element per atom type"),
    "pair_coeff/not-star-star": L("pair_style nequip {model}\npair_coeff 1 1 Li\nrun 0\n", expect=["Pair_coeff", "* *"],
                                  fix="must start with"),
    # -- LAMMPS: fix ltau ---------------------------------------------------------------------------------
    "pair_coeff/missing": L("pair_style nequip {model}\nrun 0\n", expect=["All pair coeffs are not set", "not yet initialized"],
                            fix="add 'pair_coeff * * EL1"),
    "fix/k-0": L(PAIR + "fix u all ltau 10 {cal} k 0\nrun 0\n", expect=["k", "'0'"], fix="must be a positive"),
    "fix/k-too-large": L(PAIR + "fix u all ltau 10 {cal} k 100000\nrun 0\n", expect=["k 100000", "648"]),
    "fix/k-text": L(PAIR + "fix u all ltau 10 {cal} k three\nrun 0\n", expect=["k", "three"], fix="must be a positive"),
    "fix/scale-negative": L(PAIR + "fix u all ltau 10 {cal} scale -1\nrun 0\n", expect=["scale", "-1"],
                            fix="must be a positive"),
    "fix/lo-abc": L(PAIR + "fix u all ltau 10 {cal} lo abc\nrun 0\n", expect=["lo", "abc"], fix="must be auto or a positive"),
    "fix/hi-0": L(PAIR + "fix u all ltau 10 {cal} hi 0\nrun 0\n", expect=["hi", "'0'"], fix="must be auto or a positive"),
    "fix/lo-above-hi": L(PAIR + "fix u all ltau 10 {cal} lo 2 hi 1\nrun 0\n", expect=["lo 2", "hi 1"]),
    "fix/nsamples-1": L(PAIR + "fix u all ltau 10 {cal} nsamples 1\nrun 0\n", expect=["nsamples", "'1'"],
                        fix="at least 2"),
    "fix/halt-maybe": L(PAIR + "fix u all ltau 10 {cal} halt maybe\nrun 0\n", expect=["halt", "maybe"],
                        fix="must be no, soft or hard"),
    "fix/keyword-unknown": L(PAIR + "fix u all ltau 10 {cal} bogus 1\nrun 0\n", expect=["bogus"], fix="expected k, scale"),
    "fix/predictor-best": L(PAIR + "fix u all ltau 10 {cal} predictor best\nrun 0\n", expect=["predictor", "best"],
                            fix="must be calibrated or ltau"),
    "fix/dedup-maybe": L(PAIR + "fix u all ltau 10 {cal} dedup maybe\nrun 0\n", expect=["dedup", "maybe"], fix="must be yes or no"),
    "fix/keyword-without-value": L(PAIR + "fix u all ltau 10 {cal} k\nrun 0\n", expect=["'k'"], fix="needs a value"),
    "fix/missing-artifact-arg": L(PAIR + "fix u all ltau 10\nrun 0\n", expect=["fix ltau", "ARTIFACT"]),
    "fix/n-0": L(PAIR + "fix u all ltau 0 {cal}\nrun 0\n", expect=["N", "'0'"], fix="must be a positive"),
    "fix/n-text": L(PAIR + "fix u all ltau ten {cal}\nrun 0\n", expect=["N", "ten"], fix="must be a positive"),
    "fix/artifact-missing": L(PAIR + "fix u all ltau 10 none.ltau\nrun 0\n", expect=["none.ltau"], fix="ltau-md fit"),
    "fix/artifact-no-meta": L(PAIR + "fix u all ltau 10 art\nrun 0\n", setup=["art", "art_nometa"],
                              expect=["meta.json", "missing"], fix="ltau-md fit"),
    "fix/artifact-truncated-npz": L(PAIR + "fix u all ltau 10 art\nrun 0\n", setup=["art", "art_trunc"],
                                    expect=["train.npz"], fix="re-run 'ltau-md fit'"),
    "fix/artifact-meta-scale": L(PAIR + "fix u all ltau 10 art lo 0.5\nrun 0\n", setup=["art", "art_scale"],
                                 expect=["meta.json", "scale"]),
    "fix/lo-auto-uncalibrated": L(PAIR + "fix u all ltau 10 {art}\nrun 0\n", expect=["lo auto", "Li"],
                                  fix="ltau-md calibrate"),
    "fix/before-pair-style": L("fix u all ltau 10 {cal}\n", expect=["fix ltau", "pair_style nequip"], fix="defined before"),
    "fix/queue-proc": L(PAIR + "fix u all ltau 10 {cal} queue /proc/x.db\nrun 0\n", expect=["queue", "/proc/x.db"],
                        outputs=["/proc/x.db"]),
    "fix/queue-proc-no-run": L(PAIR + "fix u all ltau 10 {cal} queue /proc/x.db\n", expect=["queue", "/proc/x.db"],
                               outputs=["/proc/x.db"]),
    "fix/dump-proc": L(PAIR + "fix u all ltau 10 {cal} dump /proc/x.xyz\n", expect=["dump", "/proc/x.xyz"],
                       outputs=["/proc/x.xyz"]),
    "fix/queue-text-db": L(PAIR + "fix u all ltau 10 {cal} queue x.db\nrun 0\n", files=[("x.db", "just some text\n")],
                           expect=["queue x.db"], fix="not an SQLite database"),
    "fix/queue-missing-dir": L(PAIR + "fix u all ltau 10 {cal} queue nodir/q.db\nrun 0\n", expect=["nodir"],
                               fix="create it", outputs=["nodir"]),
    "fix/queue-suffix": L(PAIR + "fix u all ltau 10 {cal} queue cand.txt\nrun 0\n", expect=["cand.txt", ".db"],
                          outputs=["cand.txt"]),
    "fix/dump-missing-dir": L(PAIR + "fix u all ltau 10 {cal} dump nodir/c.xyz\nrun 0\n", expect=["dump", "nodir"],
                              fix="create it", outputs=["nodir"]),
    "fix/dump-is-dir": L(PAIR + "fix u all ltau 10 {cal} dump sub\nrun 0\n", setup=["subdir"], expect=["dump sub"],
                         fix="name a file"),
    "fix/dump-not-extxyz": L(PAIR + "fix u all ltau 10 {cal} dump c.xyz\nrun 0\n", files=[("c.xyz", "\x00\x01binary\n")],
                             expect=["dump c.xyz"], fix="remove it or name another"),
    # an existing extxyz that fix ltau did not write (a data set): frames would be appended to it and queued
    "fix/dump-not-a-fix-dump": L(PAIR + "fix u all ltau 10 {cal} dump data.xyz queue q.db\nrun 0\n", setup=["data.xyz"],
                                 expect=["dump data.xyz", "not a fix ltau dump"], fix="remove it or name another",
                                 outputs=["q.db"]),
    "fix/queue-plain-ase-db": L(PAIR + "fix u all ltau 10 {cal} queue plain.db\nrun 0\n", setup=["plain.db"],
                                expect=["plain.db", "not a candidate queue"]),
    "fix/artifact-other-model": L("pair_style nequip {other}\npair_coeff * * Li\nfix u all ltau 10 {cal}\nrun 0\n",
                                  expect=["fitted for model"], fix="re-run 'ltau-md fit'"),
    # -- two MPI ranks: the one line appears once --------------------------------------------------------
    "mpi/queue-proc": L(PAIR + "fix u all ltau 10 {cal} queue /proc/x.db\nrun 0\n", expect=["queue", "/proc/x.db"],
                        outputs=["/proc/x.db"], ranks=2),
    "mpi/pair-coeff-mg": L("pair_style nequip {model}\npair_coeff * * Mg\nrun 0\n", expect=["Mg", "Li"], ranks=2),
    "mpi/fix-k-0": L(PAIR + "fix u all ltau 10 {cal} k 0\nrun 0\n", expect=["k", "'0'"], fix="must be a positive", ranks=2),
    "mpi/usage-var": Case(argv=("run", "in.x", "-var", "T"), files=(("in.x", LI_BOX),), expect=("-var T",),
                          fix="give a name and at least one value", ranks=2),
}  # fmt: skip


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_queue(tmp_path_factory, li_data) -> Path:
    """A queue with two pending frames."""
    from ase.io import read

    from ltau_md.queue import CandidateQueue

    path = tmp_path_factory.mktemp("queue") / "good.db"
    q = CandidateQueue(path, writable=True)
    for step, atoms in enumerate(read(str(li_data["val"]), ":2")):
        n = len(atoms)
        q.add(atoms, error=np.linspace(0.1, 0.5, n), p=np.full(n, 0.5), run="test@0", step=step * 10, reason="lo",
              lo=0.2, latent=np.ones((n, 8), dtype=np.float32) * step)  # fmt: skip
    return path


def _frames(ctx):
    from ase.io import read

    return read(ctx["val"], ":")


def _write(path: Path, frames) -> None:
    from ase.io import write

    write(str(path), frames, format="extxyz")


def _no_forces(d: Path, ctx) -> None:
    frames = _frames(ctx)
    for a in frames:
        a.calc = None
    _write(d / "noforces.xyz", frames)


def _no_energy(d: Path, ctx) -> None:
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = _frames(ctx)
    for a in frames:
        forces = a.get_forces()
        a.calc = SinglePointCalculator(a, forces=forces)
    _write(d / "noenergy.xyz", frames)


def _nan(d: Path, ctx) -> None:
    frames = _frames(ctx)
    frames[1].positions[3, 0] = np.nan
    _write(d / "nan.xyz", frames)


def _nan_train_a(d: Path, ctx) -> None:
    from ase.io import read

    frames = read(ctx["train_a"], ":")
    frames[2].positions[5, 1] = np.nan
    _write(d / "train_a.xyz", frames)


def _few_atoms(d: Path, ctx) -> None:
    from ase.calculators.singlepoint import SinglePointCalculator

    a = _frames(ctx)[0]
    small = a[:12]  # one labelled frame of 12 atoms: too few to calibrate on
    small.calc = SinglePointCalculator(small, energy=a.get_potential_energy() * 12 / len(a), forces=a.get_forces()[:12])
    _write(d / "few.xyz", [small])


def _mg_labelled(d: Path, ctx) -> None:
    frames = _frames(ctx)[:1]
    frames[0].numbers[:] = 12  # keeps its energy and forces: a labelled frame of a species the model lacks
    _write(d / "mg_labelled.xyz", frames)


def _mg(d: Path, ctx) -> None:
    frames = _frames(ctx)[:1]
    frames[0].numbers[:] = 12
    frames[0].calc = None
    _write(d / "mg.xyz", frames)


def _trunc_ckpt(d: Path, ctx) -> None:
    data = (Path(ctx["model"]) / "seed0" / "best.ckpt").read_bytes()
    (d / "half.ckpt").write_bytes(data[: len(data) // 2])  # a copy cut short


def _trunc_model(d: Path, ctx) -> None:
    (d / "trunc_model").mkdir()
    text = (Path(ctx["model"]) / "ensemble.json").read_text()
    (d / "trunc_model" / "ensemble.json").write_text(text[: len(text) // 2])


def _model_manifest(d: Path, ctx) -> None:
    (d / "model").mkdir()
    shutil.copy(Path(ctx["model"]) / "ensemble.json", d / "model" / "ensemble.json")


def _model_log_truncated(d: Path, ctx) -> None:
    shutil.copytree(ctx["model"], d / "m")
    npz = d / "m" / "seed0" / "ltau_errors" / "atoms.npz"
    npz.write_bytes(npz.read_bytes()[:3000])  # a copy cut short


def _edit_meta(d: Path, **changes) -> None:
    meta_path = d / "art" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta, indent=2))


def _truncate_npz(d: Path, ctx) -> None:
    p = d / "art" / "train.npz"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _sqlite_other(d: Path, ctx) -> None:
    import sqlite3

    con = sqlite3.connect(d / "other.db")
    con.execute("CREATE TABLE things (x INTEGER)")
    con.commit()
    con.close()


def _plain_ase_db(d: Path, ctx) -> None:
    import ase.db
    from ase.build import bulk

    ase.db.connect(d / "plain.db").write(bulk("Li", cubic=True), relaxed=True)  # someone's own ase.db, not a queue


SETUPS = {
    "subdir": lambda d, ctx: (d / "sub").mkdir(),
    "subdir.xyz": lambda d, ctx: (d / "sub.xyz").mkdir(),
    "nan_train_a": _nan_train_a,
    "empty.xyz": lambda d, ctx: (d / "empty.xyz").write_text(""),
    "noforces.xyz": _no_forces,
    "noenergy.xyz": _no_energy,
    "nan.xyz": _nan,
    "mg.xyz": _mg,
    "mg_labelled.xyz": _mg_labelled,
    "few.xyz": _few_atoms,
    "trunc_model": _trunc_model,
    "half.ckpt": _trunc_ckpt,
    "model_manifest": _model_manifest,
    "art": lambda d, ctx: shutil.copytree(ctx["art"], d / "art"),  # an uncalibrated artifact to damage
    "art_nometa": lambda d, ctx: (d / "art" / "meta.json").unlink(),
    "art_trunc": _truncate_npz,
    "art_badjson": lambda d, ctx: (d / "art" / "meta.json").write_text('{"format": "ltau-md artifact", "species": ['),
    "art_k_text": lambda d, ctx: _edit_meta(d, k="three"),
    "art_dim": lambda d, ctx: _edit_meta(d, descriptor_dim=99),
    "art_scale": lambda d, ctx: _edit_meta(d, scale={"Li": -1.0}),
    "values.npy": lambda d, ctx: np.save(d / "values.npy", np.random.default_rng(0).gamma(3.0, 0.1, size=500)),
    "2d.npy": lambda d, ctx: np.save(d / "2d.npy", np.ones((3, 4))),
    "nan.npy": lambda d, ctx: np.save(d / "nan.npy", np.array([0.1, 0.2, np.nan, 0.3, 0.4])),
    "obj.npy": lambda d, ctx: np.save(d / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
    "str.npy": lambda d, ctx: np.save(d / "str.npy", np.array(["a", "b", "c"])),
    "one.npy": lambda d, ctx: np.save(d / "one.npy", np.array([0.5])),
    "sp3.npy": lambda d, ctx: np.save(d / "sp3.npy", np.array([3, 3, 3])),
    "spxx.npy": lambda d, ctx: np.save(d / "spxx.npy", np.array(["Xx"] * 500)),
    "good.db": lambda d, ctx: shutil.copy(ctx["queue"], d / "good.db"),
    "other.db": _sqlite_other,
    "plain.db": _plain_ase_db,
    "latin1.yaml": lambda d, ctx: (d / "latin1.yaml").write_bytes("system: Li\n# caf\u00e9\n".encode("latin-1")),
    "sp999.npy": lambda d, ctx: np.save(d / "sp999.npy", np.full(500, 999)),
    "model_log_truncated": _model_log_truncated,
    "data.xyz": lambda d, ctx: shutil.copy(ctx["val"], d / "data.xyz"),
}
if shutil.which("sbatch") is None:  # a machine without Slurm's commands (a cluster's login node has them)
    CASES["loop/slurm-without-its-commands"] = C("loop", "c.yaml", "-o", "run", files=[("c.yaml", "engine: {type: slurm}\n")],
                                                 expect=["slurm", "sbatch"], fix="use engine type local", outputs=["run"])


# -- helpers --------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """relative path → (size, sha256) of every file, ('dir',) of every directory, under ``root``."""
    out: dict[str, tuple] = {}
    if not root.exists():
        return out
    if root.is_file():
        return {".": (root.stat().st_size, hashlib.sha256(root.read_bytes()).hexdigest())}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", str(p.readlink()))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def fill(text: str, ctx: dict[str, str]) -> str:
    """``{name}`` → the fixture path ``ctx[name]``; other braces (JSON) stay as they are."""
    return re.sub(r"\{(\w+)\}", lambda m: ctx.get(m[1], m[0]), text)


def _context(li_data, trained, fitted, calibrated, good_queue) -> dict[str, str]:
    return {
        "model": str(trained),
        "ckpt": str(Path(trained) / "seed0" / "best.ckpt"),
        "other": str(Path(trained) / "seed1" / "best.ckpt"),  # same species, other weights
        "art": str(fitted),
        "cal": str(calibrated),
        "train_a": str(li_data["train_a"]),
        "train_b": str(li_data["train_b"]),
        "val": str(li_data["val"]),
        "queue": str(good_queue),
    }


def _command(case: Case) -> str:
    return "run" if case.lammps else case.argv[0]


def _run_in_process(argv: list[str], capfd) -> tuple[int, str, str]:
    from ltau_app.cli import main

    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capfd.readouterr()
    return rc, out, err


def _run_mpi(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    cmd = [str(BIN / "mpiexec"), "-n", "2", str(BIN / "ltau-md"), *argv]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return p.returncode, p.stdout, p.stderr


# -- tests ----------------------------------------------------------------------------------------------


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100, len(CASES)
    assert sum(c.ranks > 1 for c in CASES.values()) <= 4


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input(case_id, tmp_path, monkeypatch, capfd, li_data, trained, fitted, calibrated, good_queue):
    case = CASES[case_id]
    if case_id == "relabel/calculator-gpaw-missing" and importlib.util.find_spec("gpaw") is not None:
        pytest.skip("GPAW is installed here")
    if case_id == "pair/device-cuda-without-gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA device")
    ctx = _context(li_data, trained, fitted, calibrated, good_queue)
    work = tmp_path / "case"
    work.mkdir()
    for name in case.setup:
        SETUPS[name](work, ctx)
    for name, text in case.files:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    if case.lammps:
        (work / "in.case").write_text((LI_BOX if case.box else "") + fill(case.script, ctx))
        argv = ["run", "in.case", "-screen", "none", "-log", "none"]
    else:
        argv = [fill(a, ctx) for a in case.argv]

    watched = {"case": work, "fitted": Path(fitted), "calibrated": Path(calibrated), "trained": Path(trained),
               "li_data": Path(li_data["val"]).parent, "queue": Path(good_queue)}  # fmt: skip
    before = {k: snapshot(p) for k, p in watched.items()}
    outputs = [Path(o) if Path(o).is_absolute() else work / o for o in case.outputs]
    for o in outputs:
        assert not o.exists(), f"{o} exists before the case runs"

    capfd.readouterr()  # drop what the fixtures printed
    monkeypatch.chdir(work)
    if case.ranks > 1:
        rc, out, err = _run_mpi(argv, work)
    else:
        rc, out, err = _run_in_process(argv, capfd)
    monkeypatch.chdir(tmp_path)
    shown = f"ltau-md {' '.join(argv)}\nexit {rc}\n--- stdout\n{out}--- stderr\n{err}"

    # 1. a non-zero exit status, of the right kind
    command = _command(case)
    lammps_error = case.lammps or case.status == 1
    status = case.status or (1 if lammps_error else 2)
    assert rc != 0, shown
    assert rc == status, shown
    # 2. no traceback
    assert "Traceback" not in out and "Traceback" not in err, shown
    # 3. exactly one non-empty line on stderr, with the command's prefix
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, shown
    line = lines[0]
    if lammps_error:
        prefix = r"ltau-md run: ERROR: "
    elif command == "candidates":
        prefix = r"ltau-md candidates(?: (?:list|show|select|export))?: error: "
    elif case_id.startswith("cli/"):
        prefix = r"ltau-md(?: \S+)?: error: "
    else:
        prefix = re.escape(f"ltau-md {command}: error: ")
    assert re.match(prefix, line), shown
    # 4. it names what is wrong and says how to fix it
    for text in case.expect:
        assert text in line, f"{text!r} not in the error line\n{shown}"
    if case.fix is not None:
        assert case.fix in line, f"fix {case.fix!r} not in the error line\n{shown}"
    else:
        assert FIX_WORDS.search(line), f"the error line says no fix\n{shown}"
    # 5. nothing written or changed
    after = {k: snapshot(p) for k, p in watched.items()}
    for k in watched:
        assert after[k] == before[k], f"{k} changed: {set(after[k].items()) ^ set(before[k].items())}\n{shown}"
    for o in outputs:
        assert not o.exists(), f"{o} was created\n{shown}"


@pytest.mark.parametrize("size_variable", ["PMI_SIZE", "SLURM_STEP_NUM_TASKS"])
def test_commands_other_than_run_refuse_to_run_once_per_mpi_rank(tmp_path, monkeypatch, capfd, size_variable):
    # PMI_SIZE: what mpiexec (MPICH's hydra) sets for each of 2 processes; srun --mpi=pmix leaves
    # only its step's task count
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(size_variable, "2")
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run_in_process(["make-data", "--system", "Li", "--frames", "2", "-o", "d.xyz"], capfd)
    assert rc == 2 and not (tmp_path / "d.xyz").exists()
    assert err.strip() == "ltau-md make-data: error: only 'ltau-md run' uses MPI; run 'ltau-md make-data' without mpiexec (it would run 2 times)"


def test_a_step_that_ran_and_failed_exits_1_a_bad_input_2(monkeypatch, capfd):
    # nequip-train or a walker's MD failing is not a usage mistake: status 1, as LAMMPS's errors in 'ltau-md run'
    from ltau_app.commands import inputs
    from ltau_md.errors import LtauError, RunFailed

    for error, status in ((RunFailed("model 1/1 (seed0): nequip-train failed (exit 1); see train.log"), 1),
                          (LtauError("--k 0: must be at least 1"), 2)):  # fmt: skip
        monkeypatch.setattr(inputs, "run", lambda args, error=error: (_ for _ in ()).throw(error))
        rc, _, err = _run_in_process(["inputs"], capfd)
        assert rc == status and err == f"ltau-md inputs: error: {error}\n", err
