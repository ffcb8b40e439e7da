"""Validation atoms' arrays for calibration: one forward pass per frame (the only part of
``ltau-md calibrate`` that needs the model); the science is :func:`ltau_md.calibration.calibrate_artifact`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltau_md.artifact import Artifact
from ltau_md.calibration import ValidationErrors
from ltau_md.error_model import neighbourhood_distance
from ltau_md.nequip.model import NequIPModel
from ltau_md.nequip.predict import predict
from ltau_md.progress import Progress
from ltau_md.species import symbols
from ltau_md.user_input import reference_forces


def validation_errors(
    artifact: Artifact,
    model: NequIPModel,
    frames: Sequence,
    k: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> ValidationErrors:
    """The model and plain LTAU (s = 1) on reference frames, per atom."""
    bar = Progress("evaluating validation frames", len(frames), enabled=progress)
    preds = predict(model, artifact, frames, k=k, scale=1.0, batch_size=batch_size, progress=bar.update, predictor="ltau", contact=False)
    bar.close()
    diff = [p.model.forces - reference_forces(a) for a, p in zip(frames, preds)]
    nearest = np.concatenate([x.distance for x in preds])
    return ValidationErrors(
        species=np.array(symbols(np.concatenate([a.numbers for a in frames]))),
        p=np.concatenate([x.p for x in preds]),
        ltau_error=np.concatenate([x.error for x in preds]),
        nearest=nearest,
        true_error=np.concatenate([np.linalg.norm(d, axis=1) for d in diff]),
        component_error=np.abs(np.concatenate(diff)),
        n_frames=len(frames),
        frame=np.concatenate([np.full(len(a), i) for i, a in enumerate(frames)]),
        neighbourhood=neighbourhood_distance(frames, nearest, model.r_max),
        cutoff=float(model.r_max),
    )
