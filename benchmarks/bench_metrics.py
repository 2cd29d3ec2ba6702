"""Speed of the batched metrics against per-sample reference loops (not a test; prints ratios).

    .venv/bin/python benchmarks/bench_metrics.py                   # full: 10k images, 1k videos
    .venv/bin/python benchmarks/bench_metrics.py --quick           # a smaller run
    .venv/bin/python benchmarks/bench_metrics.py --only tracking   # 3 and 4 only (1k videos)

1. FG-ARI over N 64x64 images with up to 6 objects: ``metrics.fg_ari`` vs a per-image
   ``sklearn.metrics.adjusted_rand_score`` loop (run on a subset and extrapolated linearly, as
   printed), values compared to 1e-9 on that subset; plus the contingency-table variants that
   decided the implementation (numpy chunked bincount, torch.bincount, one-hot einsum/bmm).
2. mIoU over the same images vs a per-image loop (numpy IoU matrix + scipy Hungarian).
3. CLEAR-MOT with IDF1/IDP/IDR and fragmentations over V ten-frame videos: ``metrics.clear_mot``
   (IoUs included) vs py-motmetrics 1.4.0 fed precomputed distance matrices (its ``update`` +
   ``compute_many`` only, so the ratio is a lower bound), counts compared exactly.
4. HOTA over the same videos: ``metrics.hota`` (IoUs included) vs TrackEval 1.3.0's ``HOTA`` metric
   fed precomputed similarity matrices (again a lower bound), values compared to 1e-6.

All timings are wall-clock on this machine, best of ``--reps`` for ocbench.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import metrics as M  # noqa: E402
import metrics._checks as _checks  # noqa: E402


def make_images(n: int, size: int = 64, max_objects: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """GT: up to ``max_objects`` overlapping rectangles (later ones occlude); prediction: the GT
    with ids permuted per image, one object merged into the background now and then, 10% noise."""
    rng = np.random.default_rng(seed)
    t = np.zeros((n, 1, size, size), np.int64)
    r = np.arange(size)
    for k in range(1, max_objects + 1):
        present = rng.random(n) < 0.8
        y0, x0 = rng.integers(0, size - 8, n), rng.integers(0, size - 8, n)
        h, w = rng.integers(6, size // 3, n), rng.integers(6, size // 3, n)
        m = (
            (r[None, :, None] >= y0[:, None, None])
            & (r[None, :, None] < (y0 + h)[:, None, None])
            & (r[None, None, :] >= x0[:, None, None])
            & (r[None, None, :] < (x0 + w)[:, None, None])
        )
        t[:, 0][m & present[:, None, None]] = k
    perm = np.argsort(rng.random((n, max_objects + 1)), axis=1)
    merge = rng.random((n, max_objects + 1)) < 0.1
    perm = np.where(merge, perm[:, :1], perm)
    p = np.take_along_axis(perm, t.reshape(n, -1), axis=1).reshape(t.shape)
    noise = rng.random(t.shape) < 0.1
    p[noise] = rng.integers(0, max_objects + 1, int(noise.sum()))
    return t, p


def make_videos(n: int, T: int = 10, size: int = 32, max_objects: int = 5, seed: int = 1):
    """Moving squares (GT ids stable over time) and a tracker that keeps ids, sometimes swaps two
    of them from a random frame on, sometimes loses one, with 5% of pixels given a random id."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for _ in range(n):
        K = int(rng.integers(1, max_objects + 1))
        pos = rng.integers(0, size - 8, (K, 2)).astype(float)
        vel = rng.normal(0, 1.5, (K, 2))
        sz = rng.integers(5, 10, K)
        g = np.zeros((T, size, size), np.int64)
        for f in range(T):
            for k in range(K):
                y, x = np.clip(pos[k] + f * vel[k], 0, size - sz[k]).astype(int)
                g[f, y : y + sz[k], x : x + sz[k]] = k + 1
        hyp = rng.permutation(np.arange(1, 20))[: K + 1]
        hyp[0] = 0
        pr = hyp[g]
        if K >= 2 and rng.random() < 0.5:
            f0 = int(rng.integers(1, T))
            a, b = hyp[1], hyp[2]
            seg = pr[f0:]
            pr[f0:] = np.where(seg == a, b, np.where(seg == b, a, seg))
        if rng.random() < 0.3:
            pr[pr == hyp[K]] = 0
        noise = rng.random(g.shape) < 0.05
        pr[noise] = hyp[rng.integers(0, K + 1, int(noise.sum()))]
        gts.append(g)
        preds.append(pr)
    return gts, preds


def best_of(fn, reps: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_ari(t: np.ndarray, p: np.ndarray, sk_subset: int, reps: int) -> None:
    from sklearn.metrics import adjusted_rand_score

    n = t.shape[0]
    ours, vals = best_of(lambda: M.fg_ari(t, p), reps)
    # ocbench stores masks as uint8 and scores them in their stored dtype: the same tables from a
    # quarter of the memory traffic
    t8, p8 = t.astype(np.uint8), p.astype(np.uint8)
    ours8, vals8 = best_of(lambda: M.fg_ari(t8, p8), reps)
    _checks._CPU_BACKEND = "torch"
    try:
        ours_torch, vals_torch = best_of(lambda: M.fg_ari(torch.from_numpy(t), torch.from_numpy(p)), 1)
    finally:
        _checks._CPU_BACKEND = "numpy"
    m = min(sk_subset, n)
    t0 = time.perf_counter()
    ref = np.array(
        [adjusted_rand_score(t[i].ravel()[t[i].ravel() > 0], p[i].ravel()[t[i].ravel() > 0]) for i in range(m)]
    )
    sk = (time.perf_counter() - t0) * n / m
    err = float(np.abs(vals[:m] - ref).max())
    err_t = float(np.abs(vals_torch.numpy() - vals).max())
    print(f"FG-ARI, {n} images {t.shape[2]}x{t.shape[3]}:")
    print(f"  ocbench (numpy bincount)     {ours:8.3f} s   int64 ids")
    print(
        f"  ocbench, uint8 ids (stored)  {ours8:8.3f} s   max |diff| to int64 {float(np.abs(vals8 - vals).max()):.1e}"
    )
    print(f"  ocbench (torch path, CPU)    {ours_torch:8.3f} s   max |diff| to numpy path {err_t:.1e}")
    print(f"  sklearn loop                 {sk:8.3f} s   (run on {m} images, x{n / m:g} extrapolated)")
    print(
        f"  speed-up vs sklearn          {sk / ours:8.1f} x int64, {sk / ours8:.1f} x uint8   (target >= 100x); "
        f"max |diff| {err:.1e} (must be <= 1e-9: {'OK' if err <= 1e-9 else 'FAIL'})"
    )


def bench_contingency(t: np.ndarray, p: np.ndarray, reps: int) -> None:
    """The measurements behind the choice of the CPU contingency code (per 10k images)."""
    import metrics.segmentation as seg

    n = min(2000, t.shape[0])
    tt, pp = t[:n].reshape(n, -1), p[:n].reshape(n, -1)
    K = int(max(tt.max(), pp.max())) + 1
    scale = 10000 / n

    def used():
        for lo in range(0, n, 16):
            seg._np_counts(tt[lo : lo + 16], pp[lo : lo + 16], None, K, K)

    def np_chunked_one_lane():
        for lo in range(0, n, 16):
            a, b = tt[lo : lo + 16], pp[lo : lo + 16]
            key = a * K
            key += b
            key += (np.arange(a.shape[0]) * K * K)[:, None]
            np.bincount(key.ravel(), minlength=a.shape[0] * K * K)

    def np_whole():
        key = (np.arange(n)[:, None] * K + tt) * K + pp
        np.bincount(key.ravel(), minlength=n * K * K)

    ttt, ptt = torch.from_numpy(tt), torch.from_numpy(pp)

    def torch_bincount():
        key = (torch.arange(n)[:, None] * K + ttt) * K + ptt
        torch.bincount(key.reshape(-1), minlength=n * K * K)

    def torch_onehot():
        for lo in range(0, n, 256):
            a = torch.nn.functional.one_hot(ttt[lo : lo + 256], K).float()
            b = torch.nn.functional.one_hot(ptt[lo : lo + 256], K).float()
            torch.bmm(a.transpose(1, 2), b)

    print(f"contingency tables only, one thread, per 10k images (measured on {n}):")
    for name, fn in (
        ("numpy bincount, 16-image chunks, 8 lanes (used)", used),
        ("numpy bincount, 16-image chunks, 1 lane", np_chunked_one_lane),
        ("numpy bincount, one call", np_whole),
        ("torch.bincount, one call", torch_bincount),
        ("torch one-hot bmm float32", torch_onehot),
    ):
        s, _ = best_of(fn, reps)
        print(f"  {name:48s} {s * scale:8.3f} s")


def bench_miou(t: np.ndarray, p: np.ndarray, subset: int, reps: int) -> None:
    from scipy.optimize import linear_sum_assignment

    n = t.shape[0]
    ours, vals = best_of(lambda: M.miou(t, p), reps)
    m = min(subset, n)

    def per_image(i: int) -> float:
        tf, pf = t[i].ravel(), p[i].ravel()
        g = np.unique(tf)
        g = g[g > 0]
        if len(g) == 0:
            return np.nan
        q = np.unique(pf)
        gm = tf[None, :] == g[:, None]
        pm = pf[None, :] == q[:, None]
        inter = gm.astype(np.float64) @ pm.T.astype(np.float64)
        union = gm.sum(1)[:, None] + pm.sum(1)[None, :] - inter
        iou = inter / union
        r, c = linear_sum_assignment(iou, maximize=True)
        return iou[r, c].sum() / len(g)

    t0 = time.perf_counter()
    ref = np.array([per_image(i) for i in range(m)])
    loop = (time.perf_counter() - t0) * n / m
    err = float(np.nanmax(np.abs(vals[:m] - ref)))
    print(f"mIoU, {n} images:")
    print(f"  ocbench                      {ours:8.3f} s")
    print(f"  per-image numpy+scipy loop   {loop:8.3f} s   (run on {m} images, x{n / m:g} extrapolated)")
    print(f"  speed-up                     {loop / ours:8.1f} x   max |diff| {err:.1e}")


def bench_mot(n_videos: int, mm_subset: int, reps: int) -> None:
    import motmetrics as mm

    gts, preds = make_videos(n_videos)
    ours, res = best_of(lambda: M.clear_mot(gts, preds), reps)  # CLEAR-MOT + IDF1/IDP/IDR + fragmentations
    m = min(mm_subset, n_videos)
    inputs = [M.frame_inputs(g, p) for g, p in zip(gts[:m], preds[:m])]  # not timed for motmetrics
    counts = [
        "num_objects",
        "num_matches",
        "num_switches",
        "num_misses",
        "num_false_positives",
        "num_fragmentations",
        "idtp",
        "idfp",
        "idfn",
    ]
    rates = ["mota", "motp", "idf1", "idp", "idr"]
    t0 = time.perf_counter()
    accs = []
    for frames in inputs:
        acc = mm.MOTAccumulator(auto_id=True)
        for o, h, d in frames:
            acc.update(o, h, d)
        accs.append(acc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = mm.metrics.create().compute_many(accs, metrics=counts + rates, generate_overall=True)
    ref_time = (time.perf_counter() - t0) * n_videos / m
    sub = res if m == n_videos else M.clear_mot(gts[:m], preds[:m])
    same = all(int(df.loc["OVERALL"][k]) == sub["summary"][k] for k in counts)
    err = max(abs(float(df.loc["OVERALL"][k]) - sub["summary"][k]) for k in rates)
    s = res["summary"]
    print(
        f"CLEAR-MOT + IDF1, {n_videos} videos of {gts[0].shape[0]} frames {gts[0].shape[1]}x{gts[0].shape[2]} "
        f"(objects {s['num_objects']}, switches {s['num_switches']}, MOTA {s['mota']:.4f}, IDF1 {s['idf1']:.4f}):"
    )
    print(f"  ocbench (IoUs included)      {ours:8.3f} s")
    print(
        f"  motmetrics update+compute    {ref_time:8.3f} s   (run on {m} videos, x{n_videos / m:g} extrapolated; "
        f"distance matrices precomputed; metrics {', '.join(counts + rates)})"
    )
    print(
        f"  speed-up                     {ref_time / ours:8.1f} x   (target >= 20x); counts equal: "
        f"{'OK' if same else 'FAIL'}, max |diff| of rates {err:.1e} ({'OK' if err <= 1e-12 else 'FAIL'})"
    )


def bench_hota(n_videos: int, te_subset: int, reps: int) -> None:
    """HOTA over the videos of ``bench_mot``: ``metrics.hota`` (IoUs included) vs TrackEval 1.3.0's
    ``HOTA.eval_sequence`` + ``combine_sequences`` on precomputed similarity matrices."""
    try:
        import trackeval
    except ImportError as e:  # the optional `test` extra
        print(f"HOTA: trackeval not importable ({e}); skipped")
        return
    gts, preds = make_videos(n_videos)
    ours, res = best_of(lambda: M.hota(gts, preds), reps)
    m = min(te_subset, n_videos)

    def data(g: np.ndarray, p: np.ndarray) -> dict:  # TrackEval's per-sequence input (not timed)
        frames = M.frame_inputs(g, p, similarity=True)
        gu = {x: i for i, x in enumerate(sorted({o for f in frames for o in f[0]}))}
        pu = {x: i for i, x in enumerate(sorted({h for f in frames for h in f[1]}))}
        return {
            "gt_ids": [np.array([gu[o] for o in f[0]], int) for f in frames],
            "tracker_ids": [np.array([pu[h] for h in f[1]], int) for f in frames],
            "similarity_scores": [f[2] for f in frames],
            "num_gt_ids": len(gu),
            "num_tracker_ids": len(pu),
            "num_gt_dets": sum(len(f[0]) for f in frames),
            "num_tracker_dets": sum(len(f[1]) for f in frames),
            "num_timesteps": len(frames),
        }

    datas = [data(g, p) for g, p in zip(gts[:m], preds[:m])]
    metric = trackeval.metrics.HOTA()
    t0 = time.perf_counter()
    ref = metric.combine_sequences({str(i): metric.eval_sequence(d) for i, d in enumerate(datas)})
    ref_time = (time.perf_counter() - t0) * n_videos / m
    sub = res if m == n_videos else M.hota(gts[:m], preds[:m])
    keys = {"hota": "HOTA", "deta": "DetA", "assa": "AssA", "loca": "LocA"}
    err = max(abs(sub["summary"][k] - float(np.mean(ref[r]))) for k, r in keys.items())
    s = res["summary"]
    print(
        f"HOTA, the same {n_videos} videos (HOTA {s['hota']:.4f}, DetA {s['deta']:.4f}, AssA {s['assa']:.4f}, "
        f"LocA {s['loca']:.4f}):"
    )
    print(f"  ocbench (IoUs included)      {ours:8.3f} s")
    print(
        f"  TrackEval eval+combine       {ref_time:8.3f} s   (run on {m} videos, x{n_videos / m:g} extrapolated; "
        f"similarity matrices precomputed)"
    )
    print(
        f"  speed-up                     {ref_time / ours:8.1f} x   (target >= 10x); max |diff| HOTA/DetA/AssA/LocA "
        f"{err:.1e} ({'OK' if err <= 1e-6 else 'FAIL'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--sk-subset", type=int, default=1000, help="images the sklearn/scipy loops run on")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--mm-subset", type=int, default=1000, help="videos motmetrics runs on")
    ap.add_argument("--te-subset", type=int, default=1000, help="videos TrackEval runs on")
    ap.add_argument("--only", choices=["all", "tracking"], default="all", help="tracking: the video metrics only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="2000 images, 200 videos")
    a = ap.parse_args()
    if a.quick:
        a.images, a.videos, a.sk_subset, a.mm_subset, a.te_subset = 2000, 200, 500, 200, 200
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs"
    )
    if a.only == "all":
        t, p = make_images(a.images)
        bench_ari(t, p, a.sk_subset, a.reps)
        bench_contingency(t, p, a.reps)
        bench_miou(t, p, a.sk_subset, a.reps)
    bench_mot(a.videos, a.mm_subset, a.reps)
    bench_hota(a.videos, a.te_subset, a.reps)


if __name__ == "__main__":
    main()
