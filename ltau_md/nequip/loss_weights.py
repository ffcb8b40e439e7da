"""Per-atom loss weights in nequip training (seed 002 §4.2, App. E: "up-weight easy / hard").

Two pieces a nequip config names with ``_target_``:

* :class:`PerAtomLossWeights` — a callback that tags every training atom with its weight (node
  field ``ltau_loss_weight``), looked up by (training file, frame, atom) from a weights file
  written by :func:`ltau_md.reweighting.write_weights`; atoms it does not list get weight 1.
* :class:`WeightedForceMSE` — the force term of the loss, Σ w_i |ΔF_i|² / (3 N); validation
  frames carry no weights and get the plain MSE.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback
from nequip.data import AtomicDataDict, register_fields
from torchmetrics import Metric

from ltau_md.nequip.datasets import raw_frame, source_of, wrap_training_dataset
from ltau_md.reweighting import read_weights

WEIGHT_KEY = "ltau_loss_weight"
register_fields(node_fields=[WEIGHT_KEY])


class PerAtomLossWeights(Callback):
    """Attach ``weights_file``'s per-atom weights to the training frames."""

    def __init__(self, weights_file: str) -> None:
        super().__init__()
        self.weights_file = weights_file
        self.n_weighted = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        table = read_weights(self.weights_file)
        lookup: dict[tuple[str, int], dict[int, float]] = {}
        for src, frame, atom, w in zip(table["source_names"], table["frame"], table["atom"], table["weight"]):
            lookup.setdefault((src, int(frame)), {})[int(atom)] = float(w)
        dataset = trainer.datamodule.train_dataset[0]
        per_frame: list[torch.Tensor] = []
        for i in range(len(dataset)):
            src, j = source_of(dataset, i)
            n = len(raw_frame(dataset, i)[AtomicDataDict.ATOMIC_NUMBERS_KEY])
            weights = lookup.get((src, j), {})
            w = torch.ones(n, 1, dtype=torch.get_default_dtype())
            for atom, value in weights.items():
                w[atom, 0] = value
            self.n_weighted += len(weights)
            per_frame.append(w)
        wrap_training_dataset(trainer, lambda frame, index: {WEIGHT_KEY: per_frame[index]})


class WeightedForceMSE(Metric):
    """Σ_i w_i Σ_c (F_pred − F_ref)²_ic / (3 N) over the atoms seen (w = 1 where not given)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: dict, target: dict) -> None:
        diff = preds[AtomicDataDict.FORCE_KEY] - target[AtomicDataDict.FORCE_KEY]
        sq = diff.square()
        if WEIGHT_KEY in target:
            sq = sq * target[WEIGHT_KEY].to(sq.dtype).view(-1, 1)
        self.sum = self.sum + sq.sum().to(torch.float64)
        self.count = self.count + sq.numel()

    def compute(self) -> torch.Tensor:
        return self.sum / self.count.clamp(min=1)
