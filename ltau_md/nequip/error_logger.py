"""Lightning callback for ``nequip-train``: every training atom's force error at every epoch.

Name it in an ordinary nequip 0.19 config::

    trainer:
      callbacks:
        - _target_: ltau_md.nequip.PerAtomForceErrorLogger
          out_dir: ${hydra:runtime.output_dir}/ltau_errors

and the run writes an :mod:`ltau_md.error_log` directory, one row per epoch, streamed.

Two modes:

* ``train_step`` (default): ε_i = ‖F_pred − F_ref‖ from the training step's own forward pass — the
  per-sample loss trajectory LTAU is named after; each batch is scored by the weights that are
  about to take a step on it. No extra pass: the cost is a forward hook and a norm.
* ``epoch_end``: after each epoch, one more pass over the training set in fixed order with the
  weights a checkpoint of that epoch holds (EMA weights when the training module keeps them), so
  the logged errors equal errors recomputed from that checkpoint. Costs about a third of an epoch.

Atom ids survive shuffling, several training files and restarts: each training frame carries a
key (its position in the training dataset) through the loader, resolved once to (file, frame in
file); the atom index is the position inside the frame. On a restart (``++ckpt_path=...``) the
same ``out_dir`` is resumed and the epochs being re-run are replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from nequip.data import AtomicDataDict, register_fields

from ltau_md.error_log import AtomTable, ErrorLogWriter
from ltau_md.nequip.datasets import raw_frame, source_of, wrap_training_dataset

FRAME_KEY = "ltau_frame_key"
MODES = ("train_step", "epoch_end")
log = logging.getLogger(__name__)

# A per-frame integer must be a registered graph field to survive batching (nequip's registry is
# process-global; registering at import also covers DataLoader worker processes).
register_fields(graph_fields=[FRAME_KEY], long_fields=[FRAME_KEY])


def _frame_key(frame: dict, index: int) -> dict:
    return {FRAME_KEY: torch.tensor([[index]], dtype=torch.long)}


def atom_table_of(train_dataset: Any) -> tuple[AtomTable, np.ndarray]:
    """Atom table in training-dataset order and each frame's first column."""
    frames = []
    for i in range(len(train_dataset)):
        source, j = source_of(train_dataset, i)
        raw = raw_frame(train_dataset, i)
        numbers = raw[AtomicDataDict.ATOMIC_NUMBERS_KEY]
        forces = raw.get(AtomicDataDict.FORCE_KEY)
        if forces is None:
            raise ValueError(f"{source}: frame {j} has no reference forces; LTAU needs force labels")
        frames.append((source, j, np.asarray(numbers).reshape(-1), np.asarray(forces).reshape(-1, 3)))
    table = AtomTable.from_frames(frames)
    starts = np.zeros(len(frames) + 1, dtype=np.int64)
    np.cumsum([len(f[2]) for f in frames], out=starts[1:])
    return table, starts


class PerAtomForceErrorLogger(Callback):
    """Streams ‖F_pred − F_ref‖ of every training atom, every epoch, into an error-log directory.

    Args:
        out_dir: the error-log directory (conventionally ``${hydra:runtime.output_dir}/ltau_errors``).
        mode: ``train_step`` (no extra pass) or ``epoch_end`` (extra pass, checkpoint weights).
        dtype: ``float32`` or ``float16`` storage.
        every_n_epochs: log every n-th epoch only.
        batch_size: frames per forward in the ``epoch_end`` pass.
    """

    def __init__(
        self,
        out_dir: str,
        mode: str = "train_step",
        dtype: str = "float32",
        every_n_epochs: int = 1,
        batch_size: int = 8,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"PerAtomForceErrorLogger mode must be one of {MODES}, got {mode!r}")
        self.out_dir = Path(out_dir)
        self.mode = mode
        self.dtype = dtype
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.batch_size = int(batch_size)
        self.writer: ErrorLogWriter | None = None
        self._dataset = None
        self._starts: np.ndarray | None = None
        self._forces: torch.Tensor | None = None
        self._active = False
        self._logging_epoch = False
        self._hook = None
        self._table: AtomTable | None = None

    # -- set-up -----------------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.world_size > 1:
            raise RuntimeError(
                "PerAtomForceErrorLogger supports single-process training only (distributed samplers pad and shard epochs)"
            )
        self._dataset = wrap_training_dataset(trainer, _frame_key)
        self._table, self._starts = atom_table_of(self._dataset)

    def on_train_start(self, trainer, pl_module) -> None:
        # After a checkpoint restore (setup runs before it): a resumed run starts past epoch 0
        # and continues the log it wrote before; a fresh run refuses to overwrite one.
        resume = trainer.current_epoch > 0 or trainer.ckpt_path is not None
        self.writer = ErrorLogWriter(
            self.out_dir,
            self._table,
            dtype=self.dtype,
            resume=resume,
            metadata={"mode": self.mode, "n_frames": len(self._dataset), "model": type(pl_module.model).__name__},
        )
        if self.mode == "train_step":
            self._hook = pl_module.register_forward_hook(self._capture)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _capture(self, module, args, output) -> None:
        if self._active:
            self._forces = output[AtomicDataDict.FORCE_KEY].detach()

    # -- per batch / per epoch ---------------------------------------------------------------

    def _columns(self, batch: dict) -> np.ndarray:
        keys = batch[FRAME_KEY].view(-1).cpu().numpy()
        counts = batch[AtomicDataDict.NUM_NODES_KEY].view(-1).cpu().numpy()
        first = np.repeat(self._starts[keys], counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return first + within

    @staticmethod
    def _errors(pred: torch.Tensor, batch: dict) -> np.ndarray:
        ref = batch[AtomicDataDict.FORCE_KEY].to(pred.dtype)
        return torch.linalg.vector_norm(pred - ref, dim=-1).cpu().numpy()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._logging_epoch = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if self._logging_epoch and self.mode == "train_step":
            self.writer.begin_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._active = self._logging_epoch and self.mode == "train_step"
        self._forces = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._active:
            return
        self._active = False
        if self._forces is None:
            raise RuntimeError("PerAtomForceErrorLogger: the training step ran no forward pass through the module")
        self.writer.add(self._columns(batch), self._errors(self._forces, batch))
        self._forces = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._logging_epoch:
            return
        if self.mode == "epoch_end":
            self.writer.begin_epoch(trainer.current_epoch)
            self._epoch_end_pass(pl_module)
        missing = self.writer.end_epoch()
        if missing:  # e.g. limit_train_batches or drop_last: p-values then count fewer epochs
            log.warning("ltau error log: %d training atoms were not seen in epoch %d", missing, trainer.current_epoch)

    @torch.no_grad()
    def _epoch_end_pass(self, pl_module) -> None:
        ema = getattr(pl_module, "ema", None)
        swapped = ema is not None and getattr(ema, "is_holding_ema_weights", False)
        if swapped:
            ema.swap_parameters(pl_module.model)  # the weights a checkpoint of this epoch holds
        was_training = pl_module.training
        pl_module.eval()
        try:
            n = len(self._dataset)
            for start in range(0, n, self.batch_size):
                frames = self._dataset.__getitems__(list(range(start, min(n, start + self.batch_size))))
                batch = AtomicDataDict.to_(AtomicDataDict.batched_from_list(frames), pl_module.device)
                with torch.enable_grad():
                    out = pl_module(batch)
                self.writer.add(self._columns(batch), self._errors(out[AtomicDataDict.FORCE_KEY].detach(), batch))
        finally:
            if was_training:
                pl_module.train()
            if swapped:
                ema.swap_parameters(pl_module.model)
