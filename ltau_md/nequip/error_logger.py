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

Under Lightning DDP (``strategy: ddp``, ``devices: R``) every rank holds the whole atom table but
sees only its shard of each epoch; a ``DistributedSampler`` pads the epoch with repeated frames
when the training set does not divide by R. Each rank keeps its epoch's (atom column, sampler
position, error) in memory — no collective per batch, so ranks with different batch counts cannot
deadlock — and at epoch end every rank joins one gather (row counts, then the padded rows) that
brings all of it to rank 0, which alone opens and writes the log (a failure to open it there is
broadcast, so all ranks stop together). Every atom counts once per epoch: a frame seen twice keeps
its first occurrence in the sampler's order (local position × R + rank, the order
``DistributedSampler`` deals frames in), so the padded repeats are dropped deterministically; in
``train_step`` mode each frame is thus scored by the weights of the (synchronised) step that first
held it. Frames a ``drop_last`` drops stay NaN for that epoch, with the same warning as in a single
process. In ``epoch_end`` mode the extra pass is split across ranks (rank r scores frames r, r+R,
...) and gathered the same way. Single-process runs stream batch by batch into the writer as before.
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


def first_occurrences(columns: np.ndarray, order: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column once: the entry with the smallest ``order`` (a distributed sampler's padding
    repeats frames; their later occurrences are dropped). Returns ``(columns, errors)``."""
    columns = np.asarray(columns, dtype=np.int64)
    if len(columns) == 0:
        return columns, np.asarray(errors, dtype=np.float32)
    o = np.lexsort((np.asarray(order), columns))  # by column, then order
    c = columns[o]
    keep = o[np.r_[True, c[1:] != c[:-1]]]
    return columns[keep], np.asarray(errors, dtype=np.float32)[keep]


def _gather_to_rank_zero(records: np.ndarray, trainer) -> np.ndarray | None:
    """Concatenate every rank's ``(n_i, 3)`` float64 records on rank 0 (None elsewhere).

    Two collectives, called by every rank in the same order: an all-gather of the row counts,
    then a gather of the rows padded to the longest. Records are float64 so that integer columns
    and positions (exact below 2**53) and float32 errors travel in one tensor.
    """
    import torch.distributed as dist

    backend = str(dist.get_backend())
    device = torch.device("cpu") if ("gloo" in backend or "mpi" in backend) else trainer.strategy.root_device
    world, rank = dist.get_world_size(), dist.get_rank()
    n = torch.tensor([len(records)], dtype=torch.int64, device=device)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c.item()) for c in counts]
    longest = max(1, max(counts))
    local = torch.zeros((longest, 3), dtype=torch.float64, device=device)
    local[: len(records)] = torch.from_numpy(np.ascontiguousarray(records, dtype=np.float64)).to(device)
    parts = [torch.empty_like(local) for _ in range(world)] if rank == 0 else None
    dist.gather(local, parts, dst=0)
    if rank != 0:
        return None
    return np.concatenate([p[:k].cpu().numpy() for p, k in zip(parts, counts)])


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
        # under DDP: this rank's records of the epoch and how many frames it has seen
        self._world = 1
        self._rank = 0
        self._records: list[np.ndarray] = []
        self._seen = 0

    # -- set-up -----------------------------------------------------------------------------

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        self._world, self._rank = int(trainer.world_size), int(trainer.global_rank)
        self._dataset = wrap_training_dataset(trainer, _frame_key)
        self._table, self._starts = atom_table_of(self._dataset)

    def on_train_start(self, trainer, pl_module) -> None:
        # After a checkpoint restore (setup runs before it): a resumed run starts past epoch 0
        # and continues the log it wrote before; a fresh run refuses to overwrite one.
        resume = trainer.current_epoch > 0 or trainer.ckpt_path is not None
        metadata = {"mode": self.mode, "n_frames": len(self._dataset), "model": type(pl_module.model).__name__}
        if self._world == 1:
            self.writer = ErrorLogWriter(self.out_dir, self._table, dtype=self.dtype, resume=resume, metadata=metadata)
        else:
            # rank 0 alone writes; the others learn whether it could, so that they fail with it
            # rather than wait for it in the first gather
            failure = None
            if self._rank == 0:
                try:
                    self.writer = ErrorLogWriter(
                        self.out_dir, self._table, dtype=self.dtype, resume=resume,
                        metadata={**metadata, "world_size": self._world},
                    )
                except Exception as exc:
                    failure = exc
            message = trainer.strategy.broadcast(None if failure is None else str(failure), src=0)
            if failure is not None:
                raise failure
            if message is not None:
                raise RuntimeError(f"PerAtomForceErrorLogger: rank 0 could not open the error log: {message}")
        if self.mode == "train_step":
            self._hook = pl_module.register_forward_hook(self._capture)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _capture(self, module, args, output) -> None:
        # Under DDP Lightning runs training_step as the module's forward (through the DDP
        # wrapper), so the hook also sees that call's loss: only the model's output dict counts.
        if self._active and isinstance(output, dict) and AtomicDataDict.FORCE_KEY in output:
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

    def _keep(self, batch: dict, errors: np.ndarray, order: np.ndarray) -> None:
        """Under DDP: hold a batch's (column, order, error) rows until the epoch's gather;
        ``order`` is per frame."""
        counts = batch[AtomicDataDict.NUM_NODES_KEY].view(-1).cpu().numpy()
        rows = np.empty((len(errors), 3), dtype=np.float64)
        rows[:, 0] = self._columns(batch)
        rows[:, 1] = np.repeat(order, counts)
        rows[:, 2] = errors
        self._records.append(rows)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._logging_epoch = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        self._records, self._seen = [], 0
        if self._logging_epoch and self.mode == "train_step" and self.writer is not None:
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
        errors = self._errors(self._forces, batch)
        self._forces = None
        if self._world == 1:
            self.writer.add(self._columns(batch), errors)
            return
        # the sampler deals frame k of its list to rank k % R as that rank's (k // R)-th frame
        n_frames = batch[FRAME_KEY].numel()
        self._keep(batch, errors, (self._seen + np.arange(n_frames)) * self._world + self._rank)
        self._seen += n_frames

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._logging_epoch:
            return
        if self.mode == "epoch_end":
            if self.writer is not None:
                self.writer.begin_epoch(trainer.current_epoch)
            self._epoch_end_pass(pl_module)
        if self._world > 1:
            local = np.concatenate(self._records) if self._records else np.zeros((0, 3))
            self._records = []
            gathered = _gather_to_rank_zero(local, trainer)  # every rank, once per logged epoch
            if self._rank != 0:
                return
            columns, errors = first_occurrences(gathered[:, 0].astype(np.int64), gathered[:, 1], gathered[:, 2])
            if len(columns) < len(gathered):
                log.debug("ltau error log: epoch %d: %d repeated atom entries (sampler padding) dropped",
                          trainer.current_epoch, len(gathered) - len(columns))
            self.writer.add(columns, errors)
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
            # under DDP rank r scores frames r, r + R, ... (no collective inside: the ranks' batch
            # counts may differ); the frame index orders the (then unique) entries
            mine = list(range(self._rank, len(self._dataset), self._world))
            for start in range(0, len(mine), self.batch_size):
                frames = self._dataset.__getitems__(mine[start : start + self.batch_size])
                batch = AtomicDataDict.to_(AtomicDataDict.batched_from_list(frames), pl_module.device)
                with torch.enable_grad():
                    out = pl_module(batch)
                errors = self._errors(out[AtomicDataDict.FORCE_KEY].detach(), batch)
                if self._world == 1:
                    self.writer.add(self._columns(batch), errors)
                else:
                    self._keep(batch, errors, batch[FRAME_KEY].view(-1).cpu().numpy())
        finally:
            if was_training:
                pl_module.train()
            if swapped:
                ema.swap_parameters(pl_module.model)
