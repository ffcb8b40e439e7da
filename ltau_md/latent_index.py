"""Nearest training atoms in latent space: FAISS exact, HNSW and IVF-PQ indices.

Which one (seed 002 App. A.2; chosen by size unless the caller says):

* ``flat``  — ``IndexFlatL2``, exact, no parameters; below 5 000 training atoms per species
  (beyond that HNSW answers 2-4x faster at recall ~1: benchmarks/latent_index.py).
* ``hnsw``  — ``IndexHNSWFlat``, up to 10^6, starting from M=8, efConstruction=40, efSearch=8
  (FAISS searches max(efSearch, k) candidates), tuned up until the held-out recall is reached.
  The paper's M=32, efSearch=16 give recall ~1.00 on MD descriptors where M=8 at the smallest
  efSearch already gives 0.97, at a fifth of the query cost and half of M=16's (10^5 Li
  training atoms from MD, 250-atom checks: benchmarks/ann_alternatives.py); the query is what
  fix ltau pays every check. Small starting values are not always
  enough: on data that fills all d dimensions they find a fraction of the true neighbours, and on
  well separated clusters the graph can reach one cluster badly whatever efSearch is. So 1000
  atoms are held out, the index is built on the rest, recall@k of the held-out atoms is measured
  against the exact answer, efSearch is raised (8, 12, 16, 24, 32) until it reaches
  ``target_recall`` (0.95), and if that is not enough the graph is rebuilt with M doubled (16,
  then 32, where efSearch may go up to 256), then with efConstruction doubled (up to 160); then
  the held-out atoms are added. The measured recall and final parameters are recorded. Last, the
  atoms are stored in the graph's reverse Cuthill–McKee order (:meth:`LatentIndex.store_in_graph_order`).
* ``ivfpq`` — ``IndexIVFPQ`` (nlist ≈ 4√N cells, d/2 sub-quantisers of 8 bits: 16 bytes per atom
  at d = 32 instead of 128), from 10^6 atoms on, where a flat or HNSW index would not fit in memory
  comfortably next to a simulation. Its recall is capped by the quantiser (~0.9), not by how many
  cells are probed, so ``nprobe auto`` takes the smallest of 4, 8, ... 64 within 0.01 of the best
  held-out recall (query cost grows with nprobe).

Distances returned are Euclidean (FAISS gives squared L2; we take the square root).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from ase.data import chemical_symbols

from ltau_md import atomic_write
from ltau_md.errors import ArtifactError, LtauError

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
FLAT_MAX_ATOMS = 5_000
HNSW_MAX_ATOMS = 1_000_000
HNSW_DEFAULTS = {"M": 8, "ef_construction": 40, "ef_search": 8}
EF_SEARCH_STEPS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
EF_CONSTRUCTION_MAX = 160
HNSW_M_MAX = 32  # M doubles from HNSW_DEFAULTS["M"] up to this
EF_SEARCH_BEFORE_DENSER = 32  # below HNSW_M_MAX a denser graph beats a larger efSearch
NPROBE_STEPS = (4, 8, 16, 32, 64)
NPROBE_SLACK = 0.01  # recall an IVF-PQ index may give up against its best nprobe, for speed
DEFAULT_TARGET_RECALL = 0.95
# an HNSW index up to this size is read through in order before each search (LatentIndex._prefetch)
PREFETCH_MAX_BYTES = 4 << 20
ADD_CHUNK = 50_000

ProgressFn = Callable[[int, int], None]


def set_search_threads(n: int) -> None:
    """OpenMP threads FAISS searches with (its default is every core). A LAMMPS rank sets it to its
    torch threads: a rank's search in 2 threads on a core another rank is using ran ~10× slower
    than in 1 (the same collapse as torch's)."""
    faiss.omp_set_num_threads(max(1, int(n)))


def choose_index_type(n_atoms: int) -> str:
    if n_atoms < FLAT_MAX_ATOMS:
        return "flat"
    if n_atoms < HNSW_MAX_ATOMS:
        return "hnsw"
    return "ivfpq"


def _as_f32(x: np.ndarray, d: int | None = None, what: str = "descriptors") -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise LtauError(f"{what} must be a 2-D array (atoms × features), got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise LtauError(f"{what} have {x.shape[1]} features but the index was built with {d}")
    if not np.all(np.isfinite(x)):
        raise LtauError(f"{what} contain NaN or inf; the model produced non-finite latent features")
    return x


def _ivfpq_defaults(n: int, d: int) -> dict[str, int]:
    nlist = int(np.clip(4 * np.sqrt(n), 16, 65536))
    m = max(1, d // 2)
    while d % m:
        m -= 1
    return {"nlist": nlist, "m": m, "nbits": 8, "nprobe": "auto"}


def exact_neighbors(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k nearest neighbours (squared L2 via FAISS's exact index)."""
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(_as_f32(base))
    return index.search(_as_f32(queries), k)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the true k neighbours that an approximate search returned."""
    k = truth.shape[1]
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth))
    return hits / (k * len(truth))


@dataclass
class LatentIndex:
    """A FAISS index over training-atom descriptors; row i of the index is training atom i."""

    index: faiss.Index
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    _inner: Any = field(default=None, repr=False)
    # views of an HNSW index's vectors and links for _prefetch (reset whenever atoms change: the
    # arrays behind them are reallocated), or () where the index is too large to prefetch; never
    # copied with the object (a copy that adds atoms would leave the original's views dangling)
    _memory: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        descriptors: np.ndarray,
        kind: str = "auto",
        params: dict[str, Any] | None = None,
        target_recall: float | None = DEFAULT_TARGET_RECALL,
        recall_k: int = 10,
        progress: ProgressFn | None = None,
        seed: int = 0,
    ) -> LatentIndex:
        x = _as_f32(descriptors)
        if len(x) == 0:
            raise LtauError("cannot build a latent index from zero training atoms")
        if kind == "auto":
            kind = choose_index_type(len(x))
        if kind not in INDEX_TYPES:
            raise LtauError(f"index type {kind!r} is not one of auto, {', '.join(INDEX_TYPES)}")
        built = cls._build_tuned(x, kind, dict(params or {}), target_recall, recall_k, progress, seed)
        if kind == "hnsw":
            built.store_in_graph_order()
        return built

    @classmethod
    def _build_tuned(
        cls, x: np.ndarray, kind: str, params: dict[str, Any], target_recall: float | None, recall_k: int, progress: ProgressFn | None, seed: int
    ) -> LatentIndex:
        n = len(x)
        fixed_m = "M" in params
        while True:
            built = cls._empty(x, kind, params, seed)
            if kind == "flat" or n < 20 * (recall_k + 1):
                built._add(x, np.arange(n), progress, n)
                if built.params.get("nprobe") == "auto":
                    built.params["nprobe"] = NPROBE_STEPS[-1]  # too few atoms to measure: the safe end
                return built
            # Hold out probe atoms, measure recall@k on them as fresh queries (and tune), then add
            # them too; ids keep each atom's training position whatever the insertion order.
            rng = np.random.default_rng(seed + 1)
            probe = np.sort(rng.choice(n, size=min(1000, n // 10), replace=False))
            rest = np.setdiff1d(np.arange(n), probe)
            built._add(x[rest], rest, progress, n)
            m, efc = built.params.get("M", HNSW_M_MAX), built.params.get("ef_construction", EF_CONSTRUCTION_MAX)
            grow_m = not fixed_m and m < HNSW_M_MAX  # a denser graph first: it is what separated clusters need
            ef_cap = EF_SEARCH_BEFORE_DENSER if grow_m else None
            reached = built._tune(x[rest], rest, x[probe], recall_k, target_recall if kind == "hnsw" else None, ef_cap)
            if reached or (not grow_m and 2 * efc > EF_CONSTRUCTION_MAX):
                built._add(x[probe], probe, progress, n, offset=len(rest))
                return built
            nxt = {"M": min(2 * m, HNSW_M_MAX), "ef_construction": efc} if grow_m else {"M": m, "ef_construction": 2 * efc}
            params = {**nxt, "ef_search": HNSW_DEFAULTS["ef_search"]}

    @classmethod
    def _empty(cls, x: np.ndarray, kind: str, params: dict[str, Any], seed: int) -> LatentIndex:
        n, d = x.shape
        if kind == "flat":
            if params:
                raise LtauError(f"index type 'flat' takes no parameters, got {sorted(params)}")
            return cls(index=faiss.IndexFlatL2(d), kind=kind, params={})
        if kind == "hnsw":
            p = {**HNSW_DEFAULTS, **params}
            unknown = set(p) - set(HNSW_DEFAULTS)
            if unknown:
                raise LtauError(f"unknown hnsw parameter(s) {sorted(unknown)}; known: {sorted(HNSW_DEFAULTS)}")
            inner = faiss.IndexHNSWFlat(d, int(p["M"]))
            inner.hnsw.efConstruction = int(p["ef_construction"])
            inner.hnsw.efSearch = int(p["ef_search"])
            # IndexIDMap lets atoms go in out of order (held-out probes last) yet keep their ids.
            return cls(index=faiss.IndexIDMap(inner), kind=kind, params=p, _inner=inner)
        p = {**_ivfpq_defaults(n, d), **params}
        unknown = set(p) - {"nlist", "m", "nbits", "nprobe"}
        if unknown:
            raise LtauError(f"unknown ivfpq parameter(s) {sorted(unknown)}; known: nlist, m, nbits, nprobe")
        if d % int(p["m"]):
            raise LtauError(f"ivfpq parameter m={p['m']} must divide the descriptor dimension {d}")
        p["nlist"] = int(min(p["nlist"], max(1, n // 39)))  # k-means wants ≥ 39 points per cell
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFPQ(quantizer, d, int(p["nlist"]), int(p["m"]), int(p["nbits"]))
        rng = np.random.default_rng(seed)
        n_train = min(n, max(64 * int(p["nlist"]), 2 ** int(p["nbits"]) * 39))
        sample = x[np.sort(rng.choice(n, size=n_train, replace=False))] if n_train < n else x
        index.train(sample)
        index.nprobe = NPROBE_STEPS[-1] if p["nprobe"] == "auto" else int(p["nprobe"])
        return cls(index=index, kind=kind, params=p, _inner=quantizer)

    def _add(self, x: np.ndarray, ids: np.ndarray, progress: ProgressFn | None, total: int, offset: int = 0) -> None:
        self._memory = None
        with_ids = isinstance(self.index, (faiss.IndexIDMap, faiss.IndexIVF))
        for start in range(0, len(x), ADD_CHUNK):
            chunk = slice(start, start + ADD_CHUNK)
            if with_ids:
                self.index.add_with_ids(x[chunk], ids[chunk].astype(np.int64))
            else:
                self.index.add(x[chunk])
            if progress is not None:
                progress(offset + min(len(x), start + ADD_CHUNK), total)

    def _tune(
        self, base: np.ndarray, base_ids: np.ndarray, queries: np.ndarray, k: int, target: float | None, ef_cap: int | None = None
    ) -> bool:
        """Record recall@k of held-out queries against the exact answer; for HNSW step efSearch
        up (12, 16, 24, ... at most ``ef_cap``) until it reaches ``target``."""
        _, truth = exact_neighbors(base, queries, k)
        truth = base_ids[truth]
        if self.kind == "ivfpq":
            self._tune_nprobe(queries, truth, k)
            return True
        steps = [s for s in EF_SEARCH_STEPS if s >= self.params["ef_search"] and (ef_cap is None or s <= ef_cap)]
        for ef in steps:
            self.set_search_params(ef_search=ef)
            _, found = self.index.search(queries, k)
            recall = recall_at_k(found, truth)
            if target is None or recall >= target:
                break
        self.params["recall_at_k"] = round(float(recall), 4)
        self.params["recall_k"] = int(k)
        return target is None or recall >= target

    def _tune_nprobe(self, queries: np.ndarray, truth: np.ndarray, k: int) -> None:
        """IVF-PQ recall is capped by the product quantiser, not by nprobe: with ``nprobe auto``
        take the smallest nprobe within NPROBE_SLACK of the best recall (cost grows with nprobe)."""
        fixed = self.params["nprobe"] != "auto"
        steps = [int(self.params["nprobe"])] if fixed else list(NPROBE_STEPS)
        recalls = []
        for nprobe in steps:
            faiss.downcast_index(self.index).nprobe = nprobe
            recalls.append(recall_at_k(self.index.search(queries, k)[1], truth))
        best = max(recalls)
        i = next(j for j, r in enumerate(recalls) if r >= best - NPROBE_SLACK)
        self.set_search_params(nprobe=steps[i])
        self.params["recall_at_k"] = round(float(recalls[i]), 4)
        self.params["recall_k"] = int(k)

    def store_in_graph_order(self) -> None:
        """Store an HNSW index's atoms in reverse Cuthill–McKee order of its bottom-layer graph, so
        that an atom's graph neighbours lie near it in memory. Same graph, same answers (ids are
        remapped), except where descriptors repeat exactly (repeated frames, perfect lattice sites):
        ties are then met in storage order, so which of the equal atoms a search returns can change,
        and with them, for ~1 % of queries when every descriptor came three times, a distance, as
        with another insertion order (recall is unchanged). The search's time is mostly waiting for
        atoms' rows from memory, and this took 3–34 % off it, ~10 % typically (1 thread, 250 queries, interleaved repeats; 10^5 real MD
        descriptors: 2.2–3.0 → 2.0–2.1 ms; 5·10^5: 3.5–4.0 → 3.1–3.8 ms). Finding the order takes
        0.2 s at 10^5 atoms, 5 s and 170 MB more memory at 10^6 (adding them to the graph: 30 s)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        self._memory = None
        n = self.ntotal
        rows, cols = self.bottom_layer_edges()
        adjacency = csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
        order = np.asarray(reverse_cuthill_mckee((adjacency + adjacency.T).tocsr(), symmetric_mode=True), dtype=np.int64)
        self._hnsw().permute_entries(order)  # the new i-th atom is the old order[i]
        if isinstance(self.index, faiss.IndexIDMap):
            faiss.copy_array_to_vector(faiss.vector_to_array(self.index.id_map)[order], self.index.id_map)

    def bottom_layer_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """An HNSW index's bottom-layer graph as (atom, neighbour) storage positions."""
        graph = self._hnsw().hnsw
        width = graph.cum_nb_neighbors(1) - graph.cum_nb_neighbors(0)  # bottom-layer slots per atom
        offsets = faiss.vector_to_array(graph.offsets)[: self.ntotal].astype(np.int64) + graph.cum_nb_neighbors(0)
        cols = faiss.vector_to_array(graph.neighbors)[offsets[:, None] + np.arange(width)].ravel()
        rows = np.repeat(np.arange(self.ntotal), width)
        used = cols >= 0  # empty slots hold -1
        return rows[used], cols[used].astype(np.int64)

    def _hnsw(self) -> faiss.IndexHNSWFlat:
        inner = self.index.index if isinstance(self.index, faiss.IndexIDMap) else self.index
        return faiss.downcast_index(inner)

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        if ef_search is not None:
            if self.kind != "hnsw":
                raise LtauError(f"ef_search applies to hnsw indices; this one is {self.kind}")
            self._hnsw().hnsw.efSearch = int(ef_search)
            self.params["ef_search"] = int(ef_search)
        if nprobe is not None:
            if self.kind != "ivfpq":
                raise LtauError(f"nprobe applies to ivfpq indices; this one is {self.kind}")
            faiss.downcast_index(self.index).nprobe = int(nprobe)
            self.params["nprobe"] = int(nprobe)

    # -- querying ---------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances (n, k) Euclidean, ids (n, k) int64)`` of the k nearest training atoms."""
        q = _as_f32(queries, self.dim, "query descriptors")
        if not 1 <= k <= self.ntotal:
            raise LtauError(f"k={k} must be between 1 and the number of training atoms ({self.ntotal})")
        if self.kind == "hnsw":
            self._prefetch()
        d2, ids = self.index.search(q, k)
        if np.any(ids < 0):
            # IVF can come back short when the probed cells hold fewer than k atoms.
            raise LtauError(
                f"the {self.kind} index found fewer than k={k} neighbours; raise nprobe or use an hnsw index"
            )
        return np.sqrt(np.maximum(d2, 0.0)), ids

    def _prefetch(self) -> None:
        """Read a small HNSW index's vectors and links in order. Between two checks of fix ltau a
        model forward evicts them from the caches, and the search then waits on scattered reads of
        most of them; one sweep in order, which the hardware prefetches, costs less. fix ltau on a
        7500-atom Li index (1.5 MB), 250 atoms (benchmarks/lammps_bridge.py, 3 interleaved repeats):
        2.21–2.24 → 1.99–2.07 ms per check. Larger indices are left alone: the sweep outgrows what the
        search would read (10^5 atoms, 20 MB, after evicting the caches: 2.7 → 3.6 ms)."""
        if self._memory is None:
            hnsw = self._hnsw()
            storage, graph = faiss.downcast_index(hnsw.storage), hnsw.hnsw
            vectors = faiss.rev_swig_ptr(storage.get_xb(), self.ntotal * self.dim)
            links = faiss.rev_swig_ptr(graph.neighbors.data(), graph.neighbors.size())
            small = vectors.nbytes + links.nbytes <= PREFETCH_MAX_BYTES
            self._memory = (vectors, links) if small else ()
        for arr in self._memory:
            arr.max()

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        atomic_write.write_bytes(path, faiss.serialize_index(self.index).tobytes())

    @classmethod
    def load(cls, path: str | os.PathLike, kind: str, params: dict[str, Any] | None = None) -> LatentIndex:
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing; re-run 'ltau-md fit'") from None
        try:
            index = faiss.deserialize_index(raw)  # already the concrete class, and owns its data
        except RuntimeError:
            raise ArtifactError(f"{path}: not a readable FAISS index (corrupted or truncated); re-run 'ltau-md fit'") from None
        expected = {"flat": faiss.IndexFlatL2, "hnsw": faiss.IndexHNSWFlat, "ivfpq": faiss.IndexIVFPQ}.get(kind)
        if expected is None:
            raise ArtifactError(f"{path}: meta.json names index type {kind!r}; expected one of {INDEX_TYPES}")
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
        if not isinstance(inner, expected):
            raise ArtifactError(f"{path}: holds a {type(inner).__name__}, but meta.json says {kind!r}")
        out = cls(index=index, kind=kind, params=dict(params or {}))
        if kind == "hnsw" and "ef_search" in out.params:
            out._hnsw().hnsw.efSearch = int(out.params["ef_search"])
        if kind == "ivfpq" and "nprobe" in out.params:
            index.nprobe = int(out.params["nprobe"])
        return out


class SpeciesIndex:
    """One :class:`LatentIndex` per chemical species: a Li atom's neighbours are Li training atoms.

    Latent features separate strongly by species, so a single index mostly does this anyway; one
    per species makes it exact (an out-of-domain Mg atom never borrows Li p-values), keeps each
    graph on one cluster (HNSW's weak spot, see above) and searches smaller sets. Ids returned
    are training-atom positions in the artifact (``members[z]`` maps local → global).
    """

    def __init__(self, indices: dict[int, LatentIndex], members: dict[int, np.ndarray]) -> None:
        self.indices = indices
        self.members = members

    @property
    def dim(self) -> int:
        return next(iter(self.indices.values())).dim

    @property
    def ntotal(self) -> int:
        return sum(ix.ntotal for ix in self.indices.values())

    @staticmethod
    def members_of(species: np.ndarray) -> dict[int, np.ndarray]:
        return {int(z): np.flatnonzero(species == z) for z in np.unique(species)}

    @classmethod
    def build(
        cls,
        descriptors: np.ndarray,
        species: np.ndarray,
        kind: str = "auto",
        params: dict[str, Any] | None = None,
        target_recall: float | None = DEFAULT_TARGET_RECALL,
        recall_k: int = 10,
        progress: ProgressFn | None = None,
    ) -> SpeciesIndex:
        members = cls.members_of(np.asarray(species))
        total, done = len(descriptors), 0
        indices = {}
        for z, rows in members.items():
            def sub_progress(i: int, _n: int, base: int = done) -> None:
                if progress is not None:
                    progress(base + i, total)

            indices[z] = LatentIndex.build(descriptors[rows], kind, params, target_recall, recall_k, sub_progress)
            done += len(rows)
        return cls(indices, members)

    def search(self, queries: np.ndarray, species: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query atom, its k nearest training atoms of the same species (global ids)."""
        species = np.asarray(species)
        dist = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        for z in np.unique(species):
            if int(z) not in self.indices:
                raise LtauError(f"no {chemical_symbols[int(z)]} training atoms in the index; fit the artifact on data holding {chemical_symbols[int(z)]}")
            rows = np.flatnonzero(species == z)
            ix = self.indices[int(z)]
            if k > ix.ntotal:
                raise LtauError(f"k {k} exceeds the {ix.ntotal} {chemical_symbols[int(z)]} training atoms; give --k (or k) at most {ix.ntotal}")
            d, i = ix.search(queries[rows], k)
            dist[rows], ids[rows] = d, self.members[int(z)][i]
        return dist, ids
