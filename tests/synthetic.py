"""Point sets shaped like atomic descriptors, for benchmarks and tests with known geometry.

Real latent features of atoms lie on low-dimensional manifolds (an environment's thermal motion
varies a handful of coordinates), one cluster per species. ``descriptor_like`` draws such sets;
``isotropic`` fills all d dimensions and is the hard case for approximate search.
"""

from __future__ import annotations

import numpy as np


def descriptor_like(n: int, d: int = 32, seed: int = 0, n_species: int = 2, intrinsic: int = 6) -> np.ndarray:
    """``n`` points: ``n_species`` clusters, each a smooth ``intrinsic``-dimensional manifold
    (tanh of a random linear map) embedded in ``d`` dimensions with 2 % noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, intrinsic))
    w = rng.standard_normal((intrinsic, d)) / np.sqrt(intrinsic)
    centers = 3.0 * rng.standard_normal((n_species, d))
    c = rng.integers(0, n_species, n)
    x = np.tanh(z @ w) + centers[c] + 0.02 * rng.standard_normal((n, d))
    return x.astype(np.float32)


def isotropic(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
