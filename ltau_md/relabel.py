"""``ltau-md relabel``: give pending candidate frames a reference label with any ASE calculator.

Calculator specs:

* ``NAME`` or ``NAME:{json kwargs}`` — a calculator registered under the ``ltau_md.calculators``
  entry-point group (pyproject.toml): ``meam``, the Li–Mg 2NN-MEAM reference (LAMMPS,
  milliseconds per frame; registered by ``lammps_plugin``), and ``gpaw``, GPAW PBE plane waves
  when GPAW is installed (settings checked on this machine kind: 300 eV, k-point density
  ~2.5/Å⁻¹, Mg 2-electron setup). Other packages can register their own;
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
from ltau_md.queue import CandidateQueue, claim_owner

ENTRY_POINTS = "ltau_md.calculators"


def registered_calculators() -> dict[str, Any]:
    """Name → entry point of every calculator registered under ``ltau_md.calculators``."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def gpaw_calculator(**kwargs: Any):
    """GPAW PBE plane waves with settings checked on this machine kind (the ``gpaw`` entry point)."""
    try:
        from gpaw import GPAW, PW
    except ImportError:
        raise LtauError(
            "--calculator gpaw: GPAW is not installed (pip install gpaw gpaw-data, with Debian libxc-dev libopenblas-dev)"
        ) from None
    settings: dict[str, Any] = {"ecut": 300.0, "kpts_density": 2.5, "setups": {"Mg": "2"}, "txt": None}
    settings.update(kwargs)
    ecut = settings.pop("ecut")
    density = settings.pop("kpts_density")
    return GPAW(mode=PW(ecut), xc="PBE", kpts={"density": density, "gamma": True}, **settings)


def calculator_factory(spec: str, what: str = "--calculator") -> tuple[Callable[..., Any], dict[str, Any]]:
    """What a spec string names (see the module docstring): the calculator's class or factory and
    its keyword arguments, checked without making one. ``what`` names the spec in errors (the
    option or config key it came from)."""
    head, _, tail = spec.partition(":")
    registered = registered_calculators()
    if head in registered:
        kwargs_text = tail
        try:
            factory = registered[head].load()
        except ImportError as exc:
            raise LtauError(f"{what} {head}: its package cannot be imported ({exc}); install ltau-md[all]") from None
    elif tail and not tail.startswith("{"):
        module_name = head
        cls_name, _, kwargs_text = tail.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise LtauError(f"{what} {spec!r}: cannot import {module_name}:{cls_name} ({exc})") from None
    else:
        names = ", ".join(sorted(registered))
        raise LtauError(f"{what} {spec!r}: not a registered calculator ({names}); give one of them or module:Class[:{{json kwargs}}]")
    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
    except json.JSONDecodeError as exc:
        raise LtauError(f"{what} {spec!r}: keyword arguments are not valid JSON ({exc.msg})") from None
    if not isinstance(kwargs, dict):
        raise LtauError(f"{what} {spec!r}: keyword arguments must be a JSON object")
    if isinstance(factory, type):
        _check_calculator(factory, spec, what)
    return factory, kwargs


def _check_calculator(calc: Any, spec: str, what: str) -> None:
    """A calculator (or its class) answers get_potential_energy and get_forces, as ASE's do."""
    if not all(callable(getattr(calc, m, None)) for m in ("get_potential_energy", "get_forces")):
        name = calc.__name__ if isinstance(calc, type) else type(calc).__name__
        raise LtauError(f"{what} {spec!r}: {name} is not an ASE calculator (no get_potential_energy/get_forces); "
                        "give an ase.calculators Calculator")  # fmt: skip


def make_calculator(spec: str, what: str = "--calculator") -> Any:
    """An ASE calculator from a spec string (see the module docstring)."""
    factory, kwargs = calculator_factory(spec, what)
    try:
        calc = factory(**kwargs)
    except TypeError as exc:
        raise LtauError(f"{what} {spec!r}: {exc}") from None
    _check_calculator(calc, spec, what)  # before any frame is claimed: else every frame would be marked failed
    return calc


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
    queue: CandidateQueue | str | os.PathLike,
    spec: str | Any,
    retry_failed: bool = False,
    only_selected: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reclaim: bool = False,
) -> dict[str, Any]:
    """Label pending (and optionally failed) rows of ``queue`` with ``spec`` (a calculator spec
    string, or an ASE calculator), each claimed first (see :meth:`CandidateQueue.claim`: several
    relabellers share a queue's rows; ``reclaim`` takes over claims made on other hosts); at most
    ``limit`` rows. Returns counts of labelled / failed, and of the rows left out: ``failed_before``
    (failed rows not retried), ``not_selected`` (pending rows ``only_selected`` skipped),
    ``labelled_elsewhere`` (rows another relabeller finished meanwhile: its label kept) and
    ``claimed_elsewhere`` (rows another relabeller still holds at the end; ``claim_holder``: the
    first one)."""
    if not isinstance(queue, CandidateQueue):
        queue = CandidateQueue(queue, must_exist=True, writable=True)
    calculator, name = (make_calculator(spec), spec) if isinstance(spec, str) else (spec, type(spec).__name__)
    todo = list(queue.rows("pending"))
    failed_before = list(queue.rows("failed"))
    if retry_failed:
        todo += failed_before
    n_todo = len(todo)
    if only_selected:
        todo = [c for c in todo if c.selected]
    todo.sort(key=lambda c: c.id)
    counts = {"labelled": 0, "failed": 0, "failed_before": 0 if retry_failed else len(failed_before),
              "not_selected": n_todo - len(todo) if only_selected and limit is None else 0, "labelled_elsewhere": 0,
              "claimed_elsewhere": 0}  # fmt: skip
    first_failure, held = None, {}
    owner, statuses = claim_owner(), ("pending", "failed") if retry_failed else ("pending",)
    total = len(todo) if limit is None else min(limit, len(todo))
    for cand in todo:
        if counts["labelled"] + counts["failed"] == total:
            break  # --limit reached
        why = queue.claim(cand.id, owner, statuses, reclaim=reclaim)
        if why is not None:  # another relabeller holds it, or finished it meanwhile
            if why in ("labelled", "failed"):
                counts["labelled_elsewhere"] += 1
            else:
                held[cand.id] = why
            continue
        try:
            labelled = label(cand.atoms, calculator)
        except Exception as exc:  # any calculator failure is recorded, not fatal
            reason = f"{type(exc).__name__}: {exc}"
            if queue.mark_failed(cand.id, reason, name):
                counts["failed"] += 1
                first_failure = first_failure or f"frame {cand.id}: {reason.strip().splitlines()[0][:300] if reason.strip() else reason}"
            else:
                counts["labelled_elsewhere"] += 1
        else:
            # another relabeller (that ignored or took over the claim) may have labelled it: the first label stays
            counts["labelled" if queue.mark_labelled(cand.id, labelled, name) else "labelled_elsewhere"] += 1
        if progress is not None:
            progress(counts["labelled"] + counts["failed"], total)
    # the rows others held: those they have finished by now, and those still in their hands
    still = {i: holder for i, holder in held.items() if queue.get(i).status in statuses}
    counts["labelled_elsewhere"] += len(held) - len(still)
    counts["claimed_elsewhere"] = len(still)
    return {**counts, "first_failure": first_failure, "claim_holder": next(iter(still.values()), None)}
