"""``python -m benchmark``: datasets, generate, show, methods, run, results, score, export, leaderboard."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import generators
from generators.core import PROFILES

from .store import ResultsStore, default_root, path_inside, safe_name


def _add_data_root(p):
    p.add_argument(
        "--data-root",
        default=None,
        help=f"dataset folder (default: ${generators.core.ENV_ROOT} or ~/.cache/ocbench/datasets)",
    )


def _add_results(p):
    p.add_argument("--results", default=None, help="results store folder (default: $OCBENCH_RESULTS or ./results)")


def _progress_bar(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="sample",
        leave=True,
        file=sys.stderr,
        disable=not sys.stderr.isatty() and os.environ.get("OCBENCH_PROGRESS") != "1",
    )


# ------------------------------------------------------------------------------ datasets


def cmd_datasets(a) -> int:
    reg = generators.registry()
    rows = []
    for name, spec in sorted(reg.items()):
        for v in spec.variants:
            sizes = {p: sum(spec.sizes[p][s] for s in spec.split_names(p, v)) for p in PROFILES}
            st = generators.status(name, v, a.profile, a.data_root)
            state = (
                "verified"
                if all(x == "verified" for x in st.values())
                else (
                    "missing"
                    if all(x == "missing" for x in st.values())
                    else ", ".join(f"{k}: {x.split(':')[0]}" for k, x in st.items() if x != "verified")
                )
            )
            rows.append(
                (
                    name,
                    v,
                    spec.kind,
                    " / ".join(f"{p} {sizes[p]}" for p in PROFILES),
                    _compact_splits(spec.test_splits(a.profile, v)),
                    state,
                )
            )
    if a.json:
        print(
            json.dumps(
                [dict(zip(("dataset", "variant", "kind", "sizes", "test_splits", a.profile), r)) for r in rows],
                indent=1,
            )
        )
        return 0
    w = [
        max(
            len(str(r[i]))
            for r in rows + [("dataset", "variant", "kind", "samples per profile", "test splits", "status")]
        )
        for i in range(6)
    ]
    head = ("dataset", "variant", "kind", "samples per profile", "test splits", f"status ({a.profile})")
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  ".join(str(x).ljust(w[i]) for i, x in enumerate(r)))
    print(f"\ndata root: {generators.data_root(a.data_root)}")
    return 0


def _compact_splits(names: list[str]) -> str:
    """test,test_n1,...,test_n12 -> test,test_n1..12"""
    counts = [int(n[6:]) for n in names if n.startswith("test_n") and n[6:].isdigit()]
    rest = [n for n in names if not (n.startswith("test_n") and n[6:].isdigit())]
    if len(counts) > 2:
        rest.append(f"test_n{min(counts)}..{max(counts)}")
    else:
        rest += [f"test_n{k}" for k in counts]
    return ",".join(rest)


def cmd_generate(a) -> int:
    reg = generators.registry()
    if a.all:
        targets = [(n, v) for n in sorted(reg) for v in reg[n].variants]
    elif a.name:
        spec = generators.get_spec(a.name)
        targets = [(a.name, spec.variant(a.variant))] if a.variant else [(a.name, v) for v in spec.variants]
    else:
        print("error: give a dataset name or --all", file=sys.stderr)
        return 2
    t0 = time.time()
    for name, v in targets:
        spec = reg[name]
        for split in spec.split_names(a.profile, v):
            n = spec.size(a.profile, split, v)
            bar = _progress_bar(f"{name}/{v}/{split}", n)
            last = [0]

            def prog(done, total, bar=bar, last=last):
                bar.update(done - last[0])
                last[0] = done

            t1 = time.time()
            folder = generators.generate_split(
                name, split, v, a.profile, a.data_root, workers=a.workers, force=a.force, progress=prog
            )
            bar.close()
            print(f"{name}/{v}/{a.profile}/{split}: {n} samples verified in {folder} ({time.time() - t1:.1f}s)")
    print(f"done in {time.time() - t0:.1f}s")
    return 0


def cmd_show(a) -> int:
    from generators.show import save_grid

    ds = generators.load(a.name, a.split, a.variant, a.profile, a.data_root, generate=a.generate)
    out = Path(a.out) if a.out else path_inside(Path("."), f"{a.name}_{ds.variant}_{a.split}.png")
    save_grid(ds, out, n=a.n, frames=a.frames)
    print(f"wrote {out}")
    return 0


# ------------------------------------------------------------------------------ methods/run


def _load_plugins(paths, replace_builtin: bool = False):
    from baselines import load_plugin

    names = []
    for p in paths or []:
        names += load_plugin(p, replace_builtin=replace_builtin)
    return names


def _origin_text(o: dict | None) -> str:
    if not o:
        return "?"
    if o["kind"] == "plugin":
        return f"plugin {o['path']} (sha256 {o['sha256'][:12]})"
    if o["kind"] == "entry_point":
        return f"entry point {o['name']} = {o['value']}"
    return f"{o['kind']} {o.get('module', '')}"


def cmd_methods(a) -> int:
    from baselines import methods
    from baselines.base import method_origin

    _load_plugins(a.plugin, a.replace_builtin)
    for name, cls in sorted(methods().items()):
        print(
            f"{name:18s} kinds={','.join(sorted(cls.kinds)):28s} learned={str(cls.learned):5s}  "
            f"{'frame-by-frame on video  ' if cls.frame_by_frame else ''}from {_origin_text(method_origin(name))}"
        )
    return 0


def _parse_overrides(items):
    out: dict = {}
    for it in items or []:
        key, eq, val = it.partition("=")
        m, _, p = key.rpartition(".")  # a method name may hold dots, a parameter name never does
        if not m or not p or not eq:
            raise ValueError(f"--set expects METHOD.PARAM=VALUE, got {it!r}")
        safe_name(m, "method name in --set")
        try:
            v = json.loads(val)
        except ValueError:
            v = val
        out.setdefault(m, {})[p] = v
    return out


def cmd_run(a) -> int:
    from . import runner

    _load_plugins(a.plugin, a.replace_builtin)
    if not a.all and not a.methods and not a.datasets:
        print("error: say --all, or choose --methods and/or --datasets", file=sys.stderr)
        return 2
    for opt, given in (("--methods", a.methods), ("--datasets", a.datasets)):
        if given is not None and not given:  # argparse reads `--methods=--` as no names: never "all of them"
            print(f"error: {opt} needs at least one name", file=sys.stderr)
            return 2
    datasets = runner.parse_datasets(a.datasets)
    method_names = a.methods or None
    if method_names:
        from baselines import get_method

        for m in method_names:
            get_method(m)
    from baselines.trainer import resolve_device  # the one device resolver (DeviceError is a ValueError)

    if a.launcher != "local" and a.device != "auto":
        device = a.device  # the workers' device, checked where the units run, not on this (login) machine
    elif a.launcher != "local" and a.gpus_per_unit is not None:
        device = "cuda" if a.gpus_per_unit > 0 else "cpu"
    else:
        device = str(resolve_device(a.device))
    gpus = a.gpus_per_unit if a.gpus_per_unit is not None else int(device.startswith("cuda"))
    if a.retries < 0:
        print("error: --retries must be 0 or more", file=sys.stderr)
        return 2
    units, incompatible = runner.plan(method_names, datasets, a.profile, a.seeds)
    opts = runner.RunOptions(
        profile=a.profile,
        device=device,
        results=Path(a.results or default_root()),
        data_root=a.data_root,
        work_dir=Path(a.work_dir),
        retry_failed=a.retry_failed,
        force=a.force,
        time_budget_s=a.time_budget,
        max_steps=a.max_steps,
        unit_timeout_s=a.unit_timeout,
        overrides=_parse_overrides(a.set),
        plugins=tuple(str(Path(p).resolve()) for p in a.plugin or ()),
        workers=a.workers,
        progress=not a.no_progress,
        replace_builtin=a.replace_builtin,
        retries=a.retries,
    )
    from .launchers import make_launcher

    launcher = make_launcher(
        a.launcher,
        address=a.ray_address,
        cpus_per_unit=a.cpus_per_unit,
        gpus_per_unit=gpus,
        partition=a.slurm_partition,
        time_min=a.slurm_time,
        array_parallelism=a.slurm_array_parallelism,
        folder=Path(a.slurm_folder) if a.slurm_folder else Path(a.work_dir) / "slurm",
        setup=tuple(a.slurm_setup or ()),
        cluster=a.slurm_executor,
    )
    if incompatible and a.verbose:
        print("not compatible (left out): " + "; ".join(incompatible), file=sys.stderr)
    summary = runner.run_grid(units, opts, jobs=a.jobs, launcher=launcher)
    lb_error = None
    if not a.no_leaderboard:
        try:  # the runs are stored whatever happens here: the summary below is always printed
            paths = _build_leaderboard(opts.results, a.profile)
        except Exception as e:
            lb_error = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            print(
                f"error: leaderboard not rebuilt ({lb_error}); the records are stored, "
                f"rebuild with `python -m benchmark leaderboard` once fixed",
                file=sys.stderr,
            )
        else:
            if paths:
                print(f"leaderboard: {paths.get('leaderboard.md') or next(iter(paths.values()))}")
    print(
        f"runs: {summary['planned']} planned, {summary['skipped']} skipped (already stored), "
        f"{summary['ran']} ran -> {summary['ok']} records ok, {summary['failed']} failed "
        f"in {summary['seconds']:.0f}s"
    )
    for f in summary["failures"][:20]:
        print(f"  failed: {f}")
    return 1 if summary["failed"] or lb_error else 0


def _build_leaderboard(results_root: Path, profile: str | None):
    import leaderboard

    store = ResultsStore(results_root)
    recs = store.records(profile)  # invalid records are left out, each named by its file in problems
    warned = list(store.problems)
    if profile and profile != leaderboard.REFERENCE_PROFILE:
        # the reference runs of the store (the committed GPU records in results/paper/ and later ones):
        # build() shows them as their own tier beside this profile's runs
        recs += store.records(leaderboard.REFERENCE_PROFILE)
        warned += store.problems
    problems: list[str] = []
    for p in warned:
        print(f"warning: {p}", file=sys.stderr)
    out = path_inside(results_root, "leaderboard", safe_name(profile, "profile") if profile else "all")
    paths = leaderboard.build(recs, out, profile=profile, problems=problems)
    for p in problems:  # none after the store's check; kept so that build never hides one
        print(f"warning: {p}", file=sys.stderr)
    return {k: str(v) for k, v in paths.items()}


def cmd_leaderboard(a) -> int:
    paths = _build_leaderboard(Path(a.results or default_root()), a.profile)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def cmd_results(a) -> int:
    store = ResultsStore(Path(a.results or default_root()))
    recs = store.records(
        a.profile, method=a.method, dataset=a.dataset, variant=a.variant, split=a.split, status=a.status
    )
    for p in store.problems:
        print(f"warning: {p}", file=sys.stderr)
    if a.json:
        print(json.dumps(recs, indent=1))
        return 0
    keys = a.metrics.split(",") if a.metrics else ["fg_ari", "ari", "miou", "mbo", "mse", "mota"]
    print(f"{'run_id':70s} {'status':7s} " + " ".join(f"{k:>8s}" for k in keys))
    for r in recs:
        vals = []
        for k in keys:
            v = (r.get("metrics") or {}).get(k, {})
            v = v.get("value") if isinstance(v, dict) else v
            vals.append(f"{v:8.4f}" if isinstance(v, (int, float)) else f"{'-':>8s}")
        print(f"{r['run_id']:70s} {r['status']:7s} " + " ".join(vals))
    print(f"{len(recs)} records")
    return 0


def cmd_score(a) -> int:
    from . import external

    rec = external.score_file(
        a.dataset,
        a.split,
        a.predictions,
        variant=a.variant,
        profile=a.profile,
        data_root=a.data_root,
        method=a.method,
        seed=a.seed,
        results=Path(a.results or default_root()) if a.method else None,
        overwrite=a.overwrite,
    )
    for k, v in rec["metrics"].items():
        print(f"{k:22s} {v['value'] if v.get('value') is not None else 'undefined'}  (n={v.get('n')})")
    if a.method:
        print(f"stored as {rec['run_id']}")
    return 0


def cmd_export(a) -> int:
    from . import external

    out = external.export_split(a.dataset, a.split, a.out, variant=a.variant, profile=a.profile, data_root=a.data_root)
    print(f"wrote {out}")
    return 0


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("datasets", help="list datasets, variants, sizes per profile and whether generated")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--json", action="store_true")
    _add_data_root(p)
    p.set_defaults(fn=cmd_datasets)

    p = sub.add_parser("generate", help="generate the splits of a dataset (or --all)")
    p.add_argument("name", nargs="?")
    p.add_argument("--all", action="store_true")
    p.add_argument("--variant", default=None)
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--force", action="store_true", help="regenerate even if a verified split exists")
    _add_data_root(p)
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("show", help="write a PNG grid of samples with their masks overlaid")
    p.add_argument("name")
    p.add_argument("--variant", default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--frames", type=int, default=6, help="frames per row for videos")
    p.add_argument("--out", default=None)
    p.add_argument("--generate", action="store_true", help="generate the split first if missing")
    _add_data_root(p)
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("methods", help="list registered methods and where each comes from")
    p.add_argument("--plugin", action="append", help="a Python file that registers methods")
    p.add_argument("--replace-builtin", action="store_true", help="let plugins replace built-in methods")
    p.set_defaults(fn=cmd_methods)

    p = sub.add_parser("run", help="fit and score methods on the fixed splits, then rebuild the leaderboard")
    p.add_argument("--all", action="store_true", help="every registered method on every dataset")
    p.add_argument("--methods", nargs="+")
    p.add_argument("--datasets", nargs="+", help="names, or name:variant")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the profile's seeds")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="dataset generation processes")
    p.add_argument("--plugin", action="append", help="a Python file that registers methods")
    p.add_argument(
        "--replace-builtin",
        action="store_true",
        help="let plugins replace built-in methods (their records say so in 'origin')",
    )
    p.add_argument("--set", action="append", help="hyper-parameter override METHOD.PARAM=VALUE")
    p.add_argument("--time-budget", type=float, default=None, help="seconds per fit (overrides the profile)")
    p.add_argument("--max-steps", type=int, default=None, help="training steps cap (overrides the profile)")
    p.add_argument(
        "--unit-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall-clock limit per unit (its own process: fit and scoring), after which it is killed "
        "and recorded as failed; 0 = no limit (default: the profile's)",
    )
    p.add_argument(
        "--launcher",
        default="local",
        choices=("local", "ray", "slurm"),
        help="where units run: processes here (--jobs), one Ray task each, or one Slurm array job (submitit)",
    )
    p.add_argument("--retries", type=int, default=0, help="run a unit with a failed record again, up to N times")
    p.add_argument("--ray-address", default=None, help="Ray cluster to use (default: start a local one)")
    p.add_argument("--cpus-per-unit", type=int, default=1, help="CPUs each Ray task or Slurm task asks for")
    p.add_argument(
        "--gpus-per-unit", type=int, default=None, help="GPUs each Ray or Slurm task asks for (default: 1 on CUDA)"
    )
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", type=int, default=60, metavar="MINUTES", help="Slurm time limit per unit")
    p.add_argument("--slurm-array-parallelism", type=int, default=32, metavar="N", help="array tasks running at once")
    p.add_argument("--slurm-folder", default=None, help="submitit's job files and logs (default: WORK_DIR/slurm)")
    p.add_argument(
        "--slurm-setup", action="append", help="a shell line each Slurm task runs first (module load, activate)"
    )
    p.add_argument(
        "--slurm-executor",
        default="slurm",
        choices=("slurm", "local"),
        help="local: submitit's local executor runs the same array jobs on this machine (no Slurm)",
    )
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--force", action="store_true", help="re-run even what is in the store")
    p.add_argument("--work-dir", default="runs", help="checkpoints")
    p.add_argument("--no-leaderboard", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    _add_data_root(p)
    _add_results(p)
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("results", help="list and filter stored run records")
    p.add_argument("--profile", default=None)
    for k in ("method", "dataset", "variant", "split", "status"):
        p.add_argument(f"--{k}", default=None)
    p.add_argument("--metrics", default=None, help="comma-separated metric columns")
    p.add_argument("--json", action="store_true")
    _add_results(p)
    p.set_defaults(fn=cmd_results)

    p = sub.add_parser("score", help="score a predictions file (.npz) made by any code against a split")
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--variant", default=None)
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--predictions", required=True, help=".npz with masks [N,T,H,W] (and optional recon)")
    p.add_argument("--method", default=None, help="store the result under this method name")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing record, or store under a registered method's name"
    )
    p.add_argument("--seed", type=int, default=0)
    _add_data_root(p)
    _add_results(p)
    p.set_defaults(fn=cmd_score)

    p = sub.add_parser("export", help="write a split as one plain .npz (video, masks, objects)")
    p.add_argument("dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--variant", default=None)
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--out", required=True)
    _add_data_root(p)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("leaderboard", help="rebuild the leaderboard from the results store")
    p.add_argument("--profile", default=None)
    _add_results(p)
    p.set_defaults(fn=cmd_leaderboard)
    return ap


# arguments that hold one name, and what they name; each becomes part of a path somewhere
_NAME_ARGS = {
    "name": "dataset name",
    "dataset": "dataset name",
    "variant": "variant name",
    "split": "split name",
    "method": "method name",
    "profile": "profile name",
}


def _check_names(a) -> None:
    """Refuse an unsafe name (``store.safe_name``) before any work: names become paths.

    Safe but unknown names go on, to the registries' own "unknown ..., valid: [...]" messages.
    """
    for attr, what in _NAME_ARGS.items():
        value = getattr(a, attr, None)
        if value is not None:
            safe_name(value, what)
    for m in getattr(a, "methods", None) or []:
        safe_name(m, "method name")
    for item in getattr(a, "datasets", None) or []:
        name, _, variant = item.partition(":")
        safe_name(name, "dataset name")
        if variant:
            safe_name(variant, "variant name")
    _parse_overrides(getattr(a, "set", None))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from baselines.base import MethodError

    try:
        _check_names(args)
        return args.fn(args) or 0
    except (generators.DatasetError, MethodError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
