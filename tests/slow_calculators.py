"""Real ASE calculators with test-friendly behaviour, importable by ``module:Class`` specs."""

import os
import time
import uuid
from pathlib import Path

from ase.calculators.lj import LennardJones


class SlowLJ(LennardJones):
    """Lennard-Jones that takes ``delay`` seconds per evaluation (time to kill a relabel). With
    ``marker_dir``, each evaluation leaves a file there (tests count them); with ``start_dir``,
    the calculator says it is ready there (``ready-PID``) and waits for a ``go`` file (relabellers
    that start together)."""

    def __init__(self, delay: float = 0.5, marker_dir: str | None = None, start_dir: str | None = None, **kwargs):
        super().__init__(sigma=2.8, epsilon=0.05, rc=6.0, **kwargs)
        self.delay, self.marker_dir = delay, marker_dir
        if start_dir is not None:
            (Path(start_dir) / f"ready-{os.getpid()}").touch()
            deadline = time.time() + 60
            while not (Path(start_dir) / "go").exists() and time.time() < deadline:
                time.sleep(0.01)

    def calculate(self, *args, **kwargs):
        time.sleep(self.delay)
        super().calculate(*args, **kwargs)
        if self.marker_dir is not None:
            (Path(self.marker_dir) / uuid.uuid4().hex).touch()


class FailOnMg(LennardJones):
    """Refuses frames containing Mg, like a DFT code that does not converge on some frames."""

    def __init__(self, **kwargs):
        super().__init__(sigma=2.8, epsilon=0.05, rc=6.0, **kwargs)

    def calculate(self, atoms=None, *args, **kwargs):
        if 12 in atoms.numbers:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, *args, **kwargs)


class FlakyOnce(LennardJones):
    """Fails the first evaluation of each frame (marker files in ``marker_dir``, so a retry in
    another process succeeds), like a cluster job lost to a node failure."""

    def __init__(self, marker_dir: str, **kwargs):
        super().__init__(sigma=2.8, epsilon=0.05, rc=6.0, **kwargs)
        self.marker_dir = marker_dir

    def calculate(self, atoms=None, *args, **kwargs):
        import hashlib
        from pathlib import Path

        marker = Path(self.marker_dir) / hashlib.sha256(atoms.positions.tobytes()).hexdigest()[:16]
        if not marker.exists():
            marker.touch()
            raise RuntimeError("node lost")
        super().calculate(atoms, *args, **kwargs)
