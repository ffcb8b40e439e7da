"""Write files so that readers see either the old content or the new, never half of it.

Everything users load (artifacts, error-log metadata, plots) goes through here: data is written to a
temporary name in the same directory, flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask once (there is no getter)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_with(path: str | os.PathLike, writer: Callable[[Any], None], text: bool = False) -> None:
    """Call ``writer(fh)`` on a temporary file next to ``path`` (binary, or text with
    ``text=True``), then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_with(path, lambda fh: fh.write(data))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    write_bytes(path, text.encode())


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` atomically; arrays must be plain (non-object) so they load with allow_pickle=False."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; it would need pickle to load")
    write_with(path, lambda fh: np.savez(fh, **arrays))


def replace_dir(tmp_dir: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a fully written directory ``tmp_dir`` to ``target``, replacing any previous one.

    A rename cannot replace a non-empty directory, so the old one is first renamed aside; a crash
    between the two renames leaves the old copy next to the target under a ``.old-*`` name.
    """
    tmp_dir, target = Path(tmp_dir), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp_dir, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def temp_dir_for(target: str | os.PathLike) -> Path:
    """A fresh empty directory next to ``target`` to build it in before :func:`replace_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700
    return tmp
