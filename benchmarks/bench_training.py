"""Training throughput of the learned image baselines: steps/s per method, device and data path.

Compares the trainer's on-device data path (whole split held on the device, batches drawn there)
with a plain loop (``torch.utils.data.DataLoader`` over the split and a host->device copy per
batch), and on CUDA also bf16 autocast and ``torch.compile`` on/off. Prints one line per setting
and the ratio to the plain loop; ``--json`` also writes the rows.

    python benchmarks/bench_training.py --steps 5 --warmup 2                # synthetic Tetrominoes-sized data
    python benchmarks/bench_training.py --dataset tetrominoes --profile quick --steps 50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.base import DatasetInfo, get_method  # noqa: E402
from baselines.nn import to_unit  # noqa: E402
from baselines.trainer import FrameSource, prepare_cuda  # noqa: E402


class _Frames(torch.utils.data.Dataset):
    """Frames of a split read one by one from the host arrays (what a plain loader does)."""

    def __init__(self, video: np.ndarray):
        self.frames = video.reshape(-1, *video.shape[2:])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.frames[i]))


class _Synthetic:
    def __init__(self, n: int, shape: tuple[int, int, int, int], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.video = (rng.random((n, *shape)) < 0.2).astype(np.uint8) * 255
        self.masks = np.zeros((n, *shape[:3]), np.int64)

    @property
    def shape(self):
        return tuple(self.video.shape[1:])

    def __len__(self) -> int:
        return len(self.video)


def _batches_plain(split, batch_size: int, device: torch.device):
    while True:
        loader = torch.utils.data.DataLoader(
            _Frames(split.video), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0
        )
        for b in loader:
            yield b.to(device, non_blocking=False)


def _batches_device(split, batch_size: int, device: torch.device):
    src = FrameSource(split, device, seed=0, on_device=True)
    while True:
        yield src.sample(batch_size)


def run_one(
    method: str,
    split,
    info: DatasetInfo,
    device: torch.device,
    path: str,
    amp: bool,
    compile_: bool,
    steps: int,
    warmup: int,
    batch_size: int | None,
    compile_mode: str | None = None,
) -> dict:
    cls = get_method(method)
    cfg = cls.make_config(info.name, info.variant)
    if batch_size:
        cfg = dataclasses.replace(cfg, batch_size=batch_size)
    torch.manual_seed(0)
    m = cls(cfg, info)
    model = m.build_model().to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        prepare_cuda(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    fn = torch.compile(model, mode=compile_mode) if compile_ else model
    data = (_batches_device if path == "device" else _batches_plain)(split, cfg.batch_size, device)

    def step() -> torch.Tensor:
        x = to_unit(next(data))
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and cuda):
            loss = fn(x).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss.detach())  # syncs the device
    dt = time.perf_counter() - t0
    return {
        "method": method,
        "device": str(device),
        "path": path,
        "amp": bool(amp and cuda),
        "compile": compile_,
        "compile_mode": compile_mode if compile_ else None,
        "batch_size": cfg.batch_size,
        "steps": steps,
        "steps_per_s": steps / dt,
    }


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["slot_attention", "monet", "iodine"])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    ap.add_argument("--dataset", default=None, help="a generated dataset (default: synthetic Tetrominoes-sized)")
    ap.add_argument("--variant", default=None)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--root", default=None)
    ap.add_argument("--split", default="train")
    ap.add_argument("--synthetic-n", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the paper's batch")
    ap.add_argument(
        "--compile-modes",
        nargs="+",
        default=["default"],
        help="torch.compile modes tried on CUDA (default, reduce-overhead, max-autotune-no-cudagraphs)",
    )
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    if a.dataset:
        import generators

        split = generators.load(a.dataset, a.split, variant=a.variant, profile=a.profile, root=a.root)
        info = DatasetInfo(a.dataset, split.variant, split.kind, split.shape, max(1, split.max_objects))
    else:
        split = _Synthetic(a.synthetic_n, (1, 35, 35, 3))
        info = DatasetInfo("tetrominoes", "", "image", split.shape, 3)
    devices = a.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    print(f"data: {a.dataset or 'synthetic'} {len(split)} x {split.shape}; steps={a.steps} (+{a.warmup} warm-up)")
    for method in a.methods:
        for dev in devices:
            device = torch.device(dev)
            settings = [("plain", False, False), ("device", False, False)]
            if device.type == "cuda":
                settings = [("plain", True, False), ("device", True, False), ("device", False, False)]
                settings += [("device", True, mode) for mode in a.compile_modes]
            base = None
            for path, amp, comp in settings:
                try:
                    mode = None if comp in (False, "default") else comp
                    r = run_one(
                        method, split, info, device, path, amp, bool(comp), a.steps, a.warmup, a.batch_size, mode
                    )
                except Exception as e:  # e.g. compile unsupported: report and go on
                    print(
                        f"{method:15s} {dev:5s} {path:6s} amp={amp!s:5s} compile={comp!s:5s} FAILED: "
                        f"{type(e).__name__}: {str(e)[:200]}"
                    )
                    continue
                if path == "plain":
                    base = r["steps_per_s"]
                r["ratio_vs_plain"] = r["steps_per_s"] / base if base else None
                rows.append(r)
                ratio = f"{r['ratio_vs_plain']:.2f}x" if base else "-"
                print(
                    f"{method:15s} {dev:5s} {path:6s} amp={amp!s:5s} compile={comp!s:5s} "
                    f"batch={r['batch_size']:4d} {r['steps_per_s']:9.2f} steps/s  vs plain {ratio}",
                    flush=True,
                )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
