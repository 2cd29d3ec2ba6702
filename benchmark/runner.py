"""The run: every compatible (method, dataset, variant) pair and seed -> fit, predict, score, store.

A *unit* is (method, dataset, variant, seed): one fit, then one record per test split. A unit whose
records all exist is skipped (resume); a unit that raises (or diverges, or returns masks that break
the contract) leaves failed records with the error text and the grid goes on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import generators
from baselines import DatasetInfo, FitContext, config_hash, get_method, load_plugin, methods

from . import scoring
from .profiles import get_run_profile
from .store import ResultsStore, run_id


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
    return DatasetInfo(name=name, variant=variant, kind=generators.get_spec(name).kind, shape=train.shape,
                       max_objects=int(train.objects["n_objects"].max()))


def info_from_spec(name: str, variant: str) -> DatasetInfo:
    """Compatibility facts without touching the data: render one sample of the train split."""
    spec = generators.get_spec(name)
    s = generators.render_samples(name, [0], "train", variant)
    T, H, W, C = s["video"].shape[1:]
    return DatasetInfo(name=name, variant=variant, kind=spec.kind, shape=(T, H, W, C), max_objects=0)


def plan(method_names: Sequence[str] | None, datasets: Sequence[tuple[str, str | None]], profile: str,
         seeds: Sequence[int] | None = None) -> tuple[list[Unit], list[str]]:
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
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
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


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return device


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


def apply_caps(cfg, caps: dict, explicit: dict):
    """Lower the data-size hyper-parameters of a config to the profile's caps (not those set by --set)."""
    if cfg is None or not dataclasses.is_dataclass(cfg) or not caps:
        return cfg
    names = {f.name for f in dataclasses.fields(cfg)}
    lower = {k: v for k, v in caps.items() if k in names and k not in explicit and getattr(cfg, k) > v}
    return dataclasses.replace(cfg, **lower) if lower else cfg


def unit_splits(unit: Unit, profile: str) -> list[str]:
    """The test splits a unit is scored on (learned methods on a preview profile: the main ones)."""
    spec = generators.get_spec(unit.dataset)
    splits = spec.test_splits(profile, unit.variant)
    prof = get_run_profile(profile)
    if prof.learned_splits is not None and get_method(unit.method).learned:
        splits = [s for s in splits if s in prof.learned_splits]
    return splits


def unit_done(unit: Unit, opts: RunOptions, store: ResultsStore) -> bool:
    for split in unit_splits(unit, opts.profile):
        rec = store.get(run_id(unit.method, unit.dataset, unit.variant, split, unit.seed, opts.profile),
                        opts.profile)
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
        generators.generate_split(name, split, variant, opts.profile, opts.data_root, workers=opts.workers,
                                  force=True)
        log(f"  generated {name}/{variant}/{opts.profile}/{split} in {time.time() - t0:.1f}s")


def run_unit(unit: Unit, opts: RunOptions, log: Callable[[str], None] = print) -> list[dict]:
    """Fit once, score every test split, write one record per split; never raises."""
    for p in opts.plugins:  # in a worker process of --jobs, plugins are imported again
        load_plugin(p)
    store = ResultsStore(opts.results)
    prof = get_run_profile(opts.profile)
    splits = unit_splits(unit, opts.profile)
    records: list[dict] = []
    t_fit = 0.0
    cfg = None
    ctx = None
    t0 = time.time()
    try:
        import numpy as np
        import torch

        cls = get_method(unit.method)
        train = generators.load(unit.dataset, "train", unit.variant, opts.profile, opts.data_root)
        val = generators.load(unit.dataset, "val", unit.variant, opts.profile, opts.data_root)
        info = dataset_info(unit.dataset, unit.variant, train)
        cfg = apply_caps(cls.make_config(unit.dataset, unit.variant, opts.overrides.get(unit.method)),
                         prof.config_caps, opts.overrides.get(unit.method) or {})
        torch.manual_seed(unit.seed)
        np.random.seed(unit.seed % (2**32))
        # the config hash is part of the folder: a checkpoint never resumes a run with other settings
        ckpt = (opts.work_dir / opts.profile
                / f"{unit.method}__{unit.dataset}__{unit.variant}__s{unit.seed}__{config_hash(cfg)}")
        ctx = FitContext(device=opts.device, seed=unit.seed, profile=opts.profile, dataset=unit.dataset,
                         variant=unit.variant, checkpoint_dir=ckpt, log=log, step_scale=prof.step_scale,
                         max_steps=opts.max_steps if opts.max_steps is not None else prof.max_steps,
                         time_budget_s=opts.time_budget_s if opts.time_budget_s is not None else prof.fit_time_budget_s,
                         progress=opts.progress)
        model = cls(cfg, info)
        log(f"  fit {unit.label}")
        t0 = time.time()
        model.fit(train, val, ctx)
        t_fit = time.time() - t0
    except Exception as e:  # the fit failed: every split of the unit gets a failed record
        err = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=8)[-3000:])
        log(f"  FAILED fit {unit.label}: {type(e).__name__}: {e}")
        for rec in failed_records(unit, opts, err, phase="fit", cfg=cfg, train_seconds=time.time() - t0):
            store.write(rec)
            records.append(rec)
        return records
    for split in splits:
        rec = dict(_record_base(unit, opts, split, cfg), train_seconds=round(t_fit, 3),
                   fit_info=_jsonable_info(ctx.info))
        t0 = time.time()
        try:
            ds = generators.load(unit.dataset, split, unit.variant, opts.profile, opts.data_root)
            limit = None
            if get_method(unit.method).learned and prof.learned_eval_frames is not None:
                limit = max(1, prof.learned_eval_frames // ds.shape[0])
            log(f"  score {unit.method} on {unit.dataset}/{unit.variant}/{split}"
                + (f" (first {min(limit, len(ds))} of {len(ds)})" if limit and limit < len(ds) else ""))
            res = scoring.score_split(model, ds, opts.device, limit=limit, lengths=prof.lengths)
            rec.update(status="ok", error=None, metrics=res["metrics"], by_length=res.get("by_length", {}),
                       eval_seconds=round(time.time() - t0, 3), dataset_manifest_hash=ds.manifest_hash,
                       n_samples=res["n_samples"])
        except Exception as e:
            err = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=8)[-3000:])
            log(f"  FAILED scoring {unit.method} on {unit.dataset}/{unit.variant}/{split}: {type(e).__name__}: {e}")
            rec.update(status="failed", error=err, metrics={}, eval_seconds=round(time.time() - t0, 3), phase="eval")
        store.write(rec)
        records.append(rec)
    return records


def failed_records(unit: Unit, opts: RunOptions, err: str, phase: str, cfg=None,
                   train_seconds: float = 0.0) -> list[dict]:
    """One failed record per test split of the unit, with the error text and the phase it failed in."""
    return [dict(_record_base(unit, opts, split, cfg), status="failed", error=err, phase=phase, metrics={},
                 train_seconds=round(train_seconds, 3), eval_seconds=0.0)
            for split in unit_splits(unit, opts.profile)]


def _record_base(unit: Unit, opts: RunOptions, split: str, cfg) -> dict:
    return record_base(unit.method, unit.dataset, unit.variant, split, unit.seed, opts.profile, opts.device, cfg)


def record_base(method: str, dataset: str, variant: str, split: str, seed: int, profile: str, device: str,
                cfg=None) -> dict:
    """The fields every record carries besides its results (DESIGN.md, the run)."""
    return {"run_id": run_id(method, dataset, variant, split, seed, profile),
            "method": method, "dataset": dataset, "variant": variant, "split": split,
            "seed": seed, "profile": profile, "device": device, "packages": _packages(),
            "git_revision": _git_revision(), "created": _now(),
            "config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None,
            "config_hash": config_hash(cfg) if cfg is not None else None}


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


def _run_unit_worker(args):
    unit, opts = args
    import torch

    torch.set_num_threads(1)
    return unit, run_unit(unit, opts, log=lambda s: print(s, file=sys.stderr, flush=True))


def run_grid(units: Sequence[Unit], opts: RunOptions, jobs: int = 1,
             log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    """Run every unit not yet done; returns a summary {ran, skipped, ok, failed, failures}."""
    store = ResultsStore(opts.results)
    todo = []
    skipped = 0
    for u in units:
        if not opts.force and unit_done(u, opts, store):
            skipped += 1
        else:
            todo.append(u)
    log(f"{len(units)} runs planned, {skipped} already in the store, {len(todo)} to do "
        f"(profile {opts.profile}, device {opts.device})")
    ok = failed = 0
    failures: list[str] = []
    t_start = time.time()
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
                    store.write(rec)
                    failed += 1
                    failures.append(f"{rec['run_id']}: {err.splitlines()[0]}")
            todo = [u for u in todo if (u.dataset, u.variant) != (d, v)]

    def account(unit: Unit, recs: list[dict], i: int):
        nonlocal ok, failed
        for r in recs:
            if r["status"] == "ok":
                ok += 1
            else:
                failed += 1
                failures.append(f"{r['run_id']}: {r['error'].splitlines()[0] if r.get('error') else '?'}")
        elapsed = time.time() - t_start
        eta = elapsed / i * (len(todo) - i)
        log(f"[{i}/{len(todo)}] done {unit.label}  (elapsed {_fmt(elapsed)}, ETA {_fmt(eta)})")

    if jobs > 1 and len(todo) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_run_unit_worker, (u, opts)) for u in todo]
            for i, f in enumerate(as_completed(futs), 1):
                unit, recs = f.result()
                account(unit, recs, i)
    else:
        for i, u in enumerate(todo, 1):
            log(f"[{i}/{len(todo)}] {u.label}")
            account(u, run_unit(u, opts, log=log), i)
    return {"planned": len(units), "skipped": skipped, "ran": len(todo), "ok": ok, "failed": failed,
            "failures": failures, "seconds": round(time.time() - t_start, 1)}


def _fmt(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"
