"""Real ASE calculators with test-friendly behaviour, importable by ``module:Class`` specs."""

import time

from ase.calculators.lj import LennardJones


class SlowLJ(LennardJones):
    """Lennard-Jones that takes ``delay`` seconds per evaluation (time to kill a relabel)."""

    def __init__(self, delay: float = 0.5, **kwargs):
        super().__init__(sigma=2.8, epsilon=0.05, rc=6.0, **kwargs)
        self.delay = delay

    def calculate(self, *args, **kwargs):
        time.sleep(self.delay)
        super().calculate(*args, **kwargs)


class FailOnMg(LennardJones):
    """Refuses frames containing Mg, like a DFT code that does not converge on some frames."""

    def __init__(self, **kwargs):
        super().__init__(sigma=2.8, epsilon=0.05, rc=6.0, **kwargs)

    def calculate(self, atoms=None, *args, **kwargs):
        if 12 in atoms.numbers:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, *args, **kwargs)
