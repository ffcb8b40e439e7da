"""A trained NequIP model: one forward pass → energies, forces, stress/virial and latent features.

Everything goes through the model's energy network with **edge vectors as the input**: the
caller (ASE frames here, LAMMPS ranks in ``lammps_plugin``) supplies a directed graph and the
vectors d_ij = x_j − x_i (+ periodic shift); autograd gives g = ∂E/∂d, hence

    F_i = Σ_{edges i→j} g_ij − Σ_{edges j→i} g_ji,     virial W = −Σ_e d_e ⊗ g_e,

for periodic cells, batches of frames and a rank's local + ghost atoms alike. The same forward
returns ``node_features`` (the output of the last message-passing layer): LTAU's descriptor, at no
extra cost.

MODEL arguments accepted everywhere: a ``ltau-md train`` directory (its first member is the
production model), a nequip checkpoint ``*.ckpt`` or a nequip package ``*.nequip.zip``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltau_md.errors import LtauError
from ltau_md.species import symbol, to_numbers

MODEL_DIR_FILE = "ensemble.json"
DTYPES = ("float32", "float64")


def model_dir_members(model_dir: str | os.PathLike) -> list[dict]:
    """The members of an ``ltau-md train`` directory (``ensemble.json``), production model first."""
    p = Path(model_dir)
    manifest = p / MODEL_DIR_FILE
    if not manifest.is_file():
        if any(d.is_dir() for d in p.glob("seed*")):  # the members' directories, not yet the manifest
            raise LtauError(f"{p}: an 'ltau-md train' that did not finish (no {MODEL_DIR_FILE}); "
                            "repeat the command that trained it (train or loop) with --resume")
        raise LtauError(f"{p}: a directory but not an 'ltau-md train' output (no {MODEL_DIR_FILE}); pass a .ckpt or .nequip.zip")
    try:
        members = json.loads(manifest.read_text())["members"]
        if not members or not all(isinstance(m, dict) and isinstance(m["checkpoint"], str) for m in members):
            raise TypeError
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise LtauError(f"{manifest}: malformed or truncated (expected 'members', each with a 'checkpoint'); re-run 'ltau-md train'") from None
    return members


def resolve_model_path(model: str | os.PathLike) -> Path:
    """The file behind a MODEL argument (train directory, checkpoint or package)."""
    p = Path(model)
    if p.is_dir():
        ckpt = p / model_dir_members(p)[0]["checkpoint"]
        if not ckpt.is_file():
            raise LtauError(f"{ckpt}: missing; the training in {p} did not finish")
        return ckpt
    if not p.exists():
        raise LtauError(f"{p}: no such model (expected an ltau-md train directory, a .ckpt or a .nequip.zip)")
    if p.name.endswith(".nequip.pt2") or p.suffix == ".pth":
        raise LtauError(f"{p}: compiled models give no gradients or latents here; pass the .ckpt or .nequip.zip it came from")
    if not (p.suffix == ".ckpt" or p.name.endswith(".nequip.zip")):
        raise LtauError(f"{p}: not a nequip checkpoint (.ckpt) or package (.nequip.zip)")
    return p


def _fingerprint(module, metadata: dict[str, str]) -> str:
    """sha256 over the weights (as float64, so a float32 model and its float64 rebuild, or a
    checkpoint and its package, agree) and the metadata that changes the physics."""
    import torch

    h = hashlib.sha256()
    for key in ("type_names", "r_max", "per_edge_type_cutoff"):
        h.update(f"{key}={metadata.get(key)};".encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        if torch.is_floating_point(tensor):
            tensor = tensor.detach().to(torch.float64)
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class GraphResult:
    """Outputs of one forward pass over a graph (numpy, float64 except node_features)."""

    atomic_energy: np.ndarray  # (n_nodes,)
    forces: np.ndarray  # (n_nodes,) × 3, −∂E/∂x of the energy of the energy-carrying nodes
    edge_gradient: np.ndarray  # (n_edges, 3) ∂E/∂d
    node_features: np.ndarray  # (n_nodes, d), model dtype


@dataclass
class FrameResult:
    """One frame's model outputs."""

    energy: float
    atomic_energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray | None  # ASE Voigt order, eV/Å³ (None for non-periodic frames)
    node_features: np.ndarray
    # directed neighbour pairs (i, j, r) of the forward's graph within ``evaluate``'s ``pairs_within``
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


class NequIPModel:
    """A loaded nequip model (eager) with ltau-md's single-forward evaluation."""

    def __init__(self, graph_model, path: Path, dtype: str, device: str = "cpu") -> None:
        self.graph_model = graph_model
        self.energy_net = graph_model.model.func  # the network inside ForceStressOutput
        self.path = path
        self.dtype = dtype
        self.device = device
        md = graph_model.metadata
        self.r_max = float(md["r_max"])
        self.type_names: list[str] = list(graph_model.type_names)
        self.species = to_numbers(self.type_names, f"{path}: type_names")
        self._type_of = {int(z): t for t, z in enumerate(self.species)}
        self.fingerprint = _fingerprint(graph_model, md)
        self._per_edge_cutoff = self._edge_cutoff_table(md)
        self.descriptor_dim: int | None = None
        self._exchange_net = None

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, model: str | os.PathLike, dtype: str = "float32", device: str = "cpu") -> NequIPModel:
        """``device``: cpu, cuda or auto (cuda when torch sees a GPU)."""
        if dtype not in DTYPES:
            raise LtauError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        path = resolve_model_path(model)
        import torch  # (heavy; only here)
        from nequip.utils.global_state import set_global_state

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise LtauError("device cuda: this torch sees no CUDA device (torch.cuda.is_available() is False); use device cpu or auto")
        elif device not in ("cpu", "cuda"):
            raise LtauError(f"device must be cpu, cuda or auto, not {device!r}")

        set_global_state()  # nequip requires it before building/loading; sets float64 default dtype
        try:
            if dtype == "float64":
                graph_model = cls._load_float64(path)
            else:
                from nequip.model.saved_models.load_utils import load_saved_model

                graph_model = load_saved_model(str(path), compile_mode="eager")
        except LtauError:
            raise
        except Exception as exc:  # nequip/torch raise many types for a bad file
            text = (str(exc).strip().splitlines() or [""])[0]
            text = text if len(text) <= 200 else text[:200].rsplit(" ", 1)[0] + " …"  # torch's can run to paragraphs
            raise LtauError(f"{path}: cannot load the model ({type(exc).__name__}: {text}); give a whole nequip checkpoint "
                            "(.ckpt) or package (.nequip.zip) — a truncated copy fails this way") from None
        graph_model = graph_model.to(device).eval()
        for p in graph_model.parameters():
            p.requires_grad_(False)  # gradients are taken w.r.t. edge vectors only
        out = cls(graph_model, path, dtype, device)
        species = out.type_names
        try:
            to_numbers(species)
        except LtauError:
            raise LtauError(f"{path}: model type names {species} are not element symbols; ltau-md maps species by element") from None
        return out

    @staticmethod
    def _load_float64(path: Path):
        """A float32-trained checkpoint rebuilt at float64 (nequip fixes dtypes at build time,
        so ``.double()`` is not enough): same weights, cast on load."""
        if not path.suffix == ".ckpt":
            raise LtauError(f"{path}: float64 evaluation needs the training checkpoint (.ckpt), not a package")
        import hydra
        import torch
        from nequip.model.utils import override_model_compile_mode

        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # nequip's own checkpoint format
        info = ckpt["hyper_parameters"]["info_dict"]["training_module"]["_target_"]
        module_cls = hydra.utils.get_class(info)
        model_cfg = dict(ckpt["hyper_parameters"]["model"])
        model_cfg["model_dtype"] = "float64"
        with override_model_compile_mode("eager"):
            lm = module_cls.load_from_checkpoint(str(path), map_location="cpu", weights_only=False, model=model_cfg)
        return lm.evaluation_model["sole_model"]

    # -- species ----------------------------------------------------------------------------

    def types_of(self, numbers: np.ndarray, where: str = "frame") -> np.ndarray:
        numbers = np.asarray(numbers)
        out = np.empty(len(numbers), dtype=np.int64)
        for z in np.unique(numbers):
            t = self._type_of.get(int(z))
            if t is None:
                raise LtauError(
                    f"{where}: element {symbol(z)} is not one of the model's species ({', '.join(self.type_names)})"
                )
            out[numbers == z] = t
        return out

    def edge_cutoffs(self) -> np.ndarray | None:
        """(n_types, n_types) per-edge-type cutoffs (Å) by model type index, or None (r_max for all)."""
        return None if self._per_edge_cutoff is None else self._per_edge_cutoff.copy()

    def _edge_cutoff_table(self, md: dict[str, str]) -> np.ndarray | None:
        raw = md.get("per_edge_type_cutoff")
        if not raw:
            return None
        vals = np.array([float(x) for x in raw.split()], dtype=np.float64)
        n = len(self.type_names)
        return vals.reshape(n, n)

    # -- per-layer ghost exchange (a LAMMPS rank's local + ghost atoms) --------------------

    def _interaction_blocks(self) -> list:
        from nequip.nn.interaction_block import InteractionBlock

        return [m for m in self.energy_net.modules() if isinstance(m, InteractionBlock)]

    @property
    def has_exchange_hook(self) -> bool:
        """Whether nequip's ghost-exchange modules can be swapped in (nequip ≥ 0.17 models)."""
        from nequip.model.modify_utils import get_all_modifiers

        blocks = self._interaction_blocks()
        return bool(blocks) and all(hasattr(b, "ghost_exchange") for b in blocks) and (
            "enable_LAMMPSMLIAPGhostExchange" in get_all_modifiers(self.graph_model)
        )

    @property
    def exchange_widths(self) -> list[int]:
        """Row widths of the node features exchanged after each interaction layer but the first,
        in layer order (the backward pass exchanges their gradients in reverse order)."""
        from nequip.data import AtomicDataDict

        return [int(b.irreps_in[AtomicDataDict.NODE_FEATURES_KEY].dim) for b in self._interaction_blocks() if not b.is_first_layer]

    def _exchanging_net(self):
        """The energy network with nequip's LAMMPS ghost-exchange modules swapped in (a copy: the
        plain network stays for whole-cell and ASE evaluations)."""
        if self._exchange_net is None:
            import copy

            from nequip.model.modify_utils import modify

            modified = modify(copy.deepcopy(self.graph_model), [{"modifier": "enable_LAMMPSMLIAPGhostExchange"}])
            modified = modified.to(self.device).eval()
            for p in modified.parameters():
                p.requires_grad_(False)
            self._exchange_net = modified.model.func
        return self._exchange_net

    # -- evaluation -------------------------------------------------------------------------

    def evaluate_graph(
        self,
        types: np.ndarray,
        edge_index: np.ndarray,
        edge_vectors: np.ndarray,
        energy_nodes: int | None = None,
        exchange=None,
    ) -> GraphResult:
        """One forward + backward over a directed graph.

        ``energy_nodes``: only nodes ``[0, energy_nodes)`` carry energy (a LAMMPS rank's local
        atoms; the rest are ghosts whose forces LAMMPS sends back to their owners).

        ``exchange`` (a LAMMPS rank's evaluation with per-layer ghost exchange): an object with
        ``nlocal``, ``ntotal`` and ``forward_exchange(src, dst, width)`` /
        ``reverse_exchange(src, dst, width)`` — the interface of nequip's LAMMPS ML-IAP data. The
        edges then all start at local nodes; after each interaction layer the ghost nodes' features
        are their owners' (and their gradients go back to the owners). Atomic energies and node
        features come back for the local nodes only.
        """
        import torch
        from nequip.data import AtomicDataDict

        types = np.asarray(types, dtype=np.int64)
        n = len(types)
        ei = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
        vec = np.asarray(edge_vectors, dtype=np.float64).reshape(-1, 3)
        if self._per_edge_cutoff is not None and len(vec):
            keep = np.linalg.norm(vec, axis=1) < self._per_edge_cutoff[types[ei[0]], types[ei[1]]]
            ei, vec = ei[:, keep], vec[keep]
        ev = torch.tensor(vec, dtype=torch.float64, device=self.device, requires_grad=True)
        data = {
            AtomicDataDict.EDGE_VECTORS_KEY: ev,
            AtomicDataDict.EDGE_INDEX_KEY: torch.as_tensor(ei, device=self.device),
            AtomicDataDict.ATOM_TYPE_KEY: torch.as_tensor(types, device=self.device),
        }
        net = self.energy_net
        if exchange is not None:
            net = self._exchanging_net()
            data[AtomicDataDict.LMP_MLIAP_DATA_KEY] = exchange
            data[AtomicDataDict.NUM_LOCAL_GHOST_NODES_KEY] = torch.tensor(
                [exchange.nlocal, exchange.ntotal - exchange.nlocal], dtype=torch.int64, device=self.device
            )
        with torch.enable_grad():
            out = net(data)
            ae = out[AtomicDataDict.PER_ATOM_ENERGY_KEY].view(-1)
            energy = ae[:energy_nodes].sum() if energy_nodes is not None else ae.sum()
            if len(vec) or exchange is not None:  # with an exchange, the backward exchanges run too
                (g,) = torch.autograd.grad(energy, ev, allow_unused=True)
                g = np.zeros((len(vec), 3)) if g is None else g.detach().cpu().numpy()
            else:
                g = np.zeros((0, 3))
        forces = np.zeros((n, 3))
        if len(g):
            for c in range(3):  # bincount beats np.add.at for scatter-adds
                forces[:, c] = np.bincount(ei[0], weights=g[:, c], minlength=n) - np.bincount(ei[1], weights=g[:, c], minlength=n)
        feats = out[AtomicDataDict.NODE_FEATURES_KEY].detach().cpu().numpy()
        self.descriptor_dim = feats.shape[1]
        full_g = g
        if self._per_edge_cutoff is not None and len(edge_vectors):
            full_g = np.zeros((len(keep), 3))
            full_g[keep] = g
        return GraphResult(
            atomic_energy=ae.detach().cpu().numpy().astype(np.float64),
            forces=forces,
            edge_gradient=full_g,
            node_features=feats,
        )

    def neighbor_graph(self, atoms) -> tuple[np.ndarray, np.ndarray]:
        """Directed edges within r_max (periodic images included) and their vectors."""
        import vesin

        pos = atoms.get_positions()
        pbc = atoms.get_pbc()
        if pbc.any() and not pbc.all():
            raise LtauError("frames must be periodic in all three directions or in none")
        if pbc.all():
            cell = atoms.cell.array
            if abs(np.linalg.det(cell)) < 1e-9:
                raise LtauError("periodic frame with a zero-volume cell")
        else:
            cell = np.zeros((3, 3))
        nl = vesin.NeighborList(cutoff=self.r_max, full_list=True)
        i, j, s = nl.compute(points=pos, box=cell, periodic=bool(pbc.all()), quantities="ijS")
        vec = pos[j] - pos[i] + s @ cell
        return np.vstack([i, j]).astype(np.int64), vec

    def evaluate(self, frames: Sequence, batch_size: int = 8, progress=None, pairs_within: float = 0.0) -> list[FrameResult]:
        """Energies, forces, stress and node features of ASE frames, ``batch_size`` frames per
        forward pass (frames are disjoint subgraphs of one graph). ``pairs_within`` (Å, at most
        r_max): also return each frame's neighbour pairs within it, taken from the forward's own
        graph (what LTAU's neighbourhood and contact terms need) instead of a second search."""
        if pairs_within > self.r_max:
            raise LtauError(f"neighbour pairs within {pairs_within:g} Å asked of a model whose graph reaches {self.r_max:g} Å")
        results: list[FrameResult] = []
        for start in range(0, len(frames), max(1, batch_size)):
            chunk = frames[start : start + batch_size]
            types, edges, vecs, frame_of_edge, offsets = [], [], [], [], [0]
            for f, atoms in enumerate(chunk):
                types.append(self.types_of(atoms.numbers, where=f"frame {start + f}"))
                ei, vec = self.neighbor_graph(atoms)
                edges.append(ei + offsets[-1])
                vecs.append(vec)
                frame_of_edge.append(np.full(ei.shape[1], f))
                offsets.append(offsets[-1] + len(atoms))
            res = self.evaluate_graph(np.concatenate(types), np.concatenate(edges, axis=1), np.concatenate(vecs))
            vec_all, fe = np.concatenate(vecs), np.concatenate(frame_of_edge)
            for f, atoms in enumerate(chunk):
                sl = slice(offsets[f], offsets[f + 1])
                pairs = None
                if pairs_within > 0:
                    r = np.linalg.norm(vecs[f], axis=1)
                    near = r < pairs_within  # as ASE's neighbor_list, the fallback
                    local = edges[f] - offsets[f]
                    pairs = (local[0][near], local[1][near], r[near])
                stress = None
                if atoms.get_pbc().all():
                    sel = fe == f
                    sigma = np.einsum("ea,eb->ab", vec_all[sel], res.edge_gradient[sel]) / atoms.get_volume()
                    sigma = 0.5 * (sigma + sigma.T)
                    stress = sigma[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
                results.append(
                    FrameResult(
                        energy=float(res.atomic_energy[sl].sum()),
                        atomic_energy=res.atomic_energy[sl],
                        forces=res.forces[sl],
                        stress=stress,
                        node_features=res.node_features[sl],
                        pairs=pairs,
                    )
                )
            if progress is not None:
                progress(min(len(frames), start + batch_size), len(frames))
        return results
