"""The close-contact rule (ltau_md.contact): the training frames' shortest pair distance per element
pair, each atom's nearest neighbour per element, and what an atom in contact is predicted."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ltau_md.contact import ContactRule, nearest_by_species, pair_key, shortest_distances
from ltau_md.errors import LtauError


def test_shortest_distances_are_per_unordered_element_pair_over_all_frames():
    a = Atoms("LiLiMg", positions=[[0, 0, 0], [2.5, 0, 0], [0, 3.0, 0]], cell=[20, 20, 20], pbc=True)
    b = Atoms("LiMgMg", positions=[[0, 0, 0], [2.2, 0, 0], [0, 0, 3.1]], cell=[20, 20, 20], pbc=True)
    table = shortest_distances([a, b], cutoff=5.0)
    assert table == pytest.approx({"Li-Li": 2.5, "Li-Mg": 2.2, "Mg-Mg": np.hypot(2.2, 3.1)})
    assert pair_key("Mg", "Li") == pair_key("Li", "Mg") == "Li-Mg"
    assert shortest_distances([a], cutoff=2.0) == {}


def test_nearest_neighbour_per_element_of_each_centre_ignores_other_centres():
    numbers = np.array([3, 3, 12, 12])  # rows 0,1 centres; 2,3 e.g. ghosts
    i = np.array([0, 0, 0, 1, 1, 2])
    j = np.array([1, 2, 3, 0, 3, 0])
    r = np.array([2.0, 3.0, 2.5, 2.0, 4.0, 0.1])
    out = nearest_by_species(i, j, r, numbers, 2, np.array([3, 12]))
    np.testing.assert_allclose(out, [[2.0, 2.5], [2.0, 4.0]])
    assert np.all(np.isinf(nearest_by_species(i[:0], j[:0], r[:0], numbers, 2, np.array([3, 12]))))


def test_atoms_below_the_fraction_of_the_shortest_training_pair_are_raised_to_the_contact_error():
    rule = ContactRule({"Li-Li": 2.2, "Li-Mg": 2.4}, fraction=0.9, error=1.5)
    species = np.array([3, 12])
    nearest = np.array([[1.9, np.inf], [2.5, 2.1], [2.5, 2.3], [np.inf, 1.0]])  # last: an Mg atom, Mg-Mg not judged
    numbers = np.array([3, 3, 3, 12])
    ratio = rule.ratio(nearest, numbers, species)
    np.testing.assert_allclose(ratio[:3], [1.9 / 2.2, 2.1 / 2.4, 2.3 / 2.4])
    assert ratio[3] == np.inf  # Mg-Mg never met in training: not judged; Mg-Li at inf
    error, p, contact = rule.apply(np.array([0.1, 2.0, 0.1, 0.1]), np.array([0.9, 0.1, 0.9, 0.9]), ratio)
    assert contact.tolist() == [True, True, False, False]
    np.testing.assert_allclose(error, [1.5, 2.0, 0.1, 0.1])  # raised, never lowered
    np.testing.assert_allclose(p, [0.0, 0.0, 0.9, 0.9])
    off = ContactRule(rule.shortest, fraction=0.0)
    assert not off.enabled and off.cutoff == 0.0
    assert not off.apply(np.ones(4), np.ones(4), ratio)[2].any()
    assert rule.cutoff == pytest.approx(0.9 * 2.4)


@pytest.mark.parametrize("rec, message", [
    ({"shortest": {"Li-Li": -1.0}}, "positive number of Å"),
    ({"shortest": {"LiLi": 2.0}}, "read like 'Li-Mg'"),
    ({"shortest": {"Li-Li": 2.0}, "fraction": 1.5}, "between 0 and 1"),
    ({"shortest": {"Li-Li": 2.0}, "error": 0}, "positive number of eV/Å"),
    ({"fraction": 0.9}, "must hold 'shortest'"),
])  # fmt: skip
def test_a_bad_contact_record_is_one_line_naming_what_is_wrong(rec, message):
    with pytest.raises(LtauError, match=message):
        ContactRule.from_dict(rec)
    assert ContactRule.from_dict(ContactRule({"Li-Li": 2.0}).to_dict()) == ContactRule({"Li-Li": 2.0})


def test_artifact_stores_the_rule_and_a_query_with_pair_distances_applies_it(tmp_path):
    import json

    from conftest import synthetic_training

    from ltau_md.artifact import Artifact
    from ltau_md.errors import ArtifactError

    stats, desc, _ = synthetic_training(tmp_path)
    art = Artifact.create(stats, desc, k=3)
    assert art.contact is None and art.pair_cutoff() == 0.0  # artifacts from before the rule: not checked
    art.set_contact(ContactRule({"Li-Li": 2.0, "Li-Mg": 2.0, "Mg-Mg": 2.0}))
    art.save(tmp_path / "c.ltau")
    again = Artifact.load(tmp_path / "c.ltau")
    assert again.contact == art.contact and again.pair_cutoff() == pytest.approx(0.9 * 2.0)
    q, species = desc[:4] + 0.01, stats.atoms.species[:4]
    plain = again.query(q, species)
    assert plain.contact is None  # no distances given: nothing to judge
    pairs = (np.array([0, 1, 2, 3]), np.array([1, 0, 3, 2]), np.array([1.0, 1.0, 1.9, 1.9]))
    close = again.query(q, species, pairs=pairs)
    assert close.contact.tolist() == [True, True, False, False]
    np.testing.assert_allclose(close.error[:2], np.maximum(plain.error[:2], 1.5))
    np.testing.assert_array_equal(close.error[2:], plain.error[2:])
    assert np.all(close.p[:2] == 0.0)
    meta = json.loads((tmp_path / "c.ltau" / "meta.json").read_text())
    meta["contact"]["fraction"] = 2.0
    (tmp_path / "c.ltau" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"meta.json.*contact: contact fraction must be between 0 and 1.*re-run 'ltau-md fit'"):
        Artifact.load(tmp_path / "c.ltau")
