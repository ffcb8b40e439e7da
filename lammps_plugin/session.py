"""Per-rank Python state behind the plugin's callbacks: the pair's model, the fixes' artifacts and
the latents of the latest force evaluation.

``pair_style nequip`` evaluates the model and stores the node features (the LTAU descriptors) of
this rank's atoms, keyed by atom tag and step; ``fix ltau`` reads them at the same step, so the
uncertainty costs no second forward pass. Nothing here calls MPI: reductions, gathers and the
agreement on errors happen in C++ (a Python collective inside a callback could leave a rank
waiting when another fails first).
"""

from __future__ import annotations

import ctypes
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from lammps_plugin import bridge, graphs
from ltau_md.contact import nearest_by_species
from ltau_md.errors import LtauError
from ltau_md.run_cutoffs import environments_examined, run_cutoffs
from ltau_md.species import to_numbers

# The model most recently loaded in this process, by file identity: several `ltau-md run`s in one
# Python process (the API, tests) load it once. Models are read-only after loading.
_LOADED_MODELS: dict[tuple, object] = {}


def count_layers(model) -> int:
    """Message-passing layers L of a nequip energy network (children named ``layer{i}_convnet``)."""
    names = [name for name, _ in model.energy_net.named_children()]
    n = sum(1 for name in names if re.fullmatch(r"layer\d+_convnet", name))
    if n == 0:
        raise LtauError(f"{model.path}: no message-passing layers (layer<i>_convnet) found; not a NequIP model ltau-md can run")
    return n


class LatentCache:
    """Node features of the latest force evaluation on this rank, by atom tag (and, where a fix
    checks close contacts, each atom's nearest neighbour per element: ltau_md.contact)."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.tags = np.zeros(0, dtype=np.int64)
        self.features = np.zeros((0, 0), dtype=np.float32)
        self.nearest: np.ndarray | None = None
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def store(self, step: int, tags: np.ndarray, features: np.ndarray, nearest: np.ndarray | None = None) -> None:
        self.step = int(step)
        self.tags = np.array(tags, dtype=np.int64)  # a copy: LAMMPS reuses its memory
        self.features = features
        self.nearest = nearest
        self._sorted = None

    def _rows(self, step: int, tags: np.ndarray) -> np.ndarray | None:
        """Rows of the stored atoms for ``tags`` (None: the same atoms in the same order)."""
        if self.step != step:
            last = "never" if self.step is None else f"last at step {self.step}"
            raise LtauError(
                f"no latents for step {step}: fix ltau reads the descriptors of pair_style nequip's force "
                f"evaluation of the same step, and the model was evaluated {last}"
            )
        if len(tags) == len(self.tags) and np.array_equal(tags, self.tags):
            return None  # domain mode: the same local atoms in the same order
        if self._sorted is None:
            order = np.argsort(self.tags, kind="stable")
            self._sorted = (self.tags[order], order)
        sorted_tags, order = self._sorted
        pos = np.searchsorted(sorted_tags, tags)
        pos = np.minimum(pos, max(len(sorted_tags) - 1, 0))
        if len(sorted_tags) == 0 or np.any(sorted_tags[pos] != tags):
            raise LtauError(f"latents of step {step} do not cover this rank's atoms (atoms changed after the force evaluation)")
        return order[pos]

    def lookup(self, step: int, tags: np.ndarray) -> np.ndarray:
        rows = self._rows(step, tags)
        return self.features if rows is None else self.features[rows]

    def lookup_nearest(self, step: int, tags: np.ndarray) -> np.ndarray | None:
        """Per atom of ``tags``, its nearest neighbour per element (None where not computed)."""
        if self.nearest is None:
            return None
        rows = self._rows(step, tags)
        return self.nearest if rows is None else self.nearest[rows]


class LammpsExchange:
    """The per-layer ghost exchange of one force evaluation on this rank, in the interface
    nequip's ghost-exchange modules call (``nlocal``, ``ntotal``, ``forward_exchange``,
    ``reverse_exchange``), backed by the plugin's LAMMPS forward/reverse communication.

    Every rank must make the same exchanges in the same order (they are collective): a rank with
    nothing to evaluate, or whose backward pass skipped some, makes them with zero rows
    (:meth:`finish`)."""

    def __init__(self, plugin: bridge.Plugin, nlocal: int, ntotal: int, widths: list[int]) -> None:
        self.plugin = plugin
        self.nlocal, self.ntotal = int(nlocal), int(ntotal)
        self.widths = list(widths)
        self.forward_done: list[int] = []
        self.reverse_done: list[int] = []

    def _exchange(self, reverse: bool, src, dst, width: int) -> None:
        rows = src.detach().reshape(src.shape[0], -1)
        if rows.device.type == "cpu":
            dst.copy_(rows)
            self.plugin.exchange(reverse, dst.detach().numpy())
        else:  # CUDA: LAMMPS communicates host memory
            host = rows.to("cpu").contiguous()
            self.plugin.exchange(reverse, host.numpy())
            dst.copy_(host.to(dst.device))

    def forward_exchange(self, src, dst, width: int) -> None:
        self._exchange(False, src, dst, width)
        self.forward_done.append(int(width))

    def reverse_exchange(self, src, dst, width: int) -> None:
        self._exchange(True, src, dst, width)
        self.reverse_done.append(int(width))

    def finish(self, dtype=np.float32) -> None:
        """Make the exchanges this rank still owes the others, with zero rows."""
        for w in self.widths[len(self.forward_done):]:
            self.plugin.exchange(False, np.zeros((self.ntotal, w), dtype=dtype))
            self.forward_done.append(w)
        owed = self.forward_done[::-1][len(self.reverse_done):]
        for w in owed:
            self.plugin.exchange(True, np.zeros((self.ntotal, w), dtype=dtype))
            self.reverse_done.append(w)


@dataclass
class PairState:
    model: object  # ltau_md.nequip.model.NequIPModel
    num_layers: int
    elements: list[str] = field(default_factory=list)  # per LAMMPS type, type 1 first
    model_types: np.ndarray | None = None  # LAMMPS type -> model type index (index 0 unused)
    numbers: np.ndarray | None = None  # LAMMPS type -> atomic number (index 0 unused)
    prune: bool | None = None  # deep-shell domain mode on the receptive field; None: check at first use
    exchange_widths: list[int] = field(default_factory=list)  # [] : no ghost-exchange hook


@dataclass
class FixState:
    id: str
    artifact: object  # ltau_md.artifact.Artifact
    k: int | None
    scale: float | None
    lo: float | None  # None: auto
    hi: float | None  # None: auto
    dump: Path | None
    queue: object | None  # ltau_md.queue.CandidateQueue, rank 0 only
    predictor: str = "ltau"
    known: object | None = None  # ltau_md.dedup.KnownEnvironments, rank 0 with dedup yes
    numbers: np.ndarray | None = None  # LAMMPS type -> atomic number, set at init
    lo_type: np.ndarray | None = None
    hi_type: np.ndarray | None = None
    search: tuple | None = None  # phase 0's (step, group mask, numbers, distances, ids, contact ratio), for phase 1
    nevery: int = 1  # steps between checks, set at init
    contact: object | None = None  # ltau_md.contact.ContactRule where the artifact has one and it is on

    @property
    def neighbourhood_cutoff(self) -> float:
        """> 0: the predictor reads d̄, so checks run in two phases (the fix averages d over ghosts)."""
        return self.artifact.neighbourhood_cutoff(self.predictor)


class Session:
    """The Python side of one LAMMPS instance on one rank."""

    def __init__(self, plugin: bridge.Plugin, rank: int, run_name: str, source: str) -> None:
        self.plugin = plugin
        self.rank = rank
        self.run_name = run_name
        self.source = source
        self.models: dict[tuple, object] = {}
        self.artifacts: dict[str, object] = {}
        self.pair: PairState | None = None
        self.fixes: dict[str, FixState] = {}
        self.latents = LatentCache()
        self.last_graph: dict[str, int] = {}  # rows, local rows and edges of the latest evaluation
        self.contact_cutoff = 0.0  # Å: the widest close-contact check of this session's fixes (0: none)

    def callbacks(self) -> bridge.Callbacks:
        g = lambda fn: bridge.guarded(self.plugin, fn)
        return bridge.Callbacks(
            pair_settings=bridge.PAIR_SETTINGS(g(self.pair_settings)),
            pair_coeff=bridge.PAIR_COEFF(g(self.pair_coeff)),
            pair_compute=bridge.PAIR_COMPUTE(g(self.pair_compute)),
            fix_create=bridge.FIX_CREATE(g(self.fix_create)),
            fix_init=bridge.FIX_INIT(g(self.fix_init)),
            fix_compute=bridge.FIX_COMPUTE(g(self.fix_compute)),
            fix_frame=bridge.FIX_FRAME(g(self.fix_frame)),
            fix_destroy=bridge.FIX_DESTROY(g(self.fix_destroy)),
        )

    # -- pair_style nequip ------------------------------------------------------------------

    def _model(self, arg: str, dtype: str, device: str):
        from ltau_md.nequip.model import NequIPModel, resolve_model_path

        path = resolve_model_path(arg).resolve()
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, dtype, device)
        if key not in self.models:
            if key not in _LOADED_MODELS:  # the same file in a later LAMMPS instance of this process
                _LOADED_MODELS.clear()
                _LOADED_MODELS[key] = NequIPModel.load(arg, dtype=dtype, device=device)
            self.models[key] = _LOADED_MODELS[key]
        return self.models[key]

    def pair_settings(self, ap) -> None:
        a = ap.contents
        model = self._model(bridge.text(a.model), bridge.text(a.dtype), bridge.text(a.device) or "cpu")
        widths = model.exchange_widths if model.has_exchange_hook else []
        self.pair = PairState(model=model, num_layers=count_layers(model), exchange_widths=widths)
        a.r_max = model.r_max
        a.num_layers = self.pair.num_layers
        a.num_species = len(model.type_names)
        # 1 for a one-layer model: its exchange list is empty but the shell is already r_max
        a.exchange_width = max(widths, default=1) if model.has_exchange_hook else 0

    def pair_coeff(self, ap) -> None:
        a = ap.contents
        if self.pair is None:
            raise LtauError("pair_style nequip must come before pair_coeff")
        elements = bridge.text(a.elements).split()
        for el in elements:
            if el not in atomic_numbers:
                raise LtauError(f"'{el}' is not an element symbol (one element per atom type, e.g. Li Mg)")
        numbers = to_numbers(np.array(elements))
        model = self.pair.model
        types = model.types_of(numbers, where=f"model {model.path}")
        self.pair.elements = elements
        self.pair.model_types = np.concatenate([[-1], types]).astype(np.int64)
        self.pair.numbers = np.concatenate([[0], numbers]).astype(np.int64)
        # the edge cutoff of each LAMMPS type pair: the model's per-edge-type cutoff, else r_max
        n = a.ntypes + 1
        table = bridge.view(a.cutoff, (n, n))
        table[:] = model.r_max
        per_edge = model.edge_cutoffs()
        if per_edge is not None:
            table[1:, 1:] = per_edge[np.ix_(types, types)]

    def pair_compute(self, ap) -> None:
        a = ap.contents
        pair = self.pair
        n, nlocal = a.nrows, a.nlocal
        if n == 0 or (a.mode == 0 and nlocal == 0):  # a rank without atoms (more ranks than the cell can use)
            if a.mode == 0:  # the exchanges are collective: make them with zero rows
                LammpsExchange(self.plugin, nlocal, n, pair.exchange_widths).finish()
            if n:
                bridge.view(a.f, (n, 3))[:] = 0.0
                if a.vatom:
                    bridge.view(a.vatom, (n, 6))[:] = 0.0
            self.latents.store(a.step, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
            return
        x = bridge.view(a.x, (n, 3))
        types = pair.model_types[bridge.view(a.type, (n,))]
        if a.mode == 0:  # domain, per-layer ghost exchange, edges from LAMMPS's neighbour list
            edges = bridge.view(a.edges, (2, a.nedges)).astype(np.int64, copy=False)
            vectors = bridge.view(a.vectors, (a.nedges, 3))
            exchange = LammpsExchange(self.plugin, nlocal, n, pair.exchange_widths)
            res = pair.model.evaluate_graph(types, edges, vectors, energy_nodes=nlocal, exchange=exchange)
            exchange.finish()
            forces = res.forces
        elif a.mode == 2:  # domain for a model without the hook: the whole L*r_max shell
            edges, vectors = graphs.open_graph(x, pair.model.r_max)
            forces, res, edges, vectors = self._evaluate_deep_shell(types, edges, vectors, nlocal)
        else:
            edges, vectors = graphs.periodic_graph(x, list(a.boxlo), list(a.h), pair.model.r_max)
            res = pair.model.evaluate_graph(types, edges, vectors)
            forces = res.forces
        self.last_graph = {"mode": int(a.mode), "nlocal": int(nlocal), "nrows": int(n), "nedges": int(edges.shape[1])}
        nearest = None
        if self._contact_wanted(int(a.step)):  # the model's edges give each atom's nearest neighbours
            local = edges[0] < nlocal  # edges of ghost centres (domain modes) say nothing of local atoms
            r = np.linalg.norm(vectors[local], axis=1)
            close = r < self.contact_cutoff
            numbers = pair.numbers[bridge.view(a.type, (n,))]
            nearest = nearest_by_species(edges[0][local][close], edges[1][local][close], r[close], numbers, nlocal, self.contact_species())
        bridge.view(a.f, (n, 3))[:] = forces
        bridge.view(a.eatom, (n,))[:nlocal] = res.atomic_energy[:nlocal]
        if a.vatom:
            bridge.view(a.vatom, (n, 6))[:] = graphs.atom_virial(edges, vectors, res.edge_gradient, n)
        if a.virial:
            bridge.view(a.virial, (6,))[:] = graphs.virial(vectors, res.edge_gradient)
        self.latents.store(a.step, self.plugin.tags(a.tag, n)[:nlocal], res.node_features[:nlocal], nearest)

    def _contact_wanted(self, step: int) -> bool:
        """Whether a fix checks close contacts after this evaluation: at its checks (every N steps), and
        whenever the step does not follow the last one evaluated (a run's or minimization's setup,
        reset_timestep, a line search); not at the MD steps between (their cost: ~1 µs per atom)."""
        if self.contact_cutoff <= 0:
            return False
        if self.latents.step is None or step != self.latents.step + 1:
            return True
        return any(st.contact is not None and step % st.nevery == 0 for st in self.fixes.values())

    def contact_species(self) -> np.ndarray:
        """The atomic numbers (sorted) of the pair's elements: the columns of the nearest-neighbour table."""
        return np.unique(self.pair.numbers[1:])

    def _update_contact_cutoff(self) -> None:
        self.contact_cutoff = max([st.contact.cutoff for st in self.fixes.values() if st.contact is not None] + [0.0])

    def _evaluate_deep_shell(self, types, edges, vectors, nlocal):
        """Domain mode without per-layer exchange (a model without nequip's ghost-exchange hook),
        on the receptive field of the local atoms (graphs.receptive_field).

        Returns forces on all rows, the model result (local atoms first), and the edges (indices
        into all rows) and vectors that were evaluated, for the virials. The first evaluation also
        runs the whole graph and keeps pruning only if both agree, so a model whose layers do not
        update nodes from incoming edges alone still gets exact forces.
        """
        pair, model = self.pair, self.pair.model
        n = len(types)
        if pair.prune is not False:
            keep, nodes = graphs.receptive_field(edges, nlocal, pair.num_layers)
            new_id = np.full(n, -1, dtype=np.int64)
            new_id[nodes] = np.arange(len(nodes))
            sub_edges, sub_vectors = edges[:, keep], vectors[keep]
            res = model.evaluate_graph(types[nodes], new_id[sub_edges], sub_vectors, energy_nodes=nlocal)
            forces = np.zeros((n, 3))
            forces[nodes] = res.forces
            if pair.prune is None and nlocal > 0:  # decided on a rank that has atoms to compare
                full = model.evaluate_graph(types, edges, vectors, energy_nodes=nlocal)
                scale = max(1.0, float(np.abs(full.forces).max(initial=0.0)))
                tol = (1e-4 if model.dtype == "float32" else 1e-9) * scale
                pair.prune = bool(
                    np.abs(forces - full.forces).max(initial=0.0) <= tol
                    and np.abs(res.atomic_energy[:nlocal] - full.atomic_energy[:nlocal]).max(initial=0.0) <= tol
                )
                if not pair.prune:
                    print(
                        f"pair nequip: rank {self.rank}: the receptive-field graph changes this model's forces; "
                        "evaluating the whole ghost shell instead (slower, exact)",
                        file=sys.stderr,
                    )
                    return full.forces, full, edges, vectors
            return forces, res, sub_edges, sub_vectors
        res = model.evaluate_graph(types, edges, vectors, energy_nodes=nlocal)
        return res.forces, res, edges, vectors

    # -- fix ltau ---------------------------------------------------------------------------

    def _artifact(self, arg: str):
        from ltau_md.artifact import Artifact

        key = str(Path(arg).resolve())
        if key not in self.artifacts:
            self.artifacts[key] = Artifact.load(arg)
        return self.artifacts[key]

    def fix_create(self, ap) -> None:
        a = ap.contents
        fid = bridge.text(a.id)
        art = self._artifact(bridge.text(a.artifact))
        if self.pair is not None:
            art.check_model(str(self.pair.model.path), self.pair.model.fingerprint)
        dump = Path(bridge.text(a.dump)) if a.dump else None
        predictor = art.resolve_predictor(bridge.text(a.predictor) if a.predictor else None)
        queue, known = None, None
        if self.rank == 0:  # only rank 0 writes frames; paths are checked now, not at the first frame
            from lammps_plugin import frame_dump

            if dump is not None:
                frame_dump.probe_writable(dump, "dump")
                cut = frame_dump.repair_extxyz(dump)
                if cut:
                    print(f"fix ltau {fid}: cut a partial last frame ({cut} bytes) off {dump}", file=sys.stderr)
            if a.queue:
                from ltau_md.queue import CandidateQueue

                queue = CandidateQueue(bridge.text(a.queue), writable=True)
            if dump is not None and queue is not None:
                queued, appended = frame_dump.reconcile(dump, queue)
                if queued or appended:
                    print(f"fix ltau {fid}: {dump} and {queue.url} disagreed (a run killed between the two writes?): "
                          f"queued {queued} frame(s) found only in the dump, appended {appended} found only in the queue",
                          file=sys.stderr)  # fmt: skip
            if a.dedup and (dump is not None or queue is not None):
                from ltau_md.dedup import KnownEnvironments

                known = KnownEnvironments(art)
                if queue is not None and known.enabled:
                    known.add_queue(queue)
        self.fixes[fid] = FixState(
            id=fid,
            artifact=art,
            k=a.k if a.k > 0 else None,
            scale=a.scale if a.scale > 0 else None,
            lo=None if a.lo_auto else float(a.lo),
            hi=None if a.hi_auto else float(a.hi),
            dump=dump,
            queue=queue,
            predictor=predictor,
            known=known,
            contact=art.contact if art.contact is not None and art.contact.enabled else None,
        )
        a.descriptor_dim = int(art.meta["descriptor_dim"])
        a.neighbourhood_cutoff = self.fixes[fid].neighbourhood_cutoff
        self._update_contact_cutoff()

    def fix_init(self, ap) -> None:
        a = ap.contents
        st = self.fixes[bridge.text(a.id)]
        pair = self.pair
        if pair is None or pair.numbers is None:
            raise LtauError("pair_coeff must be set before a run with fix ltau (it names each type's element)")
        art, model = st.artifact, pair.model
        art.check_model(str(model.path), model.fingerprint)
        st.numbers = pair.numbers
        species = sorted(set(pair.elements), key=pair.elements.index)
        art.species_numbers(species, where="pair_coeff species")
        k = st.k or art.k
        for sp in species:
            n_sp = int(np.sum(art.train["species"] == to_numbers([sp])[0]))
            if k > n_sp:
                raise LtauError(f"k {k} exceeds the {n_sp} {sp} training atoms of {art.path}")
        n = int(a.nsamples) or environments_examined(max(1, int(a.ngroup)), int(a.nsteps), int(a.nevery))
        cut = run_cutoffs(art, species, n, lo=st.lo, hi=st.hi, scale=st.scale, predictor=st.predictor)
        lo, hi = cut.lo, cut.hi
        ntypes = a.ntypes
        lo_view, hi_view = bridge.view(a.lo, (ntypes + 1,)), bridge.view(a.hi, (ntypes + 1,))
        for t in range(1, ntypes + 1):
            lo_view[t] = lo[pair.elements[t - 1]]
            hi_view[t] = hi[pair.elements[t - 1]]
        st.lo_type, st.hi_type = lo_view.copy(), hi_view.copy()
        st.nevery = max(1, int(a.nevery))
        raw = f"{cut.describe()}, k {k}".encode()[: a.message_size - 1] + b"\0"
        ctypes.memmove(a.message, raw, len(raw))

    def fix_compute(self, ap) -> None:
        a = ap.contents
        st = self.fixes[bridge.text(a.id)]
        n = a.nlocal
        if n == 0:
            return
        if a.phase == 1:  # the fix has averaged phase 0's distances over each atom's neighbourhood
            step, sel, numbers, dist, ids, ratio = st.search
            if step != a.step or len(sel) != n:
                raise LtauError(f"fix ltau {st.id}: the neighbourhood phase of step {a.step} met the search of step {step}")
            st.search = None
            neighbourhood = bridge.view(a.dnbr, (n,))[sel]
        else:
            tags = self.plugin.tags(a.tag, n)
            features = self.latents.lookup(a.step, tags)
            dim = a.latent_dim
            if features.shape[1] != dim:
                raise LtauError(f"the model's latents have {features.shape[1]} features, {st.artifact.path} was fitted on {dim}")
            sel = (bridge.view(a.mask, (n,)) & a.groupbit) != 0
            types = bridge.view(a.type, (n,))
            bridge.view(a.latent, (n, dim))[sel] = features[sel]
            two_phase = st.neighbourhood_cutoff > 0
            # two phases: every local atom's distance (d̄ is over the physical neighbourhood, group or
            # not); phase 1 finishes once the fix has averaged them over each atom's neighbours
            if not two_phase and not sel.any():
                return
            searched_features, searched_types = (features, types) if two_phase else (features[sel], types[sel])  # no copy of all
            numbers, dist, ids = st.artifact.search(searched_features, st.numbers[searched_types], k=st.k)
            ratio = self._contact_ratio(st, a.step, tags[sel], st.numbers[types[sel]])
            if two_phase:
                bridge.view(a.dist, (n,))[:] = dist[:, 0]
                st.search = (a.step, sel, numbers[sel], dist[sel], ids[sel], ratio)
                return
            neighbourhood = None
        if sel.any():
            u = st.artifact.assemble(numbers, dist, ids, scale=st.scale, predictor=st.predictor, neighbourhood=neighbourhood,
                                     contact_ratio=ratio)  # fmt: skip
            error = u.error
            if st.hi is None and u.contact is not None and u.contact.any():
                # a close contact is a failure: above hi auto even where lo auto (and so hi) exceeds the
                # rule's error; a hi the user gave is theirs (e.g. to run on past a halt)
                hi = st.hi_type[bridge.view(a.type, (n,))[sel]]
                error = np.where(u.contact, np.maximum(error, np.nextafter(hi, np.inf)), error)
            out = bridge.view(a.out, (n, 2))
            out[sel, 0] = error
            out[sel, 1] = u.p

    def _contact_ratio(self, st: FixState, step: int, tags: np.ndarray, numbers: np.ndarray) -> np.ndarray | None:
        """Per group atom, ltau_md.contact's ratio from pair_style nequip's edges of this step (None:
        the artifact has no contact rule, or the distances were not kept for this step)."""
        if st.contact is None:
            return None
        nearest = self.latents.lookup_nearest(step, tags)
        if nearest is None:  # not kept at this evaluation (a fix created since): values only, no check acts here
            return None
        return st.contact.ratio(nearest, numbers, self.contact_species())

    def fix_frame(self, ap) -> None:
        from lammps_plugin.frame_dump import append_extxyz, frame_atoms

        a = ap.contents
        st = self.fixes[bridge.text(a.id)]
        n, dim = a.natoms, a.latent_dim
        types = bridge.view(a.type, (n,)).copy()
        error = bridge.view(a.error, (n,)).copy()
        p = bridge.view(a.p, (n,)).copy()
        pbc = tuple(bool(a.periodic >> d & 1) for d in range(3))
        reason = "hi" if a.reason == 1 else "lo"
        numbers = st.numbers[types]
        latent = bridge.view(a.latent, (n, dim)).astype(np.float32)
        flagged = error > st.lo_type[types]
        duplicate = False
        # a frame above hi is always kept (it halts the run), and so is one with an atom in close
        # contact (p 0 at the rule's error or more; below a hi given above it): contacts hide near
        # training atoms in latent space
        contact = st.contact is not None and bool(np.any(flagged & (p == 0.0) & (error >= st.contact.error)))
        if st.known is not None and reason == "lo" and not contact:
            duplicate = st.known.check(latent, numbers, flagged).duplicate
        a.duplicate = int(duplicate)
        phase = "minimize" if a.minimizing else "md"
        atoms = frame_atoms(
            numbers, bridge.view(a.x, (n, 3)), bridge.view(a.v, (n, 3)), list(a.boxlo),
            graphs.cell_matrix(list(a.h)), pbc,
        )  # fmt: skip
        model = self.pair.model
        atoms.info.update(
            step=int(a.step), timestep=float(a.dt), run=self.run_name, fix=st.id, reason=reason,
            n_above_lo=int(a.n_above_lo), n_above_hi=int(a.n_above_hi), max_error=float(error.max()),
            model_fingerprint=model.fingerprint, artifact_fingerprint=st.artifact.fingerprint,
            minimize=bool(a.minimizing),
        )  # fmt: skip
        atoms.arrays["ltau_error"] = error
        atoms.arrays["ltau_p"] = p
        atoms.arrays["lammps_id"] = self.plugin.tags(a.tag, n).astype(np.int64)
        if duplicate:  # recorded in the queue for the counts, not dumped and never selected
            if st.queue is not None:
                frame = atoms.copy()
                for key in ("ltau_error", "ltau_p"):
                    del frame.arrays[key]
                st.queue.add(
                    frame, error=error, p=p, run=self.run_name, step=int(a.step), reason=reason,
                    model_fingerprint=model.fingerprint, artifact_fingerprint=st.artifact.fingerprint,
                    lo=st.lo_type[types], source=self.source, fix=st.id, status="duplicate", phase=phase,
                )  # fmt: skip
            return
        if st.known is not None:
            st.known.add(latent, numbers, flagged)
        if st.dump is not None:
            try:
                append_extxyz(st.dump, atoms)
            except OSError as exc:
                raise LtauError(f"dump {st.dump}: cannot write ({exc.strerror or exc})") from None
        if st.queue is not None:
            frame = atoms.copy()
            for key in ("ltau_error", "ltau_p"):
                del frame.arrays[key]  # stored as the row's data by the queue
            st.queue.add(
                frame, error=error, p=p, run=self.run_name, step=int(a.step), reason=reason,
                model_fingerprint=model.fingerprint, artifact_fingerprint=st.artifact.fingerprint,
                lo=st.lo_type[types], latent=latent, source=self.source,
                dump=str(st.dump.resolve()) if st.dump is not None else None, fix=st.id, phase=phase,
            )  # fmt: skip

    def fix_destroy(self, fid: bytes) -> None:
        self.fixes.pop(bridge.text(fid), None)
        self._update_contact_cutoff()

