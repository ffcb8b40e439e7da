"""Where the MPI launcher put this process, read from its environment before MPI starts (stdlib
only: the CLI asks for every command, and only ``run`` starts MPI)."""

from __future__ import annotations

import os


def launcher_rank() -> int:
    """This process's rank as the MPI launcher set it (0 outside mpiexec), before MPI starts."""
    for var in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def launcher_size() -> int:
    """How many processes the MPI launcher started (1 outside mpiexec), before MPI starts. Only the
    launchers' own variables: a batch job's SLURM_NTASKS is set for a single process too, while
    SLURM_STEP_NUM_TASKS is set by srun alone (the only size srun --mpi=pmix leaves: PMIx sets a
    rank but no size)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1
