"""Training-set re-weighting from LTAU sample confidence (seed 002 §4.2 and App. E).

Per training atom, from the ensemble statistics of its p-value (μ = μ_M(p_i), σ = σ_M(p_i)):

* up-weight easy:  w_i = exp[λ (μ + σ)]        (paper: λ = 2.0) — favours coarse, generalisable
  information; widens the training–validation gap the other way;
* up-weight hard:  w_i = exp[λ (1 − μ + σ)]    (paper: λ = 4.5) — favours the atoms the model
  keeps getting wrong.

Weights are normalised to mean 1 so the loss keeps its scale. The weights file (npz, loads with
allow_pickle=False) keys atoms by (training file, frame, atom) like the error logs, so it applies to
the same frames whatever their order in a new training run.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ltau_md import atomic_write
from ltau_md.errors import LtauError

SCHEMES = ("easy", "hard")
DEFAULT_LAMBDA = {"easy": 2.0, "hard": 4.5}


def loss_weights(p_mean: np.ndarray, p_std: np.ndarray, scheme: str, lam: float | None = None) -> np.ndarray:
    if scheme not in SCHEMES:
        raise LtauError(f"re-weighting scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    lam = DEFAULT_LAMBDA[scheme] if lam is None else float(lam)
    mu, sigma = np.asarray(p_mean, dtype=np.float64), np.asarray(p_std, dtype=np.float64)
    x = mu + sigma if scheme == "easy" else 1.0 - mu + sigma
    w = np.exp(lam * (x - x.max()))  # shifted for overflow safety; normalised below anyway
    return w / w.mean()


def write_weights(path: str | os.PathLike, artifact, scheme: str, lam: float | None = None) -> np.ndarray:
    """Weights of every training atom of ``artifact`` into ``path`` (npz); returns them."""
    t = artifact.train
    w = loss_weights(t["p_mean"], t["p_std"], scheme, lam)
    atomic_write.save_npz(
        path,
        sources=t["sources"],
        source=t["source"],
        frame=t["frame"],
        atom=t["atom"],
        weight=w,
        scheme=np.array(scheme),
        lam=np.array(DEFAULT_LAMBDA[scheme] if lam is None else float(lam)),
    )
    return w


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in ("sources", "source", "frame", "atom", "weight")}
    except FileNotFoundError:
        raise LtauError(f"{path}: no such weights file") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise LtauError(f"{path}: not an ltau-md weights file ({exc})") from None
    w = out["weight"]
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise LtauError(f"{path}: weights must be finite and non-negative")
    out["source_names"] = out["sources"][out["source"]] if len(out["source"]) else np.zeros(0, dtype=str)
    return out
