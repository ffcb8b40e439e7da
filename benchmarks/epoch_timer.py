"""Lightning callback for the training benchmark: wall time of every training epoch.

Listed after ltau-md's error logger in the callbacks, so an epoch's time includes the logger's
work (its per-batch hook and, in ``epoch_end`` mode, its extra pass)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class EpochTimer(Callback):
    def __init__(self, out_file: str) -> None:
        super().__init__()
        self.out_file = Path(out_file)
        self.times: list[float] = []
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._t0)
        self.out_file.write_text(json.dumps(self.times))
