"""An ASE calculator: NequIP energy, forces, stress and LTAU per-atom uncertainty from one forward.

    calc = LtauCalculator("model_dir", "model.ltau")
    atoms.calc = calc
    atoms.get_forces(); calc.results["ltau_error"]   # eV/Å per atom; also "ltau_p"
"""

from __future__ import annotations

import os

from ase.calculators.calculator import Calculator, all_changes

from ltau_md.artifact import Artifact
from ltau_md.nequip.model import NequIPModel
from ltau_md.nequip.predict import predict


class LtauCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "ltau_error", "ltau_p", "ltau_p_std", "ltau_contact"]

    def __init__(
        self,
        model: str | os.PathLike | NequIPModel,
        artifact: str | os.PathLike | Artifact,
        k: int | None = None,
        dtype: str = "float32",
        predictor: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model if isinstance(model, NequIPModel) else NequIPModel.load(model, dtype=dtype)
        self.artifact = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
        self.artifact.check_model(str(self.model.path), self.model.fingerprint)
        self.k = k
        self.predictor = self.artifact.resolve_predictor(predictor)  # "calibrated" where calibrated, else "ltau"

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        (pred,) = predict(self.model, self.artifact, [self.atoms], k=self.k, batch_size=1, predictor=self.predictor)
        r = pred.model
        self.results = {
            "energy": r.energy,
            "free_energy": r.energy,
            "energies": r.atomic_energy,
            "forces": r.forces,
            "ltau_error": pred.error,
            "ltau_p": pred.p,
            "ltau_p_std": pred.p_std,
        }
        if pred.contact is not None:  # the artifact's close-contact rule was checked
            self.results["ltau_contact"] = pred.contact
        if r.stress is not None:
            self.results["stress"] = r.stress

    def get_uncertainty(self, atoms=None):
        """Per-atom predicted force error (eV/Å)."""
        return self.get_property("ltau_error", atoms)
