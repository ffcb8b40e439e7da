"""Domain mode's receptive field: the edges and nodes a rank's local energies depend on."""

from __future__ import annotations

import numpy as np
from test_lammps_pair import sheared_li

from lammps_plugin import graphs


def chain(n: int) -> np.ndarray:
    """Directed edges both ways between neighbours of a path 0 - 1 - ... - n-1."""
    i = np.arange(n - 1)
    return np.hstack([np.vstack([i, i + 1]), np.vstack([i + 1, i])])


def test_receptive_field_of_a_chain_is_l_minus_one_hops_of_edges_and_l_hops_of_nodes():
    edges = chain(10)
    for layers in (1, 2, 3):
        keep, nodes = graphs.receptive_field(edges, 2, layers)  # centre: nodes 0 and 1
        assert sorted(set(edges[0][keep])) == list(range(2 + layers - 1))
        assert nodes.tolist() == list(range(2 + layers))


def test_pruned_open_graph_gives_the_local_energies_and_all_forces_of_the_whole_graph(trained):
    """A 54-atom cell surrounded by its images out to 2 r_max (a rank's ghost shell): the local
    atoms' energies, every atom's force and the virial are unchanged by pruning, and pruning drops
    a large share of the edges."""
    from ltau_md.nequip.model import NequIPModel

    atoms = sheared_li()
    n = len(atoms)
    big = atoms.repeat((3, 3, 3)).positions  # copies in (i, j, k) order: the middle one is 13th
    x = np.concatenate([big[13 * n : 14 * n], big[: 13 * n], big[14 * n :]])
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-10)):
        model = NequIPModel.load(trained, dtype=dtype)
        edges, vectors = graphs.open_graph(x, model.r_max)
        types = np.zeros(len(x), dtype=np.int64)
        full = model.evaluate_graph(types, edges, vectors, energy_nodes=n)
        keep, nodes = graphs.receptive_field(edges, n, 2)
        assert keep.mean() < 0.6 and len(nodes) < len(x)
        new_id = np.full(len(x), -1)
        new_id[nodes] = np.arange(len(nodes))
        part = model.evaluate_graph(types[nodes], new_id[edges[:, keep]], vectors[keep], energy_nodes=n)
        forces = np.zeros_like(full.forces)
        forces[nodes] = part.forces
        assert np.abs(forces - full.forces).max() <= tol
        assert np.abs(part.atomic_energy[: n] - full.atomic_energy[: n]).max() <= tol
        assert np.abs(part.node_features[: n] - full.node_features[: n]).max() <= tol
        assert np.allclose(graphs.virial(vectors[keep], part.edge_gradient), graphs.virial(vectors, full.edge_gradient), rtol=0, atol=tol * 100)
