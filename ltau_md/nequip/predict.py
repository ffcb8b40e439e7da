"""One forward pass per frame → model energy/forces/stress and LTAU per-atom uncertainty.

Shared by ``ltau-md predict``, ``ltau-md calibrate`` and :class:`LtauCalculator`, so all three
give the same numbers for the same frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ltau_md import atomic_write
from ltau_md.artifact import Artifact
from ltau_md.error_model import concatenate_pairs, frame_pairs
from ltau_md.nequip.model import FrameResult, NequIPModel
from ltau_md.user_input import PREDICTION_TAG, reference_forces


@dataclass
class FramePrediction:
    model: FrameResult
    p: np.ndarray  # per atom: chance the error is ≤ atol
    p_std: np.ndarray
    error: np.ndarray  # per atom: predicted force error, eV/Å
    distance: np.ndarray  # per atom: latent distance to the nearest training atom
    mixture: np.ndarray  # per atom: LTAU's neighbour mixture mean at s = 1, eV/Å
    predictor: str = "ltau"
    contact: np.ndarray | None = None  # per atom: in close contact (ltau_md.contact); None: not checked


def load_for_artifact(artifact_path, model: str | None = None, dtype: str = "float32") -> tuple[Artifact, NequIPModel]:
    """An artifact and its model: ``model`` if given, else the one it was fitted for (found beside
    the artifact, else at its recorded path; see :meth:`Artifact.model_path`)."""
    art = Artifact.load(artifact_path)
    return art, NequIPModel.load(model or art.model_path(), dtype=dtype)


def predict(
    model: NequIPModel,
    artifact: Artifact,
    frames: Sequence,
    k: int | None = None,
    scale: float | None = None,
    batch_size: int = 8,
    progress=None,
    predictor: str | None = None,
    contact: bool = True,
) -> list[FramePrediction]:
    """The model and LTAU for ``frames``; ``contact``: apply the artifact's close-contact rule
    (calibration does not: it fits what the latents say)."""
    artifact.check_model(str(model.path), model.fingerprint)
    cutoff = artifact.pair_cutoff(predictor) if contact else artifact.neighbourhood_cutoff(predictor)
    # the forward's graph holds every pair within r_max: reuse it (a second search cost ~1/3 of the forward)
    from_graph = 0 < cutoff <= model.r_max
    results = model.evaluate(frames, batch_size=batch_size, progress=progress, pairs_within=cutoff if from_graph else 0.0)
    if not results:
        return []
    desc = np.concatenate([r.node_features for r in results])
    numbers = np.concatenate([a.numbers for a in frames])
    if from_graph:
        pairs = concatenate_pairs([r.pairs for r in results], [len(a) for a in frames])
        results = [replace(r, pairs=None) for r in results]  # predictions outlive this call; the pairs need not
    else:
        pairs = frame_pairs(frames, cutoff, distances=True)
    u = artifact.query(desc, numbers, k=k, scale=scale, predictor=predictor, pairs=pairs if contact or pairs is None else pairs[:2])
    out, start = [], 0
    for r in results:
        sl = slice(start, start + len(r.forces))
        in_contact = None if u.contact is None else u.contact[sl]
        out.append(FramePrediction(r, u.p[sl], u.p_std[sl], u.error[sl], u.distance[sl, 0], u.mixture[sl], u.predictor, in_contact))
        start = sl.stop
    return out


def annotate(atoms, pred: FramePrediction):
    """A copy of ``atoms`` carrying the model's results and per-atom LTAU arrays for extxyz."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    ref = reference_forces(atoms)
    if ref is not None:
        out.arrays["ref_forces"] = ref
        out.arrays["force_error"] = np.linalg.norm(pred.model.forces - ref, axis=1)
    if atoms.calc is not None and "energy" in atoms.calc.results:
        out.info["ref_energy"] = float(atoms.calc.results["energy"])
    out.arrays["ltau_error"] = pred.error
    out.arrays["ltau_p"] = pred.p
    out.arrays["ltau_p_std"] = pred.p_std
    out.arrays["ltau_distance"] = pred.distance
    out.arrays["ltau_mixture"] = pred.mixture
    if pred.contact is not None:
        out.arrays["ltau_contact"] = pred.contact
    out.info["ltau_predictor"] = pred.predictor
    out.info[PREDICTION_TAG] = True  # its forces are the model's: readers take ref_forces as the reference
    results = {"energy": pred.model.energy, "free_energy": pred.model.energy, "forces": pred.model.forces, "energies": pred.model.atomic_energy}
    if pred.model.stress is not None:
        results["stress"] = pred.model.stress
    out.calc = SinglePointCalculator(out, **results)
    return out


def write_predictions(frames: Sequence, preds: Sequence[FramePrediction], path: str | os.PathLike) -> None:
    from ase.io import write

    annotated = [annotate(a, p) for a, p in zip(frames, preds)]
    atomic_write.write_with(path, lambda fh: write(fh, annotated, format="extxyz"), text=True)
