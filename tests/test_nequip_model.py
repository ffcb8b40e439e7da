"""Model access: one forward gives energy, forces, stress and the last layer's node features."""

import numpy as np
import pytest

pytest.importorskip("nequip")

from ase.io import read  # noqa: E402

from ltau_md.errors import LtauError  # noqa: E402
from ltau_md.nequip.model import NequIPModel, resolve_model_path  # noqa: E402


@pytest.fixture(scope="module")
def model(trained):
    return NequIPModel.load(trained)


def test_descriptors_equal_the_models_node_features(model, li_data):
    """Our edge-vector forward vs nequip's own data pipeline and GraphModel forward."""
    from nequip.data import AtomicDataDict, from_ase
    from nequip.integrations.utils import basic_transforms

    frames = read(li_data["val"], ":")
    ours = model.evaluate(frames, batch_size=3)
    md = model.graph_model.metadata
    transforms = basic_transforms(md, model.r_max, model.type_names, {t: t for t in model.type_names})
    for atoms, r in zip(frames, ours):
        data = from_ase(atoms)
        for t in transforms:
            data = t(data)
        out = model.graph_model(data)
        # same model, other neighbour list and float32 edge vectors: equal to round-off
        np.testing.assert_allclose(r.node_features, out[AtomicDataDict.NODE_FEATURES_KEY].detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.forces, out[AtomicDataDict.FORCE_KEY].detach().numpy(), atol=1e-5)
        assert r.energy == pytest.approx(float(out[AtomicDataDict.TOTAL_ENERGY_KEY].detach()), abs=1e-4)
        assert r.node_features.shape == (len(atoms), 8)


def test_descriptors_are_the_output_of_the_last_message_passing_layer(model, li_data):
    convnets = [name for name, _ in model.energy_net.named_children() if name.endswith("_convnet")]
    assert convnets == ["layer0_convnet", "layer1_convnet"]
    seen = {}
    last = dict(model.energy_net.named_children())[convnets[-1]]
    hook = last.register_forward_hook(lambda m, i, o: seen.__setitem__("x", o["node_features"].detach().numpy().copy()))
    try:
        (r,) = model.evaluate(read(li_data["val"], ":1"))
    finally:
        hook.remove()
    np.testing.assert_array_equal(r.node_features, seen["x"])


def test_forces_and_stress_equal_the_nequip_ase_calculator(model, li_data, trained):
    from nequip.integrations.ase import NequIPCalculator

    calc = NequIPCalculator._from_saved_model(str(resolve_model_path(trained)), device="cpu", chemical_species_to_atom_type_map=True)
    atoms = read(li_data["val"], 0)
    (r,) = model.evaluate([atoms])
    atoms.calc = calc
    np.testing.assert_allclose(r.forces, atoms.get_forces(), atol=1e-5)
    np.testing.assert_allclose(r.stress, atoms.get_stress(), atol=1e-6)
    np.testing.assert_allclose(r.atomic_energy, atoms.get_potential_energies(), atol=1e-5)


def test_batched_equals_one_frame_at_a_time(model, li_data):
    frames = read(li_data["val"], ":")
    a, b = model.evaluate(frames, batch_size=4), model.evaluate(frames, batch_size=1)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.forces, y.forces, atol=1e-5)
        np.testing.assert_allclose(x.node_features, y.node_features, atol=1e-5)


def test_float64_evaluation_of_a_float32_model(model, trained, li_data):
    m64 = NequIPModel.load(trained, dtype="float64")
    frames = read(li_data["val"], ":2")
    for r32, r64 in zip(model.evaluate(frames), m64.evaluate(frames)):
        assert r64.node_features.dtype == np.float64 and r32.node_features.dtype == np.float32
        np.testing.assert_allclose(r32.forces, r64.forces, atol=1e-4)
    assert m64.fingerprint == model.fingerprint  # same weights, same model


def test_every_model_argument_form_resolves(trained, tmp_path):
    assert resolve_model_path(trained) == trained / "seed0" / "best.ckpt"
    assert resolve_model_path(trained / "seed1" / "best.ckpt").name == "best.ckpt"
    for bad, msg in [(tmp_path / "nothere.ckpt", "no such model"), (tmp_path, "not an 'ltau-md train' output")]:
        with pytest.raises(LtauError, match=msg):
            resolve_model_path(bad)


def test_unknown_species_is_a_one_line_error(model):
    from ase.build import bulk

    with pytest.raises(LtauError, match="Mg is not one of the model's species"):
        model.evaluate([bulk("Mg", "hcp", a=3.2, c=5.2)])


def test_pairs_from_the_forwards_graph_equal_an_ase_neighbour_list(model, li_data):
    """``predict`` takes LTAU's neighbour pairs from the forward's graph instead of a second search."""
    from ase.build import bulk

    from ltau_md.error_model import neighbour_pairs

    one_atom = bulk("Li", "bcc", a=3.45)  # its neighbours are its own periodic images
    molecule = read(li_data["val"], 0)[:12]
    molecule.pbc, molecule.cell = False, None
    frames = [*read(li_data["val"], ":3"), one_atom, molecule]
    for cutoff in (2.9, model.r_max):
        for atoms, r in zip(frames, model.evaluate(frames, batch_size=2, pairs_within=cutoff)):
            ours, ase = (sorted(zip(i.tolist(), j.tolist(), np.round(d, 6).tolist())) for i, j, d in (r.pairs, neighbour_pairs(atoms, cutoff, True)))
            assert ours == ase and (len(ours) > 0 or cutoff < model.r_max)  # Li-Li pairs start near 3 Å
    assert model.evaluate(frames[:1])[0].pairs is None
    with pytest.raises(LtauError, match="reaches"):
        model.evaluate(frames[:1], pairs_within=model.r_max + 1)


def test_predict_with_the_forwards_pairs_equals_a_query_with_ase_pairs(model, li_data, calibrated):
    from ltau_md.artifact import Artifact
    from ltau_md.error_model import frame_pairs
    from ltau_md.nequip.predict import predict

    art = Artifact.load(calibrated)
    frames = read(li_data["val"], ":4")
    frames[1].positions[1] = frames[1].positions[0] + [0.9, 0.0, 0.0]  # one close contact among them
    desc = np.concatenate([r.node_features for r in model.evaluate(frames)])
    numbers = np.concatenate([a.numbers for a in frames])
    for contact, cutoff, cols in ((True, art.pair_cutoff(), 3), (False, art.neighbourhood_cutoff(), 2)):
        ours = predict(model, art, frames, batch_size=3, contact=contact)
        ref = art.query(desc, numbers, pairs=frame_pairs(frames, cutoff, distances=True)[:cols])
        np.testing.assert_allclose(np.concatenate([p.error for p in ours]), ref.error, rtol=1e-6)
        np.testing.assert_allclose(np.concatenate([p.p for p in ours]), ref.p, rtol=1e-6, atol=1e-12)
        if contact:
            assert np.concatenate([p.contact for p in ours]).tolist() == ref.contact.tolist() and ref.contact.any()
        assert all(p.model.pairs is None for p in ours)  # predictions do not keep the pairs
