"""LPIPS speed per trunk (not a test).

    python benchmarks/bench_lpips.py [--size 64] [--n 64] [--batch 32] [--threads 1] [--device cpu]

Prints ms per image pair for ``metrics.lpips`` on uint8 [N,H,W,3] batches, the one-time weight
load + module build, and the ratio of batched to one-pair-at-a-time evaluation.
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
import torch


def _time(fn, reps: int) -> float:
    fn()  # warm-up (module cache, allocator)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=64, help="image pairs per call")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    L = importlib.import_module("metrics.perceptual")
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.integers(0, 256, (a.n, a.size, a.size, 3), dtype=np.uint8)).to(a.device)
    y = torch.from_numpy(g.integers(0, 256, (a.n, a.size, a.size, 3), dtype=np.uint8)).to(a.device)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    print(f"device={a.device} threads={torch.get_num_threads()} size={a.size} n={a.n} batch={a.batch}")
    print(f"{'net':5s} {'load+build s':>12s} {'ms/pair batched':>16s} {'ms/pair bs=1':>13s} {'speed-up':>9s}")
    for net in L.NETS:
        t = time.perf_counter()
        L._module(net, x.device, None)
        build = time.perf_counter() - t

        def run(bs: int, net: str = net) -> None:
            L.lpips(x, y, net=net, batch_size=bs)
            sync()

        batched = _time(lambda: run(a.batch), a.reps) / a.n * 1e3
        single = _time(lambda: run(1), max(1, a.reps // 2)) / a.n * 1e3
        print(f"{net:5s} {build:12.2f} {batched:16.2f} {single:13.2f} {single / batched:8.1f}x")


if __name__ == "__main__":
    main()
