"""``ltau-md relabel``: give pending candidate frames a reference label with any ASE calculator.

Calculator specs:

* ``meam`` — the Li–Mg 2NN-MEAM reference of ``inputs/`` (LAMMPS, milliseconds per frame);
* ``gpaw`` or ``gpaw:{"ecut": 300, ...}`` — GPAW PBE plane waves when GPAW is installed (settings
  checked on this machine kind: 300 eV, k-point density ~2.5/Å⁻¹, Mg 2-electron setup);
* ``module:Class`` or ``module:Class:{json kwargs}`` — any importable ASE calculator.

Frames are labelled one at a time, each result committed on its own, so a killed relabel resumes
where it stopped (the frame it was working on is still pending). A calculator failure is
recorded on the row (status ``failed`` with the message) and the next frame goes on.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ltau_md.errors import LtauError
from ltau_md.queue import CandidateQueue

ALIASES = {"meam": "lammps_plugin.reference_md:MeamCalculator"}


def _gpaw(kwargs: dict[str, Any]):
    try:
        from gpaw import GPAW, PW
    except ImportError:
        raise LtauError(
            "--calculator gpaw: GPAW is not installed (pip install gpaw gpaw-data, with Debian libxc-dev libopenblas-dev)"
        ) from None
    settings = {"ecut": 300.0, "kpts_density": 2.5, "setups": {"Mg": "2"}, "txt": None}
    settings.update(kwargs)
    ecut = settings.pop("ecut")
    density = settings.pop("kpts_density")
    return GPAW(mode=PW(ecut), xc="PBE", kpts={"density": density, "gamma": True}, **settings)


def make_calculator(spec: str) -> Any:
    """An ASE calculator from a spec string (see the module docstring)."""
    head, _, tail = spec.partition(":")
    if head == "gpaw":
        kwargs_text = tail
        factory = _gpaw
    else:
        if head in ALIASES:
            module_name, cls_name = ALIASES[head].split(":")
            kwargs_text = tail
        elif tail:
            module_name = head
            cls_name, _, kwargs_text = tail.partition(":")
        else:
            raise LtauError(f"--calculator {spec!r}: use meam, gpaw, or module:Class[:{{json kwargs}}]")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise LtauError(f"--calculator {spec!r}: cannot import {module_name}:{cls_name} ({exc})") from None

        def factory(kwargs: dict[str, Any]) -> Any:
            return cls(**kwargs)

    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
    except json.JSONDecodeError as exc:
        raise LtauError(f"--calculator {spec!r}: keyword arguments are not valid JSON ({exc.msg})") from None
    if not isinstance(kwargs, dict):
        raise LtauError(f"--calculator {spec!r}: keyword arguments must be a JSON object")
    return factory(kwargs)


def label(atoms, calculator) -> Any:
    """A copy of ``atoms`` carrying the calculator's energy, forces (and stress if periodic)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    work = atoms.copy()
    work.calc = calculator
    results = {"energy": float(work.get_potential_energy()), "forces": np.asarray(work.get_forces())}
    if work.pbc.all():
        results["stress"] = np.asarray(work.get_stress())
    if not all(np.all(np.isfinite(v)) for v in results.values()):
        raise FloatingPointError("calculator returned NaN or inf")
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results)
    return out


def relabel(
    db: str | os.PathLike,
    spec: str,
    retry_failed: bool = False,
    only_selected: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Label pending (and optionally failed) rows; returns counts of labelled / failed."""
    queue = CandidateQueue(db)
    calculator = make_calculator(spec)
    todo = [c for c in queue.rows("pending")]
    if retry_failed:
        todo += list(queue.rows("failed"))
    if only_selected:
        todo = [c for c in todo if c.key_value_pairs.get("selected")]
    todo.sort(key=lambda c: c.id)
    if limit is not None:
        todo = todo[:limit]
    counts = {"labelled": 0, "failed": 0}
    for i, cand in enumerate(todo):
        try:
            labelled = label(cand.atoms, calculator)
        except Exception as exc:  # any calculator failure is recorded, not fatal
            queue.mark_failed(cand.id, f"{type(exc).__name__}: {exc}", spec)
            counts["failed"] += 1
        else:
            queue.mark_labelled(cand.id, labelled, spec)
            counts["labelled"] += 1
        if progress is not None:
            progress(i + 1, len(todo))
    return counts
