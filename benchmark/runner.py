"""The run: every compatible (method, dataset, variant) pair and seed -> fit, predict, score, store.

A *unit* is (method, dataset, variant, seed): one fit, then one record per test split. A unit whose
records all exist is skipped (resume); a unit that raises (or diverges, or returns masks that break
the contract) leaves failed records with the error text and the grid goes on.

Every unit runs in a process of its own (forked from a server that has torch and the packages
imported, so a start costs milliseconds, not an interpreter), in its own process group, under a
wall-clock limit (``--unit-timeout``, by default the profile's). A unit that exits, is killed by a
signal, segfaults or runs past its limit leaves failed records saying so, and the grid goes on. A
results store that refuses a write (a full disk) stops the grid with one clear line and the summary.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import json
import os
import pickle
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import generators
from baselines import DatasetInfo, FitContext, config_hash, get_method, load_plugin, methods

from . import scoring
from .profiles import RunProfile, get_run_profile
from .store import ResultsStore, path_inside, run_id


@dataclasses.dataclass(frozen=True)
class Unit:
    method: str
    dataset: str
    variant: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.method} on {self.dataset}/{self.variant} seed {self.seed}"


def parse_datasets(items: Sequence[str] | None) -> list[tuple[str, str | None]]:
    """``["tetrominoes", "multi_dsprites:binarized"]`` -> [(name, variant or None)], validated."""
    reg = generators.registry()
    if not items:
        return [(n, None) for n in sorted(reg)]
    out = []
    for it in items:
        name, _, var = it.partition(":")
        spec = generators.get_spec(name)
        if var:
            spec.variant(var)
        out.append((name, var or None))
    return out


def dataset_info(name: str, variant: str, train) -> DatasetInfo:
    # every generator stores objects/n_objects (core._check_batch enforces it)
    return DatasetInfo(
        name=name,
        variant=variant,
        kind=generators.get_spec(name).kind,
        shape=train.shape,
        max_objects=int(train.objects["n_objects"].max()),
    )


def info_from_spec(name: str, variant: str) -> DatasetInfo:
    """Compatibility facts without touching the data: render one sample of the train split."""
    spec = generators.get_spec(name)
    s = generators.render_samples(name, [0], "train", variant)
    T, H, W, C = s["video"].shape[1:]
    return DatasetInfo(name=name, variant=variant, kind=spec.kind, shape=(T, H, W, C), max_objects=0)


def plan(
    method_names: Sequence[str] | None,
    datasets: Sequence[tuple[str, str | None]],
    profile: str,
    seeds: Sequence[int] | None = None,
) -> tuple[list[Unit], list[str]]:
    """The grid of units, and a list of the (method, dataset) pairs left out as incompatible."""
    prof = get_run_profile(profile)
    reg = methods()
    names = list(method_names) if method_names else sorted(reg)
    classes = {n: get_method(n) for n in names}
    units, skipped = [], []
    for dname, var in datasets:
        spec = generators.get_spec(dname)
        variants = [var] if var else list(spec.variants)
        for v in variants:
            info = info_from_spec(dname, v)
            for m in names:
                cls = classes[m]
                if not cls.supports(info):
                    skipped.append(f"{m} x {dname}/{v} (method kinds {sorted(cls.kinds)})")
                    continue
                run_seeds = list(seeds) if seeds is not None else list(prof.seeds)
                if not cls.learned:
                    run_seeds = run_seeds[:1]  # deterministic: one seed says it all
                for s in run_seeds:
                    units.append(Unit(m, dname, v, int(s)))
    return units, skipped


def _git_revision() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) if rev else "unknown"
    except Exception:
        return "unknown"


def _packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in ("ocbench", "torch", "numpy", "scipy", "scikit-learn", "pymunk", "pandas"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


@dataclasses.dataclass
class RunOptions:
    profile: str = "quick"
    device: str = "cpu"
    results: Path = Path("results")
    data_root: str | None = None
    work_dir: Path = Path("runs")
    retry_failed: bool = False
    force: bool = False
    time_budget_s: float | None = None  # overrides the profile's fit budget
    max_steps: int | None = None  # overrides the profile's step cap
    overrides: dict = dataclasses.field(default_factory=dict)  # method hyper-parameters
    plugins: tuple[str, ...] = ()
    workers: int = 1  # dataset generation processes
    progress: bool = True
    # wall-clock seconds per unit (fit and scoring, in its own process); None: the profile's; 0: no limit
    unit_timeout_s: float | None = None
    replace_builtin: bool = False  # plugins may replace built-in methods (--replace-builtin), in workers too
    retries: int = 0  # a unit with a failed record runs again, up to this many more times (--retries)
    # what ``profile`` means for the run (seeds, budgets, caps), resolved once here and carried to every unit
    run_profile: RunProfile = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.run_profile = get_run_profile(self.profile)  # an unknown profile fails here, before any unit


def apply_caps(cfg, caps: dict, explicit: dict):
    """Lower the data-size hyper-parameters of a config to the profile's caps (not those set by --set)."""
    if cfg is None or not dataclasses.is_dataclass(cfg) or not caps:
        return cfg
    names = {f.name for f in dataclasses.fields(cfg)}
    lower = {k: v for k, v in caps.items() if k in names and k not in explicit and getattr(cfg, k) > v}
    return dataclasses.replace(cfg, **lower) if lower else cfg


def unit_splits(unit: Unit, profile: RunProfile | str) -> list[str]:
    """The test splits a unit is scored on (learned methods on a preview profile: the main ones).

    ``profile``: the run's resolved profile (``RunOptions.run_profile``); a name is resolved here.
    """
    prof = profile if isinstance(profile, RunProfile) else get_run_profile(profile)
    splits = generators.get_spec(unit.dataset).test_splits(prof.name, unit.variant)
    if prof.learned_splits is not None and get_method(unit.method).learned:
        splits = [s for s in splits if s in prof.learned_splits]
    return splits


def unit_done(unit: Unit, opts: RunOptions, store: ResultsStore) -> bool:
    for split in unit_splits(unit, opts.run_profile):
        rec = store.get(run_id(unit.method, unit.dataset, unit.variant, split, unit.seed, opts.profile), opts.profile)
        if rec is None or (opts.retry_failed and rec.get("status") != "ok"):
            return False
    return True


def ensure_data(name: str, variant: str, opts: RunOptions, log: Callable[[str], None]) -> None:
    """Make every split of (dataset, variant) that is missing, corrupt or stale (core.status says which)."""
    state = generators.status(name, variant, opts.profile, opts.data_root)
    for split, st in state.items():
        if st == "verified":
            continue
        if st != "missing":
            log(f"  {st} -- regenerating")
        t0 = time.time()
        generators.generate_split(name, split, variant, opts.profile, opts.data_root, workers=opts.workers, force=True)
        log(f"  generated {name}/{variant}/{opts.profile}/{split} in {time.time() - t0:.1f}s")


class StoreWriteError(RuntimeError):
    """The results store refused a record (disk full, quota, read-only): the grid stops writing."""


def _write(store: ResultsStore, rec: dict) -> None:
    try:
        store.write(rec)
    except OSError as e:  # the store's write is atomic: nothing partial is left behind
        raise StoreWriteError(
            f"the results store {store.root} cannot take record {rec['run_id']} ({type(e).__name__}: {e})"
        ) from e


def _no_events(kind: str, value) -> None:
    pass


def use_eval_slots(method, dataset: str, split: str, log: Callable[[str], None] = print) -> dict:
    """Set the method's slot count for scoring ``split``; return the record's fields saying which K it used.

    A split that declares a test-time K (``DatasetSpec.eval_slots``; Bouncing Balls ``test_678``: 9, as
    PROVIDE) is scored with it by a method that can change K (``variable_slots``); any other split, and any
    other method, with the trained K. ``num_slots_source`` is "split" or "trained" (None for a method
    without slots); ``split_eval_slots`` is what the split asked for, so a capped row says why.
    """
    declared = generators.get_spec(dataset).test_slots(split)
    # a registered class that does not derive from Method has no slot hooks: it is scored as it is
    trained = method.num_slots() if callable(getattr(method, "num_slots", None)) else None
    if trained is None:
        return {"num_slots": None, "num_slots_source": None, "split_eval_slots": declared}
    if getattr(method, "variable_slots", False):
        method.set_eval_slots(declared)  # None: back to the trained K after a split that changed it
        k = method.eval_slots()
        if declared is not None and k != declared:
            raise RuntimeError(f"{method.name}: set_eval_slots({declared}) left it with {k} slots")
        source = "split" if declared is not None else "trained"
    else:
        k, source = trained, "trained"
        if declared is not None and declared != trained:
            log(f"  {split} declares {declared} slots; {method.name} cannot change K at test time and keeps {trained}")
    return {"num_slots": int(k), "num_slots_source": source, "split_eval_slots": declared}


def run_unit(
    unit: Unit, opts: RunOptions, log: Callable[[str], None] = print, events: Callable[[str, object], None] = _no_events
) -> list[dict]:
    """Fit once, score every test split, write one record per split.

    Never raises but :class:`StoreWriteError` (the store cannot take a record). ``events(kind, value)``
    hears ("phase", "fit" | "eval") and ("record", rec) as they happen: the grid learns from them what a
    unit's process had done when it died.
    """
    for p in opts.plugins:  # in a worker process of --jobs, plugins are imported again
        load_plugin(p, replace_builtin=opts.replace_builtin)
    store = ResultsStore(opts.results)
    prof = opts.run_profile
    splits = unit_splits(unit, prof)
    records: list[dict] = []
    t_fit = 0.0
    cfg = None
    ctx = None
    t0 = time.time()
    events("phase", "fit")
    try:
        from baselines.trainer import seed_everything

        cls = get_method(unit.method)
        train = generators.load(unit.dataset, "train", unit.variant, opts.profile, opts.data_root)
        val = generators.load(unit.dataset, "val", unit.variant, opts.profile, opts.data_root)
        info = dataset_info(unit.dataset, unit.variant, train)
        cfg = apply_caps(
            cls.make_config(unit.dataset, unit.variant, opts.overrides.get(unit.method)),
            prof.config_caps,
            opts.overrides.get(unit.method) or {},
        )
        seed_everything(unit.seed)
        # the config hash is part of the folder: a checkpoint never resumes a run with other settings
        ckpt = path_inside(
            opts.work_dir,
            opts.profile,
            f"{unit.method}__{unit.dataset}__{unit.variant}__s{unit.seed}__{config_hash(cfg)}",
        )
        if opts.force and ckpt.exists():  # --force means from scratch, not a resume at the final step
            shutil.rmtree(ckpt)
            log(f"  --force: removed the checkpoints in {ckpt}")
        ctx = FitContext(
            device=opts.device,
            seed=unit.seed,
            profile=opts.profile,
            dataset=unit.dataset,
            variant=unit.variant,
            checkpoint_dir=ckpt,
            log=log,
            step_scale=prof.step_scale,
            max_steps=opts.max_steps if opts.max_steps is not None else prof.max_steps,
            time_budget_s=opts.time_budget_s if opts.time_budget_s is not None else prof.fit_time_budget_s,
            progress=opts.progress,
        )
        model = cls(cfg, info)
        log(f"  fit {unit.label}")
        t0 = time.time()
        model.fit(train, val, ctx)
        t_fit = time.time() - t0
    except Exception as e:  # the fit failed: every split of the unit gets a failed record
        err = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=8)[-3000:])
        log(f"  FAILED fit {unit.label}: {type(e).__name__}: {e}")
        for rec in failed_records(unit, opts, err, phase="fit", cfg=cfg, train_seconds=time.time() - t0):
            _write(store, rec)
            records.append(rec)
            events("record", rec)
        return records
    events("phase", "eval")
    for split in splits:
        rec = dict(
            _record_base(unit, opts, split, cfg), train_seconds=round(t_fit, 3), fit_info=_jsonable_info(ctx.info)
        )
        t0 = time.time()
        try:
            ds = generators.load(unit.dataset, split, unit.variant, opts.profile, opts.data_root)
            limit = None
            if get_method(unit.method).learned and prof.learned_eval_frames is not None:
                limit = max(1, prof.learned_eval_frames // ds.shape[0])
            rec.update(use_eval_slots(model, unit.dataset, split, log))
            log(
                f"  score {unit.method} on {unit.dataset}/{unit.variant}/{split}"
                + (f" (first {min(limit, len(ds))} of {len(ds)})" if limit and limit < len(ds) else "")
                + (f" with {rec['num_slots']} slots" if rec["num_slots_source"] == "split" else "")
            )
            res = scoring.score_split(model, ds, opts.device, limit=limit, lengths=prof.lengths)
            rec.update(
                status="ok",
                error=None,
                metrics=res["metrics"],
                by_length=res.get("by_length", {}),
                eval_seconds=round(time.time() - t0, 3),
                dataset_manifest_hash=ds.manifest_hash,
                n_samples=res["n_samples"],
            )
        except Exception as e:
            err = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=8)[-3000:])
            log(f"  FAILED scoring {unit.method} on {unit.dataset}/{unit.variant}/{split}: {type(e).__name__}: {e}")
            rec.update(status="failed", error=err, metrics={}, eval_seconds=round(time.time() - t0, 3), phase="eval")
        _write(store, rec)
        records.append(rec)
        events("record", rec)
    return records


def failed_records(
    unit: Unit, opts: RunOptions, err: str, phase: str, cfg=None, train_seconds: float = 0.0
) -> list[dict]:
    """One failed record per test split of the unit, with the error text and the phase it failed in."""
    return [
        dict(
            _record_base(unit, opts, split, cfg),
            status="failed",
            error=err,
            phase=phase,
            metrics={},
            train_seconds=round(train_seconds, 3),
            eval_seconds=0.0,
        )
        for split in unit_splits(unit, opts.run_profile)
    ]


def _record_base(unit: Unit, opts: RunOptions, split: str, cfg) -> dict:
    return record_base(unit.method, unit.dataset, unit.variant, split, unit.seed, opts.profile, opts.device, cfg)


def record_base(
    method: str,
    dataset: str,
    variant: str,
    split: str,
    seed: int,
    profile: str,
    device: str,
    cfg=None,
    origin: dict | None = None,
) -> dict:
    """The fields every record carries besides its results (DESIGN.md, the run).

    ``origin`` says where the method came from (built-in, entry point, plugin file + sha256, external
    predictions file + sha256); by default the registry's ``method_origin``.
    """
    from baselines.base import method_origin

    return {
        "run_id": run_id(method, dataset, variant, split, seed, profile),
        "method": method,
        "dataset": dataset,
        "variant": variant,
        "split": split,
        "seed": seed,
        "profile": profile,
        "device": device,
        "packages": _packages(),
        "git_revision": _git_revision(),
        "created": _now(),
        "config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None,
        "config_hash": config_hash(cfg) if cfg is not None else None,
        "origin": origin if origin is not None else method_origin(method),
    }


def _jsonable_info(info: dict) -> dict:
    """The method's fit info, with anything JSON cannot hold as its repr."""
    out = {}
    for k, v in (info or {}).items():
        try:
            json.dumps(v, default=float)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ one process per unit

# imported once by the fork server, so a unit's process starts with them in memory (each import is
# tried; a missing one only makes starts slower). Method modules are left to the registry's discovery.
_PRELOAD = [
    "numpy",
    "scipy.optimize",
    "scipy.ndimage",
    "torch",
    "generators",
    "generators._discover",
    "metrics",
    "baselines",
    "baselines.nn",
    "baselines.trainer",
    "benchmark.scoring",
    "benchmark.runner",
]
_TAIL_CHARS = 3000  # the end of a dead unit's output, kept in its failed records
_DRAIN_S = 5.0  # how long output may still come after a unit's process has ended


def _mp_context():
    """A fork server where the platform has one (a start is a fork of a warm process), else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def _registry_blobs(unit: Unit) -> list[bytes]:
    """The unit's dataset spec and method class, pickled where they can be (by reference to their module),
    so a unit's process knows what was registered at run time (a test, a notebook), not only what its
    imports and plugins register. What does not pickle is left to the process's own registry."""
    out = []
    for get in (lambda: generators.get_spec(unit.dataset), lambda: get_method(unit.method)):
        try:
            out.append(pickle.dumps(get()))
        except Exception:
            pass
    return out


def _restore_registry(blobs: Sequence[bytes]) -> None:
    """Register again what :func:`_registry_blobs` pickled: the dataset spec the grid ran with wins (a method
    class registers itself when its module is imported while unpickling). The blobs were made by the grid's
    own process for this one (a unit's process, a Ray or Slurm job), never read from a file."""
    for blob in blobs:
        try:
            obj = pickle.loads(blob)
        except Exception:
            continue
        if isinstance(obj, generators.DatasetSpec):
            generators.register_dataset(obj, replace=True)


def _unit_main(unit: Unit, opts: RunOptions, blobs: list[bytes], msgs, out, threads: int | None) -> None:
    """The body of a unit's own process: events go to the grid over ``msgs``, all output (fd 1 and 2,
    so C code and a segfault's stack too) over ``out``."""
    import faulthandler

    if hasattr(os, "setpgrp"):
        os.setpgrp()  # a group of its own: a timeout ends the unit and everything it started
    for fd in (1, 2):
        os.dup2(out.fileno(), fd)
    out.close()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    faulthandler.enable()
    if threads:
        import torch

        torch.set_num_threads(threads)
    _restore_registry(blobs)

    def send(kind: str, value) -> None:
        msgs.send((kind, value))

    try:
        run_unit(unit, opts, log=lambda s: print(s, file=sys.stderr, flush=True), events=send)
    except StoreWriteError as e:
        send("store_error", str(e))
    send("done", None)


def _kill_group(proc) -> None:
    """SIGKILL the unit's process group (the unit and all it started), or the process if it has none yet."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.exitcode is None:
        proc.kill()


class _UnitProcess:
    """A unit running in its own process, as the grid sees it: its events, its output, its clock."""

    def __init__(self, ctx, unit: Unit, opts: RunOptions, limit: float | None, threads: int | None):
        self.unit, self.limit = unit, limit
        self.msgs, msgs_w = ctx.Pipe(duplex=False)
        self.out, out_w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_unit_main,
            name=f"ocbench {unit.label}",
            args=(unit, opts, _registry_blobs(unit), msgs_w, out_w, threads),
        )
        self.proc.start()
        msgs_w.close()  # the child holds the only write ends: their closing is the end of its output
        out_w.close()
        self.deadline = time.monotonic() + limit if limit else None
        self.ended_at: float | None = None
        self.phase = "fit"
        self.records: list[dict] = []
        self.done = False
        self.store_error: str | None = None
        self.timed_out = False
        self.tail = ""
        self._decode = codecs.getincrementaldecoder("utf-8")("replace")

    def waitables(self) -> list:
        alive = [self.proc.sentinel] if self.ended_at is None else []
        return [c for c in (self.msgs, self.out) if c is not None] + alive

    def pump(self, ready) -> None:
        """Take what is ready: events, output (to the grid's stderr), the end of the process."""
        if self.msgs is not None and self.msgs in ready:
            try:
                while self.msgs.poll():
                    kind, value = self.msgs.recv()
                    if kind == "phase":
                        self.phase = value
                    elif kind == "record":
                        self.records.append(value)
                    elif kind == "store_error":
                        self.store_error = value
                    elif kind == "done":
                        self.done = True
            except (EOFError, OSError):
                self.msgs.close()
                self.msgs = None
        if self.out is not None and self.out in ready:
            data = os.read(self.out.fileno(), 1 << 16)
            if data:
                text = self._decode.decode(data)
                self.tail = (self.tail + text)[-4 * _TAIL_CHARS :]
                sys.stderr.write(text)
                sys.stderr.flush()
            else:
                self.out.close()
                self.out = None
        now = time.monotonic()
        if self.ended_at is None and self.proc.exitcode is not None:
            self.ended_at = now
            _kill_group(self.proc)  # nothing it started outlives it
        elif self.ended_at is None and self.deadline is not None and now >= self.deadline:
            self.timed_out = True
            _kill_group(self.proc)
        if self.ended_at is not None and now - self.ended_at > _DRAIN_S:  # a descendant that left the group
            for c in (self.msgs, self.out):
                if c is not None:
                    c.close()
            self.msgs = self.out = None

    @property
    def finished(self) -> bool:
        return self.ended_at is not None and self.msgs is None and self.out is None

    def reason(self) -> str:
        """Why the unit's process ended without finishing, in one line."""
        code = self.proc.exitcode
        if self.timed_out:
            why = f"timed out after {self.limit:g} s (the unit's wall-clock limit; change it with --unit-timeout)"
        elif code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = f"the unit's process was killed by {name}"
        else:
            why = f"the unit's process exited with code {code}"
        return f"{why} during {self.phase}"

    def last_output(self) -> str:
        """The end of the unit's output, without the crash report's list of extension modules."""
        lines = [ln for ln in self.tail.splitlines() if not ln.startswith("Extension modules:")]
        return "\n".join(lines)[-_TAIL_CHARS:].strip()

    def close(self) -> None:
        for c in (self.msgs, self.out):
            if c is not None:
                c.close()
        self.msgs = self.out = None
        self.proc.join(timeout=1)


@dataclasses.dataclass
class UnitOutcome:
    """What one unit's job reports back to the grid (from this machine, a Ray task or a Slurm array task)."""

    unit: Unit
    records: list[dict] = dataclasses.field(default_factory=list)
    store_error: str | None = None
    skipped: bool = False  # the job found the unit's records already stored (a resubmitted or requeued job)
    tries: int = 0
    error: str | None = None  # the job itself failed (set by a launcher): the grid records the splits it lacks


def _log_err(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def run_isolated(
    unit: Unit, opts: RunOptions, limit: float | None, threads: int | None = None, log: Callable[[str], None] = _log_err
) -> UnitOutcome:
    """One try of a unit in its own process under ``limit`` seconds, as the local grid runs it; a process that
    dies leaves failed records (written here) for the splits it did not record."""
    import multiprocessing.connection

    job = _UnitProcess(_mp_context(), unit, opts, limit, threads)
    try:
        while not job.finished:
            now = time.monotonic()
            wait = job.deadline - now if job.deadline is not None and job.ended_at is None else None
            wait = job.ended_at + _DRAIN_S - now if job.ended_at is not None else wait
            job.pump(multiprocessing.connection.wait(job.waitables(), timeout=max(0.0, wait) if wait else None))
    finally:
        _kill_group(job.proc)
        job.close()
    out = UnitOutcome(unit, list(job.records), store_error=job.store_error, tries=1)
    if not job.done and not job.store_error:
        why = job.reason()
        log(f"  FAILED {unit.label}: {why}")
        tail = job.last_output()
        err = why + (f"\nlast output of the unit:\n{tail}" if tail else "")
        have = {r["split"] for r in job.records}
        store = ResultsStore(opts.results)
        for rec in failed_records(unit, opts, err, phase=job.phase):
            if rec["split"] not in have:
                try:
                    _write(store, rec)
                except StoreWriteError as e:
                    out.store_error = str(e)
                    break
                out.records.append(rec)
    return out


def unit_job(
    unit: Unit,
    opts: RunOptions,
    limit: float | None,
    threads: int | None = None,
    blobs: Sequence[bytes] = (),
) -> UnitOutcome:
    """One unit as one idempotent job, the body of a Ray task or a Slurm array task.

    It skips itself when the unit's records are stored (a job requeued or resubmitted after it finished),
    runs the unit in a process of its own (the wall-clock limit, a crash recorded as a failed record), and
    runs it again while a record is failed, up to ``opts.retries`` more times: the last try's records stay.
    """
    for p in opts.plugins:  # a fresh worker knows only the built-in registry
        load_plugin(p, replace_builtin=opts.replace_builtin)
    _restore_registry(blobs)
    store = ResultsStore(opts.results)
    if not opts.force and unit_done(unit, opts, store):
        _log_err(f"  {unit.label}: already in the store, skipped")
        return UnitOutcome(unit, skipped=True)
    out = UnitOutcome(unit)
    for attempt in range(1, max(0, opts.retries) + 2):
        out = dataclasses.replace(run_isolated(unit, opts, limit, threads), tries=attempt)
        if out.store_error or (out.records and all(r["status"] == "ok" for r in out.records)):
            break
        if attempt <= opts.retries:
            _log_err(f"  retrying {unit.label} (try {attempt + 1} of {opts.retries + 1})")
    return out


def run_grid(
    units: Sequence[Unit],
    opts: RunOptions,
    jobs: int = 1,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    launcher=None,
) -> dict:
    """Run every unit not yet done, each in its own process, ``jobs`` at a time.

    ``launcher`` (``benchmark.launchers``; None: this machine) runs the units elsewhere instead, one job per
    unit (:func:`unit_job`), and hands back each :class:`UnitOutcome` as it ends; data is made here first.
    Returns a summary {planned, skipped, ran, ok, failed, failures, seconds, store_error, not_run}.
    """
    store = ResultsStore(opts.results)
    for p in store.sweep_temporary(opts.profile):
        log(f"removed {p}, left by a writer that died mid-write")
    prof = opts.run_profile
    limit = opts.unit_timeout_s if opts.unit_timeout_s is not None else prof.unit_timeout_s
    limit = limit if limit and limit > 0 else None
    todo = []
    skipped = 0
    for u in units:
        if not opts.force and unit_done(u, opts, store):
            skipped += 1
        else:
            todo.append(u)
    log(
        f"{len(units)} runs planned, {skipped} already in the store, {len(todo)} to do "
        f"(profile {opts.profile}, device {opts.device}, "
        f"{f'at most {limit:g} s per unit' if limit else 'no time limit per unit'})"
    )
    ok = failed = 0
    failures: list[str] = []
    store_error: str | None = None
    t_start = time.time()

    def stored(rec: dict) -> bool:
        nonlocal store_error, failed
        if store_error is None:
            try:
                _write(store, rec)
                return True
            except StoreWriteError as e:
                store_error = str(e)
        failed += 1
        failures.append(f"{rec['run_id']}: not stored (the results store refused it)")
        return False

    # data first, once per (dataset, variant), so parallel units never generate the same split; a
    # dataset that cannot be made fails its units with the reason, and the rest of the grid goes on
    for d, v in sorted({(u.dataset, u.variant) for u in todo}):
        try:
            ensure_data(d, v, opts, log)
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
            log(f"  FAILED data {d}/{v}: {err}")
            for u in [u for u in todo if (u.dataset, u.variant) == (d, v)]:
                for rec in failed_records(u, opts, err, phase="data"):
                    if stored(rec):
                        failed += 1
                        failures.append(f"{rec['run_id']}: {err.splitlines()[0]}")
            todo = [u for u in todo if (u.dataset, u.variant) != (d, v)]

    def account(job: _UnitProcess, i: int) -> None:
        nonlocal ok, failed, store_error
        unit = job.unit
        if job.store_error:
            store_error = store_error or job.store_error
        elif not job.done:  # it died: the splits it did not record get a failed record saying how
            why = job.reason()
            log(f"  FAILED {unit.label}: {why}")
            tail = job.last_output()
            err = why + (f"\nlast output of the unit:\n{tail}" if tail else "")
            have = {r["split"] for r in job.records}
            for rec in failed_records(unit, opts, err, phase=job.phase):
                if rec["split"] not in have and stored(rec):
                    job.records.append(rec)
        for r in job.records:
            if r["status"] == "ok":
                ok += 1
            else:
                failed += 1
                failures.append(f"{r['run_id']}: {r['error'].splitlines()[0] if r.get('error') else '?'}")
        if job.store_error:
            have = {r["split"] for r in job.records}
            for split in unit_splits(unit, opts.run_profile):
                if split not in have:
                    failed += 1
                    failures.append(
                        f"{run_id(unit.method, unit.dataset, unit.variant, split, unit.seed, opts.profile)}"
                        f": not stored (the results store refused it)"
                    )
        elapsed = time.time() - t_start
        eta = elapsed / i * (len(todo) - i)
        log(f"[{i}/{len(todo)}] done {unit.label}  (elapsed {_fmt(elapsed)}, ETA {_fmt(eta)})")

    import multiprocessing.connection

    if launcher is not None and todo:
        return _run_launched(launcher, units, todo, skipped, opts, limit, log, t_start, ok, failed, failures)
    ctx = _mp_context()
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    pending = collections.deque(todo)
    running: list[_UnitProcess] = []
    started = finished = 0
    tries: collections.Counter = collections.Counter()
    try:
        while running or (pending and store_error is None):
            while pending and store_error is None and len(running) < max(1, jobs):
                unit = pending.popleft()
                tries[unit] += 1
                started += tries[unit] == 1
                log(f"[{started}/{len(todo)}] {unit.label}" + (f" (try {tries[unit]})" if tries[unit] > 1 else ""))
                running.append(_UnitProcess(ctx, unit, opts, limit, threads))
            now = time.monotonic()
            waits = [j.deadline - now for j in running if j.deadline is not None and j.ended_at is None]
            waits += [j.ended_at + _DRAIN_S - now for j in running if j.ended_at is not None]
            ready = multiprocessing.connection.wait(
                [w for j in running for w in j.waitables()], timeout=max(0.0, min(waits)) if waits else None
            )
            for j in list(running):
                j.pump(ready)
                if j.finished:
                    running.remove(j)
                    j.close()
                    failed_try = not j.done or any(r["status"] != "ok" for r in j.records)
                    if failed_try and not j.store_error and tries[j.unit] <= opts.retries:
                        log(f"  retrying {j.unit.label} (try {tries[j.unit] + 1} of {opts.retries + 1})")
                        pending.appendleft(j.unit)  # its failed records stay until a try does better
                        continue
                    finished += 1
                    account(j, finished)
    finally:  # an interrupt (Ctrl-C reaches only the grid: units have their own groups) ends every unit
        for j in running:
            _kill_group(j.proc)
            j.close()
    not_run = len(pending)
    if store_error is not None:
        for u in pending:
            for split in unit_splits(u, opts.run_profile):
                failed += 1
                failures.append(
                    f"{run_id(u.method, u.dataset, u.variant, split, u.seed, opts.profile)}: not run "
                    f"(the results store refused a write)"
                )
        log(
            f"error: {store_error}; the grid stopped: the records before it are stored, {not_run} unit(s) not "
            f"run. Free space and run again (stored runs are skipped)."
        )
    return {
        "planned": len(units),
        "skipped": skipped,
        "ran": len(todo) - not_run,
        "ok": ok,
        "failed": failed,
        "failures": failures,
        "seconds": round(time.time() - t_start, 1),
        "store_error": store_error,
        "not_run": not_run,
    }


def _run_launched(launcher, units, todo, skipped, opts, limit, log, t_start, ok, failed, failures) -> dict:
    """The grid's accounting for units run by a launcher: records counted, a failed job's splits recorded."""
    store = ResultsStore(opts.results)
    store_error = None
    skipped_before = skipped
    for i, out in enumerate(launcher.run(todo, opts, limit, log), 1):
        unit = out.unit
        if out.store_error:
            store_error = store_error or out.store_error
        if out.skipped:
            skipped += 1
        elif out.error and not out.store_error:  # the job died (node lost, cancelled): its missing splits
            err = f"the {launcher.name} job of the unit failed: {out.error}"
            log(f"  FAILED {unit.label}: {err.splitlines()[0]}")
            have = {r["split"] for r in out.records}
            for rec in failed_records(unit, opts, err, phase="job"):
                if rec["split"] not in have and store_error is None:
                    try:
                        _write(store, rec)
                        out.records.append(rec)
                    except StoreWriteError as e:
                        store_error = str(e)
        for r in out.records:
            if r["status"] == "ok":
                ok += 1
            else:
                failed += 1
                failures.append(f"{r['run_id']}: {r['error'].splitlines()[0] if r.get('error') else '?'}")
        elapsed = time.time() - t_start
        state = "skipped" if out.skipped else f"{sum(r['status'] == 'ok' for r in out.records)} ok"
        tries = f", {out.tries} tries" if out.tries > 1 else ""
        log(f"[{i}/{len(todo)}] done {unit.label} ({state}{tries}; elapsed {_fmt(elapsed)})")
    if store_error is not None:
        log(f"error: {store_error}; the records before it are stored. Free space and run again.")
    return {
        "planned": len(units),
        "skipped": skipped,
        "ran": len(todo) - (skipped - skipped_before),
        "ok": ok,
        "failed": failed,
        "failures": failures,
        "seconds": round(time.time() - t_start, 1),
        "store_error": store_error,
        "not_run": 0,
    }


def _fmt(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"
