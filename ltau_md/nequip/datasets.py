"""Training-dataset wrappers that tag each frame with extra fields, and how to find a frame's file.

nequip builds the training loader after the callbacks' ``setup``; a callback can therefore wrap
the training dataset to add per-frame (graph) or per-atom (node) fields that then travel through
shuffling and batching. Wrappers stack (the error logger's frame key, the loss weights), and
:func:`resolve` walks through them — and through ``Subset`` / ``ConcatDataset`` — to the file-backed
dataset and the frame's index in that file.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from typing import Any

import torch


class AnnotatedFrames(torch.utils.data.Dataset):
    """``inner`` with ``annotate(frame_dict, index) -> dict of extra fields`` applied per frame."""

    def __init__(self, inner: Any, annotate: Callable[[dict, int], dict]) -> None:
        self.inner = inner
        self.annotate = annotate

    def __len__(self) -> int:
        return len(self.inner)

    def _apply(self, frame: dict, index: int) -> dict:
        out = dict(frame)
        out.update(self.annotate(frame, index))
        return out

    def __getitem__(self, index: int) -> dict:
        return self._apply(self.inner[index], int(index))

    def __getitems__(self, indices: list[int]) -> list[dict]:
        indices = [int(i) for i in indices]
        if hasattr(self.inner, "__getitems__"):
            frames = self.inner.__getitems__(indices)
        else:
            frames = [self.inner[i] for i in indices]
        return [self._apply(f, i) for f, i in zip(frames, indices)]


def resolve(dataset: Any, index: int) -> tuple[Any, int]:
    """The file-backed dataset holding frame ``index`` of ``dataset``, and the index in it."""
    while True:
        if isinstance(dataset, AnnotatedFrames):
            dataset = dataset.inner
        elif isinstance(dataset, torch.utils.data.Subset):
            index, dataset = int(dataset.indices[index]), dataset.dataset
        elif isinstance(dataset, torch.utils.data.ConcatDataset):
            k = bisect.bisect_right(dataset.cumulative_sizes, index)
            index -= dataset.cumulative_sizes[k - 1] if k else 0
            dataset = dataset.datasets[k]
        else:
            return dataset, index


def raw_frame(dataset: Any, index: int) -> dict:
    """Frame ``index``'s untransformed dict (no neighbour list: cheap) when the file-backed
    dataset offers it, else the transformed frame."""
    base, j = resolve(dataset, index)
    if hasattr(base, "_get_data_list"):
        return base._get_data_list([j])[0]
    return base[j]


def source_of(dataset: Any, index: int) -> tuple[str, int]:
    """``(file path, frame index in that file)`` of a training frame."""
    base, j = resolve(dataset, index)
    path = getattr(base, "file_path", None)
    # absolute against the training process's working directory (where a config's relative paths point)
    return (os.path.abspath(path) if path else type(base).__name__), j


def wrap_training_dataset(trainer, annotate: Callable[[dict, int], dict]) -> AnnotatedFrames:
    """Replace the datamodule's (single) training dataset by an annotated view of it."""
    dm = trainer.datamodule
    train = list(dm.train_dataset)
    if len(train) != 1:
        raise RuntimeError(f"expected one training dataset, found {len(train)}")
    wrapped = AnnotatedFrames(train[0], annotate)
    dm.train_dataset = [wrapped]
    return wrapped
