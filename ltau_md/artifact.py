"""The LTAU artifact ``NAME.ltau/``: everything needed to turn latent features into uncertainty.

Layout (all three files are required; loading checks every part)::

    meta.json         format + version; species; descriptor_dim; n_train_atoms; model {path,
                      fingerprint}; atol, rtol, window, n_models (M), k; scale s per species;
                      fitted distributions per species (true "error"; predicted errors of plain
                      LTAU, "uncertainty", and of the calibrated predictor, "uncertainty_calibrated";
                      nearest "distance"); error_model per species (ltau_md.error_model);
                      contact: the close-contact rule (ltau_md.contact; absent before it);
                      index {per species: type, params, n_atoms}; sha256 and size of each file
    index.<El>.faiss  FAISS's own serialisation of the latent index of element El's training
                      atoms (one file per species: neighbours are searched within a species);
                      row j = the j-th training atom of that species in train.npz order
    train.npz         per training atom (loads with allow_pickle=False): p_mean, p_std, species,
                      source/frame/atom (+ sources), fref_norm, err_mean, err_quantiles (N × Q),
                      quantile_levels (Q)

The data files' checksums live in ``meta.json``, so a file from another artifact, a truncated
copy or a hand-edited array is caught with a one-line error naming the file. Saving writes the
whole directory under a temporary name and renames it into place.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltau_md import __version__, atomic_write
from ltau_md.contact import ContactRule
from ltau_md.cutoffs import FittedDistribution
from ltau_md.error_distribution import ErrorDistribution
from ltau_md.error_log import AtomTable
from ltau_md.error_model import ErrorModel, SpeciesErrorModel, neighbourhood_mean
from ltau_md.errors import ArtifactError, LtauError
from ltau_md.latent_index import INDEX_TYPES, LatentIndex, ProgressFn, SpeciesIndex
from ltau_md.pvalues import TrainingStatistics
from ltau_md.species import symbol, to_numbers

FORMAT = "ltau-md artifact"
FORMAT_VERSION = 1
META, TRAIN = "meta.json", "train.npz"
DEFAULT_K = 10

# name -> (dtype kinds accepted, number of dimensions)
TRAIN_ARRAYS: dict[str, tuple[str, int]] = {
    "p_mean": ("f", 1),
    "p_std": ("f", 1),
    "species": ("iu", 1),
    "source": ("iu", 1),
    "frame": ("iu", 1),
    "atom": ("iu", 1),
    "sources": ("U", 1),
    "fref_norm": ("f", 1),
    "err_mean": ("f", 1),
    "err_quantiles": ("f", 2),
    "quantile_levels": ("f", 1),
}
# fitted families per species: true errors, each predictor's predicted errors, nearest distances
DISTRIBUTION_KINDS = {"error", "uncertainty", "uncertainty_calibrated", "distance"}
PER_ATOM = ("p_mean", "p_std", "species", "source", "frame", "atom", "fref_norm", "err_mean", "err_quantiles")


def index_file(species: str) -> str:
    return f"index.{species}.faiss"


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


PREDICTORS = ("calibrated", "ltau")


@dataclass(frozen=True, eq=False)
class AtomUncertainty:
    """LTAU output for a set of atoms (one row each)."""

    p: np.ndarray  # chance the error is ≤ atol (calibrated: the error model's CDF, Maxwell unless a shape was fitted; ltau: neighbours' mean μ_M(p_i))
    p_std: np.ndarray  # mean of the neighbours' σ_M(p_i)
    error: np.ndarray  # predicted force error, eV/Å
    distance: np.ndarray  # (n, k) Euclidean latent distances to the neighbours
    neighbors: np.ndarray  # (n, k) training-atom ids
    scale: np.ndarray  # s applied to each atom (ltau: calibrated s; calibrated: 1 unless overridden)
    mixture: np.ndarray  # LTAU's neighbour mixture mean at s = 1 (u of the error model), eV/Å
    predictor: str  # "calibrated" or "ltau"
    neighbourhood: np.ndarray | None = None  # d̄: mean nearest distance over the atom and its neighbours
    contact: np.ndarray | None = None  # atoms in close contact (ltau_md.contact), where it was checked


class Artifact:
    """An LTAU artifact in memory; :meth:`load` validates, :meth:`save` writes atomically."""

    def __init__(self, meta: dict[str, Any], train: dict[str, np.ndarray], index: SpeciesIndex, path: Path | None = None):
        self.meta = meta
        self.train = train
        self.index = index
        self.path = path
        self._error_model: ErrorModel | None = None
        self._contact: tuple[dict, ContactRule] | None = None  # (meta's record, its rule): parsed once per record
        self._errors = ErrorDistribution(
            levels=train["quantile_levels"].astype(np.float64),
            quantiles=train["err_quantiles"],
            mean=train["err_mean"],
        )

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        stats: TrainingStatistics,
        descriptors: np.ndarray,
        *,
        model_path: str | None = None,
        model_fingerprint: str | None = None,
        k: int = DEFAULT_K,
        index_type: str = "auto",
        index_params: dict[str, Any] | None = None,
        window: dict[str, Any] | None = None,
        error_logs: list[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> Artifact:
        """Build from training statistics and the training atoms' descriptors (same order)."""
        atoms: AtomTable = stats.atoms
        descriptors = np.asarray(descriptors)
        if descriptors.ndim != 2 or len(descriptors) != len(atoms):
            raise LtauError(
                f"descriptors have shape {descriptors.shape}; expected ({len(atoms)}, d), one row per training atom"
            )
        species = sorted({int(z) for z in np.unique(atoms.species)})
        check_k(atoms.species, k)
        index = SpeciesIndex.build(descriptors, atoms.species, index_type, index_params, recall_k=k, progress=progress)
        train = {
            "p_mean": stats.p_mean.astype(np.float64),
            "p_std": stats.p_std.astype(np.float64),
            "species": atoms.species.astype(np.int16),
            "source": atoms.source.astype(np.int32),
            "frame": atoms.frame.astype(np.int64),
            "atom": atoms.atom.astype(np.int32),
            "sources": np.array(atoms.sources, dtype=str) if atoms.sources else np.zeros(0, dtype="<U1"),
            "fref_norm": atoms.fref_norm.astype(np.float32),
            "err_mean": stats.errors.mean.astype(np.float32),
            "err_quantiles": stats.errors.quantiles.astype(np.float32),
            "quantile_levels": stats.errors.levels.astype(np.float64),
        }
        symbols = [symbol(z) for z in species]
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ltau_md_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "species": symbols,
            "descriptor_dim": int(descriptors.shape[1]),
            "n_train_atoms": len(atoms),
            "model": {"path": model_path, "fingerprint": model_fingerprint},
            "atol": float(stats.atol),
            "rtol": float(stats.rtol),
            "window": {**(window or {"start": None, "stop": None}), "n_epochs": stats.n_epochs},
            "n_models": int(stats.n_models),
            "k": int(k),
            "scale": {s: 1.0 for s in symbols},
            "distributions": {s: {"error": None, "uncertainty": None, "uncertainty_calibrated": None} for s in symbols},
            "index": _index_meta(index, index_type),
            "n_quantiles": len(train["quantile_levels"]),
            "error_logs": list(error_logs or []),
            "files": {},
        }
        return cls(meta, train, index)

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        tmp = atomic_write.temp_dir_for(path)
        try:
            names = [TRAIN]
            for z, ix in self.index.indices.items():
                names.append(index_file(symbol(z)))
                ix.save(tmp / names[-1])
            atomic_write.save_npz(tmp / TRAIN, **self.train)
            self.meta["files"] = {
                name: {"sha256": sha256_of(tmp / name), "bytes": (tmp / name).stat().st_size} for name in names
            }
            self.meta["index"] = _index_meta(self.index, self.meta["index"].get("requested", "auto"))
            self._record_model_relative_to(path)
            atomic_write.write_json(tmp / META, self.meta)
            atomic_write.replace_dir(tmp, path)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = path
        return path

    def _record_model_relative_to(self, artifact_dir: Path) -> None:
        """Keep the model's path relative to the artifact too, so that a directory holding both
        (a loop run, a train + fit pair) can be moved or copied to another machine."""
        model = self.meta["model"].get("path")
        if model:
            self.meta["model"]["relative"] = os.path.relpath(Path(model).resolve(), Path(artifact_dir).resolve())

    def model_path(self) -> Path:
        """The model this artifact was fitted for: beside the artifact where it was when fitted
        (the recorded relative path), else at its recorded absolute path."""
        rec = self.meta["model"]
        tried = []
        if rec.get("relative") and self.path is not None:
            here = Path(self.path).resolve() / rec["relative"]  # relative to the real directory, as recorded
            if here.exists():
                return Path(os.path.normpath(here))
            tried.append(str(Path(os.path.normpath(here))))
        if rec.get("path"):
            if Path(rec["path"]).exists():
                return Path(rec["path"])
            tried.append(str(rec["path"]))
        where = f"not found at {' nor '.join(tried)}" if tried else "not recorded"
        raise ArtifactError(f"{self.path or 'artifact'}: its model is {where}; pass --model MODEL")

    def save_meta(self) -> None:
        """Rewrite only ``meta.json`` (calibration results) of an artifact loaded from disk."""
        if self.path is None:
            raise LtauError("this artifact has not been saved yet; call save(path) first")
        _validate_meta(self.meta, self.path / META)
        atomic_write.write_json(self.path / META, self.meta)

    @classmethod
    def load(cls, path: str | os.PathLike, verify_checksums: bool = True) -> Artifact:
        path = Path(path)
        if not path.is_dir():
            raise ArtifactError(f"{path}: no such artifact directory (expected {META}, {TRAIN}, index.*.faiss); run 'ltau-md fit'")
        meta_path = path / META
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{meta_path}: missing; not an ltau-md artifact (run 'ltau-md fit')") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{meta_path}: not valid JSON ({getattr(exc, 'msg', exc)}); re-run 'ltau-md fit'") from None
        _validate_meta(meta, meta_path)
        files = meta["files"]
        for name in [TRAIN] + [index_file(sp) for sp in meta["species"]]:
            fpath = path / name
            if not fpath.is_file():
                raise ArtifactError(f"{fpath}: missing; re-run 'ltau-md fit'")
            if verify_checksums:
                rec = files.get(name)
                if not isinstance(rec, dict) or "sha256" not in rec:
                    raise ArtifactError(f"{meta_path}: 'files' has no checksum for {name}; re-run 'ltau-md fit'")
                if fpath.stat().st_size != rec.get("bytes", -1) or sha256_of(fpath) != rec["sha256"]:
                    raise ArtifactError(
                        f"{fpath}: checksum differs from meta.json (file replaced, truncated or corrupted); "
                        "re-run 'ltau-md fit'"
                    )
        train = _load_train(path / TRAIN, meta)
        members = SpeciesIndex.members_of(train["species"])
        indices = {}
        for sp in meta["species"]:
            z = int(to_numbers([sp])[0])
            fpath = path / index_file(sp)
            rec = meta["index"]["species"][sp]
            ix = LatentIndex.load(fpath, rec["type"], rec.get("params"))
            n_sp = len(members.get(z, ()))
            if ix.ntotal != n_sp:
                raise ArtifactError(f"{fpath}: holds {ix.ntotal} atoms, but train.npz has {n_sp} {sp} atoms; re-run 'ltau-md fit'")
            if ix.dim != meta["descriptor_dim"]:
                raise ArtifactError(f"{fpath}: descriptor dimension {ix.dim}, meta.json says {meta['descriptor_dim']}; re-run 'ltau-md fit'")
            indices[z] = ix
        return cls(meta, train, SpeciesIndex(indices, members), path)

    # -- accessors --------------------------------------------------------------------------

    @property
    def species(self) -> list[str]:
        return list(self.meta["species"])

    @property
    def atol(self) -> float:
        return float(self.meta["atol"])

    @property
    def k(self) -> int:
        return int(self.meta["k"])

    @property
    def n_train_atoms(self) -> int:
        return int(self.meta["n_train_atoms"])

    @property
    def errors(self) -> ErrorDistribution:
        return self._errors

    @property
    def fingerprint(self) -> str:
        """sha256 of what decides its predictions: the data files' checksums, k, s and the
        fitted distributions (so a recalibrated artifact gets a new fingerprint), and the close-contact
        rule where it has one (an artifact from before the rule keeps its fingerprint)."""
        payload = {k: self.meta.get(k) for k in ("files", "k", "scale", "distributions", "atol", "rtol", "error_model")}
        if self.meta.get("contact") is not None:
            payload["contact"] = self.meta["contact"]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def scale(self, species: str) -> float:
        return float(self.meta["scale"][species])

    def distribution(self, species: str, kind: str) -> FittedDistribution | None:
        d = self.meta["distributions"].get(species, {}).get(kind)
        return None if d is None else FittedDistribution.from_dict(d)

    def set_calibration(
        self,
        scale: dict[str, float] | None = None,
        distributions: dict[str, dict[str, FittedDistribution | None]] | None = None,
        report: dict[str, Any] | None = None,
        error_model: ErrorModel | None = None,
    ) -> None:
        if error_model is not None:
            unknown = set(error_model.species) - set(self.species)
            if unknown:
                raise LtauError(f"species {sorted(unknown)} are not in this artifact ({', '.join(self.species)})")
            self.meta["error_model"] = error_model.to_dict()
            self._error_model = None
            self.meta.pop("ood", None)  # the distance term of earlier versions; the error model replaces it
        for sp, s in (scale or {}).items():
            if sp not in self.meta["scale"]:
                raise LtauError(f"species {sp!r} is not in this artifact ({', '.join(self.species)})")
            self.meta["scale"][sp] = float(s)
        for sp, fits in (distributions or {}).items():
            if sp not in self.meta["distributions"]:
                raise LtauError(f"species {sp!r} is not in this artifact ({', '.join(self.species)})")
            for kind, fit in fits.items():
                self.meta["distributions"][sp][kind] = None if fit is None else fit.to_dict()
        if report is not None:
            self.meta["calibration"] = report

    def check_model(self, path: str | None, fingerprint: str | None) -> None:
        """One-line error when the artifact was fitted for a different model."""
        mine = self.meta["model"].get("fingerprint")
        if mine and fingerprint and mine != fingerprint:
            raise ArtifactError(
                f"{self.path or 'artifact'}: fitted for model {self.meta['model'].get('path')} "
                f"(fingerprint {mine[:12]}), not {path} ({fingerprint[:12]}); re-run 'ltau-md fit' for this model"
            )

    def species_numbers(self, species: np.ndarray | list, where: str = "species") -> np.ndarray:
        numbers = to_numbers(species, where)
        known = {int(to_numbers([s])[0]) for s in self.species}
        unknown = set(np.unique(numbers).tolist()) - known
        if unknown:
            names = ", ".join(symbol(z) for z in sorted(unknown))
            raise ArtifactError(
                f"{where}: {names} not in the artifact's training species ({', '.join(self.species)}); "
                "this model has never seen it"
            )
        return numbers

    def scales_for(self, numbers: np.ndarray) -> np.ndarray:
        lut = {int(to_numbers([s])[0]): float(v) for s, v in self.meta["scale"].items()}
        out = np.empty(len(numbers), dtype=np.float64)
        for z in np.unique(numbers):
            out[numbers == z] = lut[int(z)]
        return out

    # -- the LTAU query (seed 002, Algorithm 2) ---------------------------------------------

    def query(
        self,
        descriptors: np.ndarray,
        species: np.ndarray | list,
        k: int | None = None,
        scale: float | None = None,
        predictor: str | None = None,
        pairs: tuple[np.ndarray, ...] | None = None,
    ) -> AtomUncertainty:
        """k nearest training atoms in latent space → p, predicted error (eV/Å), distances.

        ``predictor``: ``"calibrated"`` (default where ``ltau-md calibrate`` stored an error model)
        gives the error model's σ(u, d[, d̄]) (:mod:`ltau_md.error_model`) — u the neighbours'
        mixture, d the distance to the nearest, d̄ its mean over the atom's neighbourhood;
        ``"ltau"`` gives plain LTAU, s × the neighbours' mean error and their mean p. ``scale``
        overrides s for every atom (for ``calibrated``, whose s is 1, it multiplies σ). ``pairs``:
        directed neighbour pairs (i, j) or (i, j, r) among these atoms within :meth:`pair_cutoff`
        (:func:`ltau_md.error_model.neighbour_pairs`), needed when the error model uses d̄; with
        their distances r the artifact's contact rule (:mod:`ltau_md.contact`) is applied too.
        """
        numbers, dist, ids = self.search(descriptors, species, k)
        neighbourhood = contact_ratio = None
        nbr_cut = self.neighbourhood_cutoff(predictor)
        if nbr_cut > 0:
            if pairs is None:
                raise LtauError(
                    f"{self.path or 'artifact'}: its error model uses each atom's neighbourhood; pass the neighbour pairs within "
                    f"{nbr_cut:g} Å (error_model.neighbour_pairs) or choose predictor ltau"
                )
            i, j = pairs[0], pairs[1]
            if len(pairs) > 2:  # pairs out to a longer contact cutoff count for contact only
                within = np.asarray(pairs[2]) <= nbr_cut
                i, j = i[within], j[within]
            neighbourhood = neighbourhood_mean(dist[:, 0], i, j)
        rule = self.contact
        if rule is not None and rule.enabled and pairs is not None and len(pairs) > 2:
            contact_ratio = rule.ratio_from_pairs(pairs[0], pairs[1], pairs[2], numbers)
        return self.assemble(numbers, dist, ids, scale, predictor, neighbourhood, contact_ratio)

    def search(self, descriptors: np.ndarray, species: np.ndarray | list, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The search half of :meth:`query`: ``(atomic numbers, distances (n, k), ids (n, k))``."""
        k = self.k if k is None else int(k)
        numbers = self.species_numbers(species)
        desc = np.asarray(descriptors)
        if desc.ndim != 2 or len(desc) != len(numbers):
            raise LtauError(f"descriptors have shape {desc.shape}; expected ({len(numbers)}, {self.meta['descriptor_dim']})")
        dist, ids = self.index.search(desc, numbers, k)
        return numbers, dist, ids

    def neighbourhood_cutoff(self, predictor: str | None = None) -> float:
        """Å of the neighbourhood a query with ``predictor`` needs (0: none)."""
        if self.resolve_predictor(predictor) != "calibrated":
            return 0.0
        return self.error_model.neighbourhood_cutoff

    def pair_cutoff(self, predictor: str | None = None) -> float:
        """Å of the neighbour pairs (with distances) a query needs: d̄'s and the contact rule's (0: none)."""
        rule = self.contact
        return max(self.neighbourhood_cutoff(predictor), rule.cutoff if rule is not None else 0.0)

    @property
    def contact(self) -> ContactRule | None:
        """The close-contact rule ``ltau-md fit`` stored (None for artifacts from before it)."""
        rec = self.meta.get("contact")
        if rec is None:
            return None
        if self._contact is None or self._contact[0] is not rec:
            self._contact = (rec, ContactRule.from_dict(rec))
        return self._contact[1]

    def set_contact(self, rule: ContactRule | None) -> None:
        if rule is None:
            self.meta.pop("contact", None)
        else:
            self.meta["contact"] = rule.to_dict()

    def assemble(
        self,
        numbers: np.ndarray,
        dist: np.ndarray,
        ids: np.ndarray,
        scale: float | None = None,
        predictor: str | None = None,
        neighbourhood: np.ndarray | None = None,
        contact_ratio: np.ndarray | None = None,
    ) -> AtomUncertainty:
        """The prediction half of :meth:`query`, from its search (and d̄ where the model needs it:
        ``fix ltau`` averages d over ghost atoms of other ranks between the two halves).
        ``contact_ratio``: per atom, :meth:`ContactRule.ratio` (None: contact not checked)."""
        predictor = self.resolve_predictor(predictor)
        u = self._errors.mixture_mean(ids, 1.0)
        if predictor == "calibrated":
            s = np.full(len(numbers), float(scale) if scale is not None else 1.0)
            sigma = s * self.error_model.sigma(u, dist[:, 0], numbers, neighbourhood)
            error, p = self.error_model.predict(sigma, numbers, self.atol)
        else:
            s = np.full(len(numbers), float(scale)) if scale is not None else self.scales_for(numbers)
            error, p = s * u, self.train["p_mean"][ids].mean(axis=1)
        contact = None
        rule = self.contact
        if contact_ratio is not None and rule is not None:
            error, p, contact = rule.apply(error, p, contact_ratio)
        return AtomUncertainty(
            p=p,
            p_std=self.train["p_std"][ids].mean(axis=1),
            error=error,
            distance=dist,
            neighbors=ids,
            scale=s,
            mixture=u,
            predictor=predictor,
            neighbourhood=neighbourhood,
            contact=contact,
        )

    @property
    def error_model(self) -> ErrorModel:
        rec = self.meta.get("error_model")
        if not rec:
            raise ArtifactError(
                f"{self.path or 'artifact'}: no calibrated error model; run 'ltau-md calibrate {self.path or 'NAME.ltau'} "
                "--data VAL.xyz' or choose predictor ltau"
            )
        if self._error_model is None:
            self._error_model = ErrorModel.from_dict(rec)
        return self._error_model

    def resolve_predictor(self, predictor: str | None) -> str:
        """The predictor a query uses: the one asked for, else ``calibrated`` where the artifact has
        an error model, else ``ltau``."""
        if predictor is None:
            return "calibrated" if self.meta.get("error_model") else "ltau"
        if predictor not in PREDICTORS:
            raise LtauError(f"predictor {predictor!r}: choose one of {', '.join(PREDICTORS)}")
        if predictor == "calibrated":
            self.error_model  # noqa: B018 -- one-line error now when the artifact has none
        return predictor

    def uncertainty_kind(self, predictor: str | None) -> str:
        """The name under ``distributions`` of the fitted predicted-error family of a predictor."""
        return "uncertainty_calibrated" if self.resolve_predictor(predictor) == "calibrated" else "uncertainty"


def check_k(species: np.ndarray, k: int) -> None:
    """k neighbours must exist among the training atoms of every species."""
    zs, counts = np.unique(np.asarray(species), return_counts=True)
    if len(zs) and not 1 <= k <= counts.min():
        i = int(np.argmin(counts))
        raise LtauError(f"--k {k}: must be between 1 and the {counts[i]} {symbol(zs[i])} training atoms; give --k at most {counts[i]}")


# -- validation -------------------------------------------------------------------------------


def _index_meta(index: SpeciesIndex, requested: str) -> dict[str, Any]:
    return {
        "by": "species",
        "requested": requested,
        "species": {
            symbol(z): {"type": ix.kind, "params": ix.params, "n_atoms": ix.ntotal} for z, ix in index.indices.items()
        },
    }


def _fail(where: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{where}: {what}; re-run 'ltau-md fit'")


def _validate_meta(meta: Any, where: Path) -> None:
    if not isinstance(meta, dict):
        raise _fail(where, "top level must be a JSON object")
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{where}: 'format' is {meta.get('format')!r}, not {FORMAT!r}; not an ltau-md artifact")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: format_version {meta.get('format_version')!r} not supported (this ltau-md reads "
            f"{FORMAT_VERSION}); re-run 'ltau-md fit' with this version"
        )
    need = {
        "species": list,
        "descriptor_dim": int,
        "n_train_atoms": int,
        "model": dict,
        "atol": (int, float),
        "rtol": (int, float),
        "window": dict,
        "n_models": int,
        "k": int,
        "scale": dict,
        "distributions": dict,
        "index": dict,
        "files": dict,
    }
    for key, typ in need.items():
        if key not in meta:
            raise _fail(where, f"key {key!r} is missing")
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise _fail(where, f"key {key!r} has the wrong type ({type(meta[key]).__name__})")
    try:
        to_numbers(meta["species"], f"{where}: 'species'")
    except LtauError as exc:
        raise ArtifactError(str(exc)) from None
    if not meta["species"]:
        raise _fail(where, "'species' is empty")
    for key in ("descriptor_dim", "n_train_atoms", "n_models", "k"):
        if meta[key] < 1:
            raise _fail(where, f"'{key}' must be ≥ 1, got {meta[key]}")
    if meta["k"] > meta["n_train_atoms"]:
        raise _fail(where, f"'k'={meta['k']} exceeds n_train_atoms={meta['n_train_atoms']}")
    if not (math.isfinite(meta["atol"]) and meta["atol"] > 0):
        raise _fail(where, f"'atol' must be a positive number, got {meta['atol']}")
    if not (math.isfinite(meta["rtol"]) and meta["rtol"] >= 0):
        raise _fail(where, f"'rtol' must be ≥ 0, got {meta['rtol']}")
    for key in ("path", "fingerprint"):
        if key not in meta["model"]:
            raise _fail(where, f"'model' lacks {key!r}")
    species = set(meta["species"])
    if set(meta["scale"]) != species:
        raise _fail(where, f"'scale' species {sorted(meta['scale'])} differ from 'species' {sorted(species)}")
    for sp, s in meta["scale"].items():
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not (math.isfinite(s) and s > 0):
            raise _fail(where, f"'scale' for {sp} must be a positive number, got {s!r}")
    if set(meta["distributions"]) != species:
        raise _fail(where, f"'distributions' species {sorted(meta['distributions'])} differ from 'species'")
    for sp, fits in meta["distributions"].items():
        if not isinstance(fits, dict) or set(fits) - DISTRIBUTION_KINDS:
            raise _fail(where, f"'distributions' for {sp} must map {'/'.join(sorted(DISTRIBUTION_KINDS))} to a fit or null")
        for kind, fit in fits.items():
            if fit is not None:
                try:
                    FittedDistribution.from_dict(fit)
                except LtauError as exc:
                    raise ArtifactError(f"{where}: distributions.{sp}.{kind}: {exc}") from None
    em = meta.get("error_model")
    if em is not None:
        if not isinstance(em, dict) or not set(em) <= species:
            raise _fail(where, "'error_model' must map species of the artifact to a fitted form")
        for sp, rec in em.items():
            try:
                SpeciesErrorModel.from_dict(rec)
            except LtauError as exc:
                raise ArtifactError(f"{where}: error_model.{sp}: {exc}; re-run 'ltau-md calibrate'") from None
    if meta.get("contact") is not None:
        try:
            ContactRule.from_dict(meta["contact"])
        except LtauError as exc:
            raise ArtifactError(f"{where}: contact: {exc}; re-run 'ltau-md fit'") from None
    per_species = meta["index"].get("species")
    if not isinstance(per_species, dict) or set(per_species) != species:
        raise _fail(where, "'index' must describe one index per species in 'species'")
    for sp, rec in per_species.items():
        if not isinstance(rec, dict) or rec.get("type") not in INDEX_TYPES:
            raise _fail(where, f"index type for {sp} must be one of {INDEX_TYPES}")


def _load_train(path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            missing = [k for k in TRAIN_ARRAYS if k not in names]
            if missing:
                raise _fail(path, f"array {missing[0]!r} is missing")
            train = {k: z[k] for k in TRAIN_ARRAYS}
    except ArtifactError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _fail(path, "holds object arrays that would need pickle to load; refusing") from None
        raise _fail(path, f"unreadable ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"unreadable ({exc}); the file is corrupted") from None
    n = meta["n_train_atoms"]
    for name, (kinds, ndim) in TRAIN_ARRAYS.items():
        arr = train[name]
        if arr.dtype.kind not in kinds or arr.ndim != ndim:
            raise _fail(path, f"array {name!r} has dtype {arr.dtype} and {arr.ndim} dims, expected kind {kinds!r}, {ndim} dims")
    for name in PER_ATOM:
        if len(train[name]) != n:
            raise _fail(path, f"array {name!r} has {len(train[name])} rows, expected {n} (n_train_atoms in meta.json)")
    levels = train["quantile_levels"]
    if train["err_quantiles"].shape[1] != len(levels) or len(levels) < 2 or levels[0] != 0 or levels[-1] != 1:
        raise _fail(path, "err_quantiles / quantile_levels are inconsistent")
    p = train["p_mean"]
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise _fail(path, "p_mean has values outside [0, 1]")
    if not np.all(np.isfinite(train["err_mean"])):
        raise _fail(path, "err_mean has NaN or inf")
    known = set(to_numbers(meta["species"]).tolist())
    present = set(np.unique(train["species"]).tolist())
    if not present <= known:
        raise _fail(path, f"species {sorted(present - known)} are not listed in meta.json")
    return train
