"""The one place benchmark scripts write their figures: a JSON record, atomically, under a
directory that may not exist yet (benchmarks/results/ by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ltau_md import atomic_write


def save(path: str | os.PathLike, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write.write_json(path, record)
    print(f"wrote {path}")
