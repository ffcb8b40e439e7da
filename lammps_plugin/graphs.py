"""Edge lists for the model from LAMMPS rows: a rank's local+ghost atoms (open boundaries, the
ghosts already are the periodic images) or a whole periodic cell; and virials from edge gradients.

Edge vectors are d = x_j − x_i (+ S·cell), and g = ∂E/∂d comes back from the model, so the
virial W_ab = Σ x_a F_b of a periodic system is −Σ_e d_a g_b, in LAMMPS order xx yy zz xy xz yz.
"""

from __future__ import annotations

import numpy as np

# LAMMPS virial component order
VOIGT = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def cell_matrix(h) -> np.ndarray:
    """Rows a, b, c of a LAMMPS box from (xprd, yprd, zprd, xy, xz, yz)."""
    xprd, yprd, zprd, xy, xz, yz = (float(v) for v in h)
    return np.array([[xprd, 0.0, 0.0], [xy, yprd, 0.0], [xz, yz, zprd]])


def open_graph(x: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges (2, E) and vectors (E, 3) among points without periodicity."""
    import vesin

    if len(x) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3))
    # shifted to positive coordinates: the search is translation invariant, the vectors come from x
    pts = x - x.min(axis=0) + 1.0
    i, j = vesin.NeighborList(cutoff=cutoff, full_list=True).compute(
        points=pts, box=np.zeros((3, 3)), periodic=False, quantities="ij"
    )
    i, j = i.astype(np.int64), j.astype(np.int64)
    return np.vstack([i, j]), x[j] - x[i]


def periodic_graph(x: np.ndarray, boxlo, h, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges and vectors of a whole periodic cell, every image within ``cutoff``."""
    import vesin

    cell = cell_matrix(h)
    frac = np.linalg.solve(cell.T, (x - np.asarray(boxlo, dtype=np.float64)).T).T
    wrapped = (frac - np.floor(frac)) @ cell
    i, j, s = vesin.NeighborList(cutoff=cutoff, full_list=True).compute(
        points=wrapped, box=cell, periodic=True, quantities="ijS"
    )
    i, j = i.astype(np.int64), j.astype(np.int64)
    return np.vstack([i, j]), wrapped[j] - wrapped[i] + s @ cell


def receptive_field(edges: np.ndarray, n_centre: int, num_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of an open graph that the energies of nodes ``[0, n_centre)`` depend on.

    In a message-passing model with L layers, whose layers update a node from the edges that point
    at it (nequip scatters messages to ``edges[0]``), a node's layer-l features matter to the
    centre nodes only within L − l hops of them. So only the edges into nodes within L − 1 hops
    are needed, and only the nodes within L hops. A rank's ghost shell is L·r_max deep, and
    dropping the edges into its outer r_max removes a third or more of the work.

    Returns (kept edge mask, kept node indices, ascending: the centre nodes stay first).
    """
    n = int(edges.max()) + 1 if edges.size else n_centre
    n = max(n, n_centre)
    inner = np.zeros(n, dtype=bool)
    inner[:n_centre] = True
    for _ in range(num_layers - 1):
        inner[edges[1][inner[edges[0]]]] = True
    keep_edge = inner[edges[0]]
    nodes = inner.copy()
    nodes[edges[1][keep_edge]] = True
    return keep_edge, np.flatnonzero(nodes)


def virial(vectors: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """(6,) −Σ_e d_a g_b."""
    return np.array([-np.dot(vectors[:, a], gradient[:, b]) for a, b in VOIGT])


def atom_virial(edges: np.ndarray, vectors: np.ndarray, gradient: np.ndarray, n: int) -> np.ndarray:
    """(n, 6) per-atom virial: each edge's −d ⊗ g split half to each end; sums to :func:`virial`."""
    out = np.zeros((n, 6))
    for c, (a, b) in enumerate(VOIGT):
        w = -0.5 * vectors[:, a] * gradient[:, b]
        out[:, c] = np.bincount(edges[0], weights=w, minlength=n) + np.bincount(edges[1], weights=w, minlength=n)
    return out
