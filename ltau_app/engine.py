"""Where a campaign's tasks run: Parsl (https://parsl-project.org), on this machine or through Slurm.

``engine:`` in the loop YAML::

    engine:
      type: local              # local (default): Parsl workers on this machine
      workers: auto            # concurrent tasks; auto = this machine's cores
      retries: 2               # re-runs of a failed reference label (training and MD fail alike again)
      mpi: mpiexec             # how a walker with ranks > 1 is launched: mpiexec or srun

    engine:                    # a cluster: Parsl's SlurmProvider, one block = one allocation
      type: slurm
      workers: 8               # tasks per node at once
      mpi: srun
      slurm: {partition: cpu, account: myproject, walltime: "02:00:00", nodes_per_block: 1,
              max_blocks: 4, cores_per_node: 64, worker_init: "source ~/venvs/ltau/bin/activate",
              scheduler_options: "#SBATCH --mem=0", exclusive: true}

Tasks are Parsl ``python_app``\\ s in a ``HighThroughputExecutor``: a training member (its own
``nequip-train`` subprocess), a walker (``mpiexec -n P ltau-md run``), a reference label of one
frame. The tasks of a stage share the cores: each gets ``OMP_NUM_THREADS`` = cores / (tasks
running at once) (÷ ranks for a walker): two tasks sharing a core each with 2 torch threads ran
~10x slower than with 1. Every task's start and end are recorded for the campaign report and plot.
A task that fails raises its error in the campaign (an ``LtauError`` naming the stage and task).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltau_md.errors import LtauError

ENGINE_DEFAULTS: dict[str, Any] = {
    "type": "local",
    "workers": "auto",
    "retries": 2,
    "mpi": "mpiexec",
    "slurm": {"partition": "", "account": "", "walltime": "01:00:00", "nodes_per_block": 1, "max_blocks": 1,
              "cores_per_node": "auto", "worker_init": "", "scheduler_options": "", "exclusive": True},
}  # fmt: skip
ENGINE_TYPES = ("local", "slurm")
MPI_LAUNCHERS = ("mpiexec", "srun")


def cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slurm_cores_per_node(engine: dict[str, Any]) -> int | None:
    """The Slurm section's ``cores_per_node`` (None: ``auto``, or a local engine)."""
    if engine["type"] != "slurm" or engine["slurm"]["cores_per_node"] == "auto":
        return None
    return int(engine["slurm"]["cores_per_node"])


def workers_of(engine: dict[str, Any]) -> int:
    if engine["workers"] != "auto":
        return int(engine["workers"])
    return slurm_cores_per_node(engine) or cores()


def threads_per_task(engine: dict[str, Any], n_tasks: int | None = None) -> int:
    """Threads for each of ``n_tasks`` tasks running together (default: a full set of workers)."""
    per_node = slurm_cores_per_node(engine) or cores()
    at_once = workers_of(engine) if n_tasks is None else min(workers_of(engine), max(1, n_tasks))
    return max(1, per_node // max(1, at_once))


def parsl_config(engine: dict[str, Any], run_dir: str | os.PathLike):
    """The Parsl ``Config`` for an ``engine:`` section (validated by the loop's config check)."""
    try:
        import parsl  # noqa: F401
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider, SlurmProvider
    except ImportError:
        raise LtauError('the campaign engine needs Parsl: pip install "ltau-md[all]" (or parsl)') from None
    workers = workers_of(engine)
    if engine["type"] == "local":
        provider = LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1)
        executor = HighThroughputExecutor(label="local", max_workers_per_node=workers, cores_per_worker=1,
                                          address="127.0.0.1", provider=provider)  # fmt: skip
    else:
        from parsl.launchers import SrunLauncher

        s = engine["slurm"]
        provider = SlurmProvider(
            partition=s["partition"] or None,
            account=s["account"] or None,
            walltime=s["walltime"],
            nodes_per_block=int(s["nodes_per_block"]),
            # one block stays while the campaign runs: fit, calibrate and scoring run in this process
            # between the stages, and an idle allocation given back would queue again each iteration
            init_blocks=1,
            min_blocks=1,
            max_blocks=int(s["max_blocks"]),
            cores_per_node=slurm_cores_per_node(engine),
            worker_init=s["worker_init"],
            scheduler_options=s["scheduler_options"],
            exclusive=bool(s["exclusive"]),
            launcher=SrunLauncher(),
        )
        executor = HighThroughputExecutor(label="slurm", max_workers_per_node=workers, cores_per_worker=1, provider=provider)
    # no engine-level retries: a member or walker that failed fails again the same way; reference
    # labels are retried by the loop, which records what still fails
    return Config(executors=[executor], retries=0, run_dir=str(Path(run_dir).resolve()),
                  initialize_logging=False, strategy="simple" if engine["type"] == "slurm" else "none")  # fmt: skip


def _timed(fn: Callable, threads: int, args: tuple, kwargs: dict) -> tuple[Any, float, float]:
    """Run in the worker: ``fn`` with the task's thread count; returns (result, start, end)."""
    import os
    import sys
    import time

    os.environ["OMP_NUM_THREADS"] = str(threads)
    start = time.time()
    if "torch" in sys.modules:  # members and walkers use torch in their own subprocesses only
        sys.modules["torch"].set_num_threads(threads)
    out = fn(*args, **kwargs)
    return out, start, time.time()


def _stop_blocks(executor: Any) -> None:
    """Cancel an executor's blocks through its provider and mark it bad, so Parsl's clean-up skips
    its scale-in. That scale-in asks the interchange (over ZMQ, without a timeout) which blocks are
    idle, and waits forever when the interchange is gone: ``timeout``, ``scancel`` and Ctrl-C
    signal the whole process group, the interchange included."""
    if getattr(executor, "provider", None) is None or executor.bad_state_is_set:
        return
    job_ids = [j for j in executor._get_block_and_job_ids()[1] if j is not None]
    try:
        if job_ids:
            executor.provider.cancel(job_ids)
    except Exception as exc:  # the campaign is ending anyway; say what may be left running
        print(f"ltau-md: could not stop the Parsl worker blocks ({type(exc).__name__}: {exc}); check for leftover processes",
              file=sys.stderr)  # fmt: skip
    executor.set_bad_state_and_fail_all(RuntimeError("the Parsl interchange was stopped"))


@dataclass
class TaskRecord:
    """One task, for the report and the campaign plot (times in seconds since the epoch)."""

    stage: str
    name: str
    start: float = float("nan")
    end: float = float("nan")
    ok: bool = True


@dataclass
class Engine:
    """A running Parsl engine; :meth:`submit` returns a Parsl future of the task's result."""

    engine: dict[str, Any]
    run_dir: Path
    records: list[TaskRecord] = field(default_factory=list)
    # called with ``records`` whenever a task is submitted or ends (from Parsl's thread, under a
    # lock): the loop keeps tasks.json current, so a killed campaign's tasks are not lost
    journal: Callable[[list[TaskRecord]], None] | None = None
    _dfk: Any = None
    _app: Any = None
    _journal_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __enter__(self) -> Engine:
        config = parsl_config(self.engine, self.run_dir)  # one line, not a traceback, without Parsl
        import parsl
        from parsl.app.app import python_app

        # Parsl starts its interchange and worker pool by name: from this interpreter's environment
        # even when it was not activated
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self._dfk = parsl.load(config)
        self._app = python_app(_timed, data_flow_kernel=self._dfk)
        return self

    def __exit__(self, *exc: Any) -> None:
        import parsl

        try:
            if exc[0] is not None:  # interrupted or failed: stop the workers, no graceful scale-in
                for executor in self._dfk.executors.values():
                    try:
                        _stop_blocks(executor)
                    except Exception as err:  # the clean-up below must still run
                        print(f"ltau-md: stopping the Parsl workers: {type(err).__name__}: {err}", file=sys.stderr)
            self._dfk.cleanup()
        finally:
            parsl.clear()

    @property
    def workers(self) -> int:
        return workers_of(self.engine)

    @property
    def threads(self) -> int:
        return threads_per_task(self.engine)

    def threads_for(self, n_tasks: int) -> int:
        """Threads per task when a stage runs ``n_tasks`` tasks (fewer tasks than workers: more each)."""
        return threads_per_task(self.engine, n_tasks)

    def _write_journal(self) -> None:
        if self.journal is None:
            return
        with self._journal_lock:
            try:
                self.journal(self.records)
            except Exception as exc:  # a record of timings must never stop the campaign
                print(f"ltau-md: could not record the tasks ({type(exc).__name__}: {exc})", file=sys.stderr)

    def submit(self, stage: str, name: str, fn: Callable, *args: Any, threads: int | None = None, **kwargs: Any):
        rec = TaskRecord(stage, name)
        self.records.append(rec)
        fut = self._app(fn, self.threads if threads is None else max(1, threads), args, kwargs)
        fut.ltau_task = rec

        def done(f: Any) -> None:
            try:
                _, rec.start, rec.end = f.result()
            except Exception:
                rec.ok, rec.end = False, time.time()
            self._write_journal()

        fut.add_done_callback(done)
        self._write_journal()
        return fut

    @staticmethod
    def result(fut: Any) -> Any:
        """A task's own return value; a failure is an ``LtauError`` naming the task (the task's
        own LtauError as it is; engine failures such as a lost worker in one line)."""
        try:
            return fut.result()[0]
        except LtauError:
            raise
        except Exception as exc:
            rec = getattr(fut, "ltau_task", None)
            what = f"{rec.stage} task {rec.name}" if rec else "a task"
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise LtauError(f"{what} failed: {type(exc).__name__}: {text[:500]}") from None

    @classmethod
    def results(cls, futs: list[Any]) -> list[Any]:
        """The tasks' own return values, in order. A failure is raised as soon as a task fails, not
        after the tasks before it in the list end (the caller then stops the engine and the rest)."""
        concurrent.futures.wait(futs, return_when=concurrent.futures.FIRST_EXCEPTION)
        for f in futs:
            if f.done() and f.exception() is not None:
                cls.result(f)
        return [cls.result(f) for f in futs]

    def map(self, stage: str, fn: Callable, jobs: list[tuple], names: list[str] | None = None, threads: int | None = None) -> list[Any]:
        """``fn(*job)`` for every job, concurrently; their results in order (see :meth:`results`)."""
        futs = [self.submit(stage, (names or [str(i) for i in range(len(jobs))])[i], fn, *job, threads=threads) for i, job in enumerate(jobs)]
        return self.results(futs)


def check_engine_tools(engine: dict[str, Any]) -> None:
    """Before a campaign makes anything: the scheduler commands a ``slurm`` engine submits with
    (else the first training task fails deep in Parsl, after the data were sampled)."""
    import shutil

    if engine["type"] == "slurm":
        missing = [c for c in ("sbatch", "squeue", "scancel") if shutil.which(c) is None]
        if missing:
            raise LtauError(f"engine type slurm: {', '.join(missing)} not found on PATH; run the campaign where Slurm's "
                            "commands are (a login node), or use engine type local")  # fmt: skip


def mpi_command(engine: dict[str, Any], ranks: int, exe_dir: Path) -> list[str]:
    """The launcher prefix for a walker of ``ranks`` ranks ([] for one rank)."""
    if ranks <= 1:
        return []
    if engine["mpi"] == "srun":
        # --overlap: the worker pool already runs as a job step holding the allocation's CPUs
        return ["srun", "--overlap", "-n", str(ranks)]
    mpiexec = exe_dir / "mpiexec"
    return [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks)]
