"""Where the grid's units run: here (``local``, ``runner.run_grid``'s own loop), on a Ray cluster, or as one
Slurm array job through submitit.

Every remote launcher runs the same job, :func:`benchmark.runner.unit_job`, once per unit: it skips itself
when the unit's records are stored, runs the unit in a process of its own under the unit's wall-clock limit,
writes each record atomically into the shared store, and tries again while a record is failed (``--retries``).
The grid makes the data before any job starts and builds the leaderboard once after all of them, from the
store, so a record is the same bytes whichever launcher wrote it (only times, hosts and git dirt differ).
The store, the data root, the checkpoints and plugin files must therefore be on a filesystem every worker
sees. ``ray`` and ``submitit`` are optional extras, imported only when their launcher runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .runner import RunOptions, Unit, UnitOutcome, _registry_blobs, unit_job

LAUNCHERS = ("local", "ray", "slurm")


def _need(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise RuntimeError(
            f"--launcher {extra} needs the '{module}' package: pip install 'ocbench[{extra}]' ({e})"
        ) from None


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e)[-8:])[-3000:]


@dataclasses.dataclass
class RayLauncher:
    """One Ray task per unit, asking for the unit's CPUs and GPUs; progress is reported by this driver.

    ``address``: a running cluster (``ray://host:10001``, ``host:6379``, ``auto``); None starts a local one
    for the run (``num_cpus`` CPUs, default all) and stops it after. ``retries`` also lets Ray re-run a task
    whose worker or node died.
    """

    address: str | None = None
    cpus_per_unit: float = 1.0
    gpus_per_unit: float = 0.0
    num_cpus: int | None = None
    name: str = "ray"

    def run(
        self, units: Sequence[Unit], opts: RunOptions, limit: float | None, log: Callable[[str], None]
    ) -> Iterator[UnitOutcome]:
        ray = _need("ray", "ray")
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address, log_to_driver=True)
            else:  # "local": a new cluster of its own, never one that happens to run on this machine
                # a benchmark run sends nothing anywhere: Ray's usage statistics stay off unless the user opts in
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True)
        try:
            have = ray.cluster_resources()
            for res, want in (("CPU", self.cpus_per_unit), ("GPU", self.gpus_per_unit)):
                if want and have.get(res, 0) < want:
                    log(
                        f"warning: each unit asks for {want:g} {res}(s) but the Ray cluster has {have.get(res, 0):g}: "
                        f"its tasks wait until a node that has them joins (change --{res.lower()}s-per-unit)"
                    )
            task = ray.remote(unit_job)
            ask = {"num_cpus": self.cpus_per_unit, "num_gpus": self.gpus_per_unit, "max_retries": max(0, opts.retries)}
            threads = max(1, int(self.cpus_per_unit)) if self.cpus_per_unit else None
            refs = {}
            for u in units:
                ref = task.options(name=f"ocbench {u.label}", **ask).remote(u, opts, limit, threads, _registry_blobs(u))
                refs[ref] = u
            log(f"{len(refs)} Ray tasks submitted ({self.cpus_per_unit:g} CPU, {self.gpus_per_unit:g} GPU each)")
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    unit = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except Exception as e:  # the task itself failed (its worker died past the retries)
                        yield UnitOutcome(unit, error=_error_text(e))
        finally:
            if started_here:
                ray.shutdown()


@dataclasses.dataclass
class SlurmLauncher:
    """The grid as one Slurm array job through submitit: one array task per unit.

    ``time_min`` is each task's Slurm time limit; ``array_parallelism`` how many tasks run at once (the
    ``%`` of ``--array``). A task that Slurm preempts or times out is requeued (up to ``max_requeue``
    times) and resumes from the unit's checkpoints. ``cluster="local"`` runs the same jobs with submitit's
    local executor (tests, a machine without Slurm); ``folder`` holds the job files and logs.
    """

    folder: Path = Path("runs/slurm")
    partition: str | None = None
    time_min: int = 60
    gpus_per_unit: int = 0
    cpus_per_unit: int = 1
    array_parallelism: int = 32
    max_requeue: int = 3
    setup: tuple[str, ...] = ()  # shell lines run before each task (module load, source venv/bin/activate)
    cluster: str = "slurm"
    poll_s: float = 2.0
    name: str = "slurm"

    def parameters(self) -> dict:
        """The executor's parameters (submitit's generic names, ``slurm_`` ones for Slurm only)."""
        p = {
            "name": "ocbench",
            "timeout_min": int(self.time_min),
            "gpus_per_node": int(self.gpus_per_unit),
            "cpus_per_task": int(self.cpus_per_unit),
            "slurm_array_parallelism": int(self.array_parallelism),
        }
        if self.partition:
            p["slurm_partition"] = self.partition
        if self.setup:
            p["slurm_setup"] = list(self.setup)
        return p

    def executor(self):
        submitit = _need("submitit", "slurm")
        ex = submitit.AutoExecutor(
            folder=self.folder / "%j", cluster=self.cluster, slurm_max_num_timeout=self.max_requeue
        )
        ex.update_parameters(**self.parameters())
        return ex

    def sbatch_script(self, n_units: int) -> str:
        """The sbatch file submitit submits for the grid's array of ``n_units`` tasks, written here without a
        cluster by submitit's own Slurm executor (the check for ``srun`` aside)."""
        submitit = _need("submitit", "slurm")

        class Offline(submitit.SlurmExecutor):
            @classmethod
            def affinity(cls) -> int:
                return 2

        ex = Offline(self.folder / "%j", max_num_timeout=self.max_requeue)
        # AutoExecutor hands the slurm_ names to its Slurm executor without the prefix
        ex.update_parameters(
            **ex._convert_parameters({k.removeprefix("slurm_"): v for k, v in self.parameters().items()})
        )
        ex.parameters["map_count"] = int(n_units)  # what submitit sets for an array (map_array)
        return ex._make_submission_file_text(ex._submitit_command_str, "")

    def run(
        self, units: Sequence[Unit], opts: RunOptions, limit: float | None, log: Callable[[str], None]
    ) -> Iterator[UnitOutcome]:
        ex = self.executor()
        n = len(units)
        jobs = ex.map_array(
            _SlurmUnit(),
            list(units),
            [opts] * n,
            [limit] * n,
            [self.cpus_per_unit or None] * n,
            [_registry_blobs(u) for u in units],
        )
        ids = sorted({str(j.job_id).split("_")[0] for j in jobs})
        log(f"{n} units submitted as {'one array job' if len(ids) == 1 else 'jobs'} {', '.join(ids)} ({self.cluster})")
        pending = dict(zip(jobs, units))
        while pending:
            for job in [j for j in pending if j.done()]:
                unit = pending.pop(job)
                try:
                    yield job.result()
                except Exception as e:  # the task itself failed (cancelled, node failure, past its requeues)
                    yield UnitOutcome(unit, error=_error_text(e))
            if pending:
                time.sleep(self.poll_s)


class _SlurmUnit:
    """The array task's callable: :func:`unit_job`, requeued (``checkpoint``) when Slurm preempts or times it
    out; the requeued job starts the unit again, which resumes from its trainer checkpoints."""

    def __call__(self, *args):
        return unit_job(*args)

    def checkpoint(self, *args):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args)


def make_launcher(name: str, **kw):
    """None for ``local`` (the grid's own loop), else the launcher with the options that apply to it."""
    if name == "local":
        return None
    if name == "ray":
        keys = ("address", "cpus_per_unit", "gpus_per_unit", "num_cpus")
        return RayLauncher(**{k: v for k, v in kw.items() if k in keys and v is not None})
    if name == "slurm":
        keys = {f.name for f in dataclasses.fields(SlurmLauncher)} - {"name"}
        return SlurmLauncher(**{k: v for k, v in kw.items() if k in keys and v is not None})
    raise ValueError(f"unknown launcher {name!r}; valid: {', '.join(LAUNCHERS)}")
