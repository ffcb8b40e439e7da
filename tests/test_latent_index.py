import numpy as np
import pytest
from conftest import descriptor_like

from ltau_md.errors import ArtifactError, LtauError
from ltau_md.latent_index import LatentIndex, choose_index_type, exact_neighbors, recall_at_k


def brute_force_knn(base, queries, k):
    d2 = ((queries[:, None, :].astype(np.float64) - base[None, :, :]) ** 2).sum(-1)
    ids = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(d2, ids, 1)), ids


def test_exact_index_equals_brute_force(rng):
    base = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((200, 32)).astype(np.float32)
    index = LatentIndex.build(base, "flat")
    dist, ids = index.search(queries, 10)
    bdist, bids = brute_force_knn(base, queries, 10)
    np.testing.assert_array_equal(ids, bids)
    np.testing.assert_allclose(dist, bdist, rtol=1e-4, atol=1e-4)


def test_index_type_is_chosen_by_size_with_explicit_override():
    assert choose_index_type(4_000) == "flat"
    assert choose_index_type(10_000) == "hnsw"
    assert choose_index_type(100_000) == "hnsw"
    assert choose_index_type(2_000_000) == "ivfpq"
    x = descriptor_like(2000)
    assert LatentIndex.build(x).kind == "flat"
    assert LatentIndex.build(x, "hnsw").kind == "hnsw"
    with pytest.raises(LtauError, match="not one of"):
        LatentIndex.build(x, "annoy")
    with pytest.raises(LtauError, match="unknown hnsw parameter"):
        LatentIndex.build(x, "hnsw", {"efsearch": 3})


@pytest.mark.slow
def test_hnsw_recall_at_10_is_at_least_095_at_1e5_descriptor_like_points():
    data = descriptor_like(101_000, seed=0)
    base, queries = data[:100_000], data[100_000:]  # fresh points from the same manifold
    index = LatentIndex.build(base, "hnsw")
    # M=8, efConstruction=40, efSearch=8 are the starting point; three separated clusters need M=32
    assert index.params["M"] == 32 and index.params["ef_construction"] >= 40 and index.params["ef_search"] >= 8
    _, truth = exact_neighbors(base, queries, 10)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95


@pytest.mark.slow
def test_hnsw_raises_ef_search_until_recall_target_on_isotropic_data(rng):
    # 2·10^4 points already need efSearch ≈ 48 (isotropic 32-D has no low-dimensional manifold)
    base = rng.standard_normal((20_000, 32)).astype(np.float32)
    queries = rng.standard_normal((1000, 32)).astype(np.float32)
    index = LatentIndex.build(base, "hnsw")
    assert index.params["ef_search"] > 8  # the starting value is not enough here
    assert index.params["recall_at_k"] >= 0.95
    _, truth = exact_neighbors(base, queries, 10)
    _, found = index.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.95


def test_compressed_index_is_smaller_and_finds_near_neighbours(tmp_path):
    base = descriptor_like(20_000, seed=2)  # big enough for 512 lists of 39+ training points each
    queries = descriptor_like(20_500, seed=2)[20_000:]
    ivf = LatentIndex.build(base, "ivfpq")
    flat = LatentIndex.build(base, "flat")
    ivf.save(tmp_path / "ivf.faiss")
    flat.save(tmp_path / "flat.faiss")
    assert (tmp_path / "ivf.faiss").stat().st_size < 0.3 * (tmp_path / "flat.faiss").stat().st_size
    _, truth = flat.search(queries, 10)
    _, found = ivf.search(queries, 10)
    assert recall_at_k(found, truth) >= 0.5
    assert 0 < ivf.params["recall_at_k"] <= 1


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_saved_index_loads_and_answers_identically(tmp_path, kind):
    base = descriptor_like(5000, seed=4)
    queries = descriptor_like(5100, seed=4)[5000:]
    index = LatentIndex.build(base, kind)
    index.save(tmp_path / "i.faiss")
    again = LatentIndex.load(tmp_path / "i.faiss", kind, index.params)
    for a, b in zip(index.search(queries, 5), again.search(queries, 5)):
        np.testing.assert_array_equal(a, b)


def test_loading_an_index_of_another_type_is_refused(tmp_path):
    LatentIndex.build(descriptor_like(500), "flat").save(tmp_path / "i.faiss")
    with pytest.raises(ArtifactError, match="IndexFlatL2"):
        LatentIndex.load(tmp_path / "i.faiss", "hnsw")


def test_bad_queries_are_refused():
    index = LatentIndex.build(descriptor_like(100), "flat")
    with pytest.raises(LtauError, match="between 1 and"):
        index.search(descriptor_like(3), 101)
    with pytest.raises(LtauError, match="features"):
        index.search(np.zeros((2, 5)), 1)
    with pytest.raises(LtauError, match="NaN"):
        index.search(np.full((2, 32), np.nan), 1)


def test_the_sparsest_hnsw_graph_is_kept_when_a_small_ef_search_reaches_the_recall_target():
    from ltau_md.latent_index import EF_SEARCH_BEFORE_DENSER, HNSW_DEFAULTS

    index = LatentIndex.build(descriptor_like(20_000, n_species=1, seed=3), "hnsw")
    assert {k: index.params[k] for k in ("M", "ef_construction")} == {"M": HNSW_DEFAULTS["M"], "ef_construction": 40}
    assert 8 <= index.params["ef_search"] <= EF_SEARCH_BEFORE_DENSER
    assert index.params["recall_at_k"] >= 0.95


def test_hnsw_atoms_stored_in_graph_order_lie_near_their_neighbours_and_answer_the_same():
    import faiss

    base = descriptor_like(20_000, n_species=1, seed=5)
    queries = descriptor_like(20_300, n_species=1, seed=5)[20_000:]
    inner = faiss.IndexHNSWFlat(base.shape[1], 8)
    inner.hnsw.efSearch = 16
    insertion = LatentIndex(index=faiss.IndexIDMap(inner), kind="hnsw")
    insertion.index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
    ordered = LatentIndex(index=faiss.deserialize_index(faiss.serialize_index(insertion.index)), kind="hnsw")
    ordered.store_in_graph_order()
    for a, b in zip(insertion.search(queries, 10), ordered.search(queries, 10)):
        np.testing.assert_array_equal(a, b)  # the same graph: the same neighbours, by training position
    spread = {name: np.median(np.abs(np.subtract(*ix.bottom_layer_edges()))) for name, ix in (("insertion", insertion), ("ordered", ordered))}
    assert spread["ordered"] < 0.5 * spread["insertion"], spread
    # LatentIndex.build stores HNSW indices that way
    built = LatentIndex.build(base, "hnsw")
    assert np.median(np.abs(np.subtract(*built.bottom_layer_edges()))) < 0.5 * spread["insertion"]


def test_a_small_hnsw_index_is_prefetched_from_its_live_arrays_also_after_reordering(monkeypatch):
    import faiss

    import ltau_md.latent_index as li

    base = descriptor_like(3_000, n_species=1, seed=7)
    queries = descriptor_like(3_200, n_species=1, seed=7)[3_000:]
    index = LatentIndex.build(base, "hnsw")
    before = index.search(queries, 10)
    vectors, links = index._memory  # set by the search: 3000 atoms are well under PREFETCH_MAX_BYTES
    first_order = faiss.downcast_index(index._hnsw().storage).reconstruct_n(0, len(base))
    np.testing.assert_array_equal(vectors.reshape(len(base), -1), first_order)
    assert len(links) == index._hnsw().hnsw.neighbors.size()
    index.store_in_graph_order()  # moves the atoms: the views are dropped, not left pointing at old memory
    assert index._memory is None
    after = index.search(queries, 10)
    stored = faiss.downcast_index(index._hnsw().storage).reconstruct_n(0, len(base))
    assert not np.array_equal(stored, first_order)  # reordered: views kept from before would be stale
    np.testing.assert_array_equal(index._memory[0].reshape(len(base), -1), stored)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(li, "PREFETCH_MAX_BYTES", 0)  # a larger index is searched without the sweep
    index._memory = None
    for a, b in zip(before, index.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    assert index._memory == ()
