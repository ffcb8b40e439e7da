"""ltau-md's science core: LTAU per-atom uncertainty for machine-learned interatomic potentials.

Error logs, p-values, the latent index, the artifact, statistical cutoffs and a run's cutoffs,
calibration, the candidate queue and relabelling need only numpy, scipy, faiss, matplotlib, ase
and yaml. The layers above it live in their own packages: ``ltau_md.nequip`` (the NequIP adapter:
torch, nequip), ``lammps_plugin`` (LAMMPS, MPI) and ``ltau_app`` (the CLI and the loop); none of
them is imported from here (tests/test_layering.py).
"""

__version__ = "0.1.0"

from ltau_md.errors import LtauError

__all__ = ["LtauError", "__version__"]
