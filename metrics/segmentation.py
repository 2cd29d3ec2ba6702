"""Segmentation metrics: ARI / FG-ARI, object mIoU (two conventions) and mBO (docs/metrics.md §0-§3).

Every metric here is a function of one contingency table per sample, ``n[i, j]`` = number of
counted points with GT id ``i`` and predicted id ``j`` (row 0 is always the GT background). The
tables of a whole batch come from one ``bincount`` of ``(sample, gt, pred)`` keys, chunked so the
key array stays in cache; for video the ``T·H·W`` voxels of a clip form one table (§0 "video").
Hungarian matching (mIoU) runs per sample on the CPU with ``scipy.optimize.linear_sum_assignment``.

Many labels: a sample whose table is large is remapped to the ids it contains; if even that
table exceeds ``_MAX_REMAPPED_CELLS`` (both inputs with thousands of distinct ids) it is kept as
sparse counts (``_SparseTable``), from which ARI and mBO are exact and mIoU is exact by matching
each connected block of overlapping masks alone. Dense matrices that a metric cannot avoid (one
Hungarian block, the ClevrTex K x K stack) are refused above ``_checks.MAX_TABLE_CELLS`` (2**25
cells) with a ValueError that states the limit.

Per-sample outputs are float64 ``[B]``: torch in -> torch on the input's device, numpy in -> numpy;
NaN marks a skipped sample (``summarize`` counts them as ``n_skipped``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components

from ._checks import Ids, check_table_size, id_range, prepare_pair, prepare_valid, wrap_output

__all__ = [
    "ari",
    "fg_ari",
    "ari_frame",
    "fg_ari_frame",
    "contingency",
    "miou",
    "miou_clevrtex",
    "miou_clevrtex_fg",
    "mbo",
    "segmentation_metrics",
    "SEGMENTATION_METRICS",
]

# Pixels per bincount call on the CPU: 2**16 int64 keys (512 KiB) stay in cache; with the lanes of
# _np_counts measured ~1.8x faster than one bincount over a whole batch (benchmarks/bench_metrics.py).
_CHUNK_PIXELS = 1 << 16
# On an accelerator fewer, larger calls are better; this bounds the int64 key array (128 MiB).
_TORCH_CHUNK_PIXELS = 1 << 24
# Tables gathered before the metric code runs on them (its cost is per call, not per sample).
_GROUP_SAMPLES = 2048
# Above this many (gt, pred) cells per sample the ids are first remapped to their distinct values.
_MAX_DENSE_CELLS = 1 << 16
# Above this many cells after the remap (32 MiB as int64; the metrics make a few float64 copies)
# a sample's table is kept sparse: only its non-zero counts, at most one per point.
_MAX_REMAPPED_CELLS = 1 << 22


# --------------------------------------------------------------------------------------------
# contingency tables
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _offsets(b: int, n: int, lanes: int, size: int, dtype: type) -> np.ndarray:
    """Key offsets [b, n]: sample ``row`` and lane ``col % lanes`` get their own block of ``size`` bins."""
    off = (np.arange(b)[:, None] * lanes + (np.arange(n) % lanes)[None, :]) * size
    off = off.astype(dtype)
    off.flags.writeable = False
    return off


def _np_counts(t: np.ndarray, p: np.ndarray, valid: np.ndarray | None, kt: int, kp: int) -> np.ndarray:
    """int64 [b, kt, kp] tables of b samples (t, p: [b, N] ids < kt, kp); invalid points dropped.

    Neighbouring pixels mostly share a (gt, pred) pair, so one histogram would increment the same
    counter back to back (a store-to-load dependency chain); ``lanes`` interleaved sub-histograms
    (pixel ``col`` counts in lane ``col % lanes``) break the chains: bincount ~2x faster, measured.
    """
    b, n = t.shape
    rows = kt + (valid is not None)  # invalid points go to an extra GT row that is cut off
    size = rows * kp
    lanes = 8
    while lanes > 1 and lanes * b * size > (1 << 16):  # keep the sub-histograms cache-sized
        lanes //= 2
    total = lanes * b * size
    # Key dtype: int64 inputs are used as they are (bincount wants intp, so any narrower key would
    # be cast back); narrow inputs (uint8 masks) are cheaper as uint16 keys when they fit.
    wide = t.dtype.itemsize >= 8 or p.dtype.itemsize >= 8 or total > (1 << 16)
    kd = np.int64 if wide else np.uint16
    if valid is not None:
        t = np.where(valid, t, kt)
    key = np.multiply(t, kd(kp), dtype=kd, casting="unsafe")
    np.add(key, p, out=key, dtype=kd, casting="unsafe")
    if total > size:
        key += _offsets(b, n, lanes, size, kd)
    c = np.bincount(key.ravel(), minlength=total)
    if lanes > 1:
        c = c.reshape(b, lanes, size).sum(1)
    c = c.reshape(b, rows, kp)
    return c[:, :kt] if valid is not None else c


def _torch_counts(t: torch.Tensor, p: torch.Tensor, valid: torch.Tensor | None, kt: int, kp: int) -> torch.Tensor:
    b = t.shape[0]
    rows = kt + (valid is not None)
    t = t.long()
    if valid is not None:
        t = torch.where(valid, t, torch.full_like(t, kt))
    off = torch.arange(b, device=t.device, dtype=torch.long)[:, None] * rows
    key = (off + t) * kp + p.long()
    c = torch.bincount(key.reshape(-1), minlength=b * rows * kp).reshape(b, rows, kp)
    return c[:, :kt] if valid is not None else c


@dataclass
class _SparseTable:
    """One sample's contingency table as its non-zero counts (ids remapped: row 0 = GT background).

    numpy int64 ``rows``, ``cols``, ``counts`` (> 0), sorted by (row, col); ``shape`` is
    ``(1, kt, kp)`` like a dense stack of one table.
    """

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    kt: int
    kp: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.kt, self.kp)

    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """int64 GT row sums [kt] and prediction column sums [kp]."""
        a = np.bincount(self.rows, weights=self.counts, minlength=self.kt)
        b = np.bincount(self.cols, weights=self.counts, minlength=self.kp)
        return a.astype(np.int64), b.astype(np.int64)

    def dense(self) -> np.ndarray:
        """int64 [1, kt, kp]; only for tables known to be small enough."""
        out = np.zeros(self.shape, np.int64)
        out[0, self.rows, self.cols] = self.counts
        return out


def _sparse_counts(t: Any, p: Any, valid: Any, kt: int, kp: int) -> _SparseTable:
    """The table of one sample (t, p: remapped [1, N] ids < kt, kp) by counting distinct (gt, pred)
    keys: memory O(N) whatever kt * kp is."""
    if valid is not None:
        t, p = t[valid], p[valid]
    if isinstance(t, torch.Tensor):
        key = t.reshape(-1).long() * kp + p.reshape(-1).long()
        u, cnt = torch.unique(key, return_counts=True)
        u, cnt = u.cpu().numpy(), cnt.cpu().numpy().astype(np.int64)
    else:
        key = t.reshape(-1).astype(np.int64) * kp + p.reshape(-1)
        u, cnt = np.unique(key, return_counts=True)
    rows, cols = np.divmod(u, kp)
    return _SparseTable(rows.astype(np.int64), cols.astype(np.int64), cnt.astype(np.int64), kt, kp)


def _remap(x: Any, keep_zero: bool) -> tuple[Any, int]:
    """Dense ids 0..U-1 of the distinct values of x; with keep_zero, id 0 stays 0 (the GT background)."""
    if isinstance(x, torch.Tensor):
        u, inv = torch.unique(x, return_inverse=True)
        first = int(u[0])
    else:
        u, inv = np.unique(x, return_inverse=True)
        inv = inv.reshape(x.shape)
        first = int(u[0])
    if keep_zero and first != 0:
        return inv + 1, len(u) + 1
    return inv, len(u)


def _workers() -> int:
    """Threads for the CPU contingency tables: torch's intra-op thread count (the user's knob),
    at most 4. numpy's ufuncs and bincount release the GIL, so chunks run in parallel."""
    return max(1, min(4, torch.get_num_threads(), os.cpu_count() or 1))


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-local pool (re-created after a fork, whose child has no worker threads)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] != n:
        _POOL = (os.getpid(), n, ThreadPoolExecutor(max_workers=n, thread_name_prefix="ocbench-metrics"))
    return _POOL[2]


def _chunk_tables(ids: Ids, t: Any, p: Any, v: Any, lo: int, hi: int, step: int) -> list[tuple[int, Any]]:
    """(first sample, int64 tables [b, Kt, Kp]) of the cache-sized chunks of samples [lo, hi).

    Ids are range-checked chunk by chunk (the chunk is in cache then: one pass fewer over the batch
    than a global min/max). Row i / column j are ids i / j, except for samples of a chunk with more
    than ``_MAX_DENSE_CELLS`` cells, which are remapped one by one to their distinct ids; row 0 is
    the GT background in both cases. A remapped table above ``_MAX_REMAPPED_CELLS`` is a
    ``_SparseTable``.
    """
    counts = _torch_counts if ids.backend == "torch" else _np_counts
    out: list[tuple[int, Any]] = []
    for a in range(lo, hi, step):
        sl = slice(a, min(hi, a + step))
        tc, pc = t[sl], p[sl]
        vc = v[sl] if v is not None else None
        kt = id_range(tc, ids.true_name) if ids.true_max is None else ids.true_max + 1
        kp = id_range(pc, ids.pred_name) if ids.pred_max is None else ids.pred_max + 1
        if kt * kp <= _MAX_DENSE_CELLS:
            out.append((a, counts(tc, pc, vc, kt, kp)))
            continue
        for s in range(tc.shape[0]):
            tr, kt_s = _remap(tc[s : s + 1], keep_zero=True)
            pr, kp_s = _remap(pc[s : s + 1], keep_zero=False)
            vs = vc[s : s + 1] if vc is not None else None
            build = _sparse_counts if kt_s * kp_s > _MAX_REMAPPED_CELLS else counts
            out.append((a + s, build(tr, pr, vs, kt_s, kp_s)))
    return out


def _merge(parts: list[tuple[int, Any]], backend: str) -> Iterator[tuple[slice, Any]]:
    """One zero-padded table stack for consecutive parts (trailing all-zero rows/columns carry no
    information for any metric here), or the parts one by one if that would be too large."""
    b = sum(int(c.shape[0]) for _, c in parts)
    kt = max(int(c.shape[1]) for _, c in parts)
    kp = max(int(c.shape[2]) for _, c in parts)
    lo = parts[0][0]
    if len(parts) == 1:
        yield slice(lo, lo + b), parts[0][1]
        return
    if b * kt * kp > _MAX_DENSE_CELLS * 64 or any(isinstance(c, _SparseTable) for _, c in parts):
        for a, c in parts:
            yield slice(a, a + c.shape[0]), c
        return
    if backend == "torch":
        out = torch.zeros((b, kt, kp), dtype=torch.long, device=parts[0][1].device)
    else:
        out = np.zeros((b, kt, kp), dtype=np.int64)
    i = 0
    for _, c in parts:
        out[i : i + c.shape[0], : c.shape[1], : c.shape[2]] = c
        i += c.shape[0]
    yield slice(lo, lo + b), out


def _count_chunks(ids: Ids, valid: Any, flat_frames: bool = False) -> Iterator[tuple[slice, Any]]:
    """Yield (sample slice, int64 tables [b, Kt, Kp]) over the batch, in order.

    ``flat_frames`` treats every frame as its own sample (``*_frame`` metrics). Tables are numpy on
    the CPU backend and torch on the input's device otherwise. Tables are computed for cache-sized
    chunks (in parallel threads on the CPU) and gathered into groups of about ``_GROUP_SAMPLES``
    so that the metric code runs once per group.
    """
    t, p = ids.true, ids.pred
    B, T, H, W = ids.shape
    if flat_frames:
        B, T = B * T, 1
    n = T * H * W
    t = t.reshape(B, n)
    p = p.reshape(B, n)
    v = valid.reshape(B, n) if valid is not None else None
    per = _TORCH_CHUNK_PIXELS if ids.backend == "torch" else _CHUNK_PIXELS
    step = max(1, per // n)
    group = max(step, (_GROUP_SAMPLES // step) * step)
    nw = _workers() if ids.backend == "numpy" else 1
    for glo in range(0, B, group):
        ghi = min(B, glo + group)
        n_chunks = -(-(ghi - glo) // step)
        if nw > 1 and n_chunks >= 2 * nw:
            per_worker = -(-n_chunks // nw) * step
            bounds = [(a, min(ghi, a + per_worker)) for a in range(glo, ghi, per_worker)]
            parts = [
                x for r in _pool(nw).map(lambda ab: _chunk_tables(ids, t, p, v, ab[0], ab[1], step), bounds) for x in r
            ]
        else:
            parts = _chunk_tables(ids, t, p, v, glo, ghi, step)
        yield from _merge(parts, ids.backend)


def contingency(true_ids: Any, pred_ids: Any, *, valid: Any = None) -> list[np.ndarray]:
    """Per-sample contingency tables ``n[i, j]`` (GT id i x predicted id j) over ``T·H·W``, int64.

    A helper for inspection and tests (the metrics use the same code internally). Tables are
    ``[max_true_id+1, max_pred_id+1]`` numpy arrays; a sample with large ids is indexed by its
    distinct ids in ascending order instead (GT row 0 = background), and one whose table would
    still exceed ``_MAX_REMAPPED_CELLS`` cells is a ``scipy.sparse.csr_array``.
    """
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    v = prepare_valid(valid, ids)
    out: list[Any] = []
    for _, c in _count_chunks(ids, v):
        if isinstance(c, _SparseTable):
            out.append(csr_array((c.counts, (c.rows, c.cols)), shape=(c.kt, c.kp)))
            continue
        c = c.cpu().numpy() if isinstance(c, torch.Tensor) else c
        out.extend(np.asarray(x, np.int64) for x in c)
    return out


def _per_sample(ids: Ids, valid: Any, fn: Callable[[Any], Any], flat_frames: bool = False) -> Any:
    """Concatenate fn(tables) -> [b] float64 over all chunks (numpy or torch, per backend)."""
    parts = [fn(c) for _, c in _count_chunks(ids, valid, flat_frames)]
    if ids.backend == "torch":
        return torch.cat([torch.as_tensor(x, dtype=torch.float64, device=ids.device) for x in parts])
    return np.concatenate([np.asarray(x, np.float64) for x in parts])


# --------------------------------------------------------------------------------------------
# ARI (§1)
# --------------------------------------------------------------------------------------------
def _ari_from_counts(c: Any, ignore_background: bool, skip_empty_fg: bool) -> Any:
    """ARI per table (Hubert & Arabie), float64; works on numpy arrays and torch tensors.

    ``R = Σ n(n−1)``, ``A = Σ a(a−1)``, ``Bp = Σ b(b−1)``, ``E = A·Bp / max(N(N−1), 1)``,
    ``M = (A+Bp)/2``, ARI = (R−E)/(M−E). Degenerate samples score 1.0 as in scikit-learn (§1):
    identical partitions (R = A = Bp, i.e. no disagreeing pair: covers N < 2, both one cluster,
    both all-singletons) and any other zero denominator.
    """
    if isinstance(c, _SparseTable):
        return _ari_sparse(c, ignore_background, skip_empty_fg)
    xp = torch if isinstance(c, torch.Tensor) else np
    n = c.to(torch.float64) if xp is torch else c.astype(np.float64)
    fg_points = n[:, 1:, :].sum((1, 2))
    if ignore_background:
        # FG-ARI: drop the points whose *GT* id is 0; predictions there do not matter (§1, §9)
        n = n[:, 1:, :]
    a = n.sum(2)
    b = n.sum(1)
    N = a.sum(1)
    R = (n * (n - 1)).sum((1, 2))
    A = (a * (a - 1)).sum(1)
    Bp = (b * (b - 1)).sum(1)
    return _ari_from_sums(R, A, Bp, N, fg_points, skip_empty_fg)


def _ari_sparse(c: _SparseTable, ignore_background: bool, skip_empty_fg: bool) -> np.ndarray:
    """``_ari_from_counts`` of a sparse table: the same sums, over the non-zero counts only (zero
    cells add nothing to any of them), so the value is the same float64."""
    n, rows, cols = c.counts.astype(np.float64), c.rows, c.cols
    fg = rows > 0
    fg_points = n[fg].sum(keepdims=True)
    if ignore_background:
        n, rows, cols = n[fg], rows[fg] - 1, cols[fg]
    a = np.bincount(rows, weights=n, minlength=c.kt - ignore_background)
    b = np.bincount(cols, weights=n, minlength=c.kp)
    N = a.sum(keepdims=True)
    R = (n * (n - 1)).sum(keepdims=True)
    A = (a * (a - 1)).sum(keepdims=True)
    Bp = (b * (b - 1)).sum(keepdims=True)
    return _ari_from_sums(R, A, Bp, N, fg_points, skip_empty_fg)


def _ari_from_sums(R: Any, A: Any, Bp: Any, N: Any, fg_points: Any, skip_empty_fg: bool) -> Any:
    """ARI [b] from the pair sums [b] (numpy or torch) of ``_ari_from_counts``."""
    xp = torch if isinstance(R, torch.Tensor) else np
    P = N * (N - 1)
    E = A * Bp / (P.clamp(min=1) if xp is torch else np.maximum(P, 1))
    M = (A + Bp) / 2
    den = M - E
    one = (R == A) & (R == Bp) | (den == 0)
    safe = xp.where(one, xp.ones_like(den), den)
    out = xp.where(one, xp.ones_like(den), (R - E) / safe)
    if skip_empty_fg:
        out = xp.where(fg_points > 0, out, xp.full_like(out, float("nan")))
    return out


def ari(
    true_ids: Any, pred_ids: Any, *, ignore_background: bool = False, valid: Any = None, skip_empty_fg: bool = False
) -> Any:
    """Adjusted Rand index per sample (image, or whole video over ``T·H·W``), float64 ``[B]``.

    Args:
        true_ids: int ``[B,T,H,W]`` GT ids, 0 = background.
        pred_ids: int ``[B,T,H,W]`` predicted ids, or float soft masks ``[B,T,K,H,W]`` (argmax over K).
        ignore_background: FG-ARI: count only points whose GT id is not 0 (``fg_ari``).
        valid: optional bool ``[B,T,H,W]``; points where it is False are not counted.
        skip_empty_fg: samples without any counted GT-foreground point become NaN instead of
            scoring 1.0 (``summarize`` reports them as ``n_skipped``).

    Degenerate samples (N < 2, both one cluster, both all-singletons) score 1.0 as scikit-learn.
    """
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    v = prepare_valid(valid, ids)
    vals = _per_sample(ids, v, lambda c: _ari_from_counts(c, ignore_background, skip_empty_fg))
    return wrap_output(vals, ids.out_kind, ids.device)


def fg_ari(true_ids: Any, pred_ids: Any, *, valid: Any = None, skip_empty_fg: bool = False) -> Any:
    """FG-ARI: ARI over the points whose GT id is not 0 (``ari(..., ignore_background=True)``)."""
    return ari(true_ids, pred_ids, ignore_background=True, valid=valid, skip_empty_fg=skip_empty_fg)


def ari_frame(
    true_ids: Any, pred_ids: Any, *, ignore_background: bool = False, valid: Any = None, skip_empty_fg: bool = False
) -> Any:
    """Mean over frames of the per-frame ARI, float64 ``[B]`` (the IODINE per-frame protocol, §1).

    With ``skip_empty_fg`` frames without GT foreground are left out of the mean, and a video
    with no such frame at all is NaN (skipped).
    """
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    v = prepare_valid(valid, ids)
    B, T = ids.shape[:2]
    vals = _per_sample(ids, v, lambda c: _ari_from_counts(c, ignore_background, skip_empty_fg), flat_frames=True)
    vals = vals.reshape(B, T)
    if skip_empty_fg:
        vals = _nanmean_rows(vals)
    else:
        vals = vals.mean(1)
    return wrap_output(vals, ids.out_kind, ids.device)


def fg_ari_frame(true_ids: Any, pred_ids: Any, *, valid: Any = None, skip_empty_fg: bool = False) -> Any:
    """Mean over frames of the per-frame FG-ARI (``ari_frame(..., ignore_background=True)``)."""
    return ari_frame(true_ids, pred_ids, ignore_background=True, valid=valid, skip_empty_fg=skip_empty_fg)


def _nanmean_rows(x: Any) -> Any:
    """Mean over axis 1 ignoring NaN; NaN where a row is all NaN (no warning)."""
    xp = torch if isinstance(x, torch.Tensor) else np
    ok = ~xp.isnan(x)
    cnt = ok.sum(1)
    s = xp.where(ok, x, xp.zeros_like(x)).sum(1)
    cnt_f = cnt.to(torch.float64) if xp is torch else cnt.astype(np.float64)
    return xp.where(cnt > 0, s / xp.where(cnt > 0, cnt_f, xp.ones_like(cnt_f)), xp.full_like(s, float("nan")))


# --------------------------------------------------------------------------------------------
# object mIoU (§2) and mBO (§3)
# --------------------------------------------------------------------------------------------
def _tables_numpy(c: Any) -> np.ndarray:
    return c.cpu().numpy() if isinstance(c, torch.Tensor) else c


def _iou_tables(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact IoU ``n_ij / (a_i + b_j − n_ij)`` of every (GT, pred) pair, 0 where the union is 0 (§0)."""
    a = c.sum(2)
    b = c.sum(1)
    union = a[:, :, None] + b[:, None, :] - c
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, c / np.maximum(union, 1), 0.0)
    return iou, a, b


def _gt_rows(a: np.ndarray, include_background: bool) -> np.ndarray:
    """Bool [b, Kt]: the GT masks that count (non-empty; id 0 only with include_background)."""
    rows = a > 0
    if not include_background:
        rows[:, 0] = False
    return rows


def _miou_from_counts(c: Any, include_background: bool) -> np.ndarray:
    """Hungarian mIoU per table: Σ matched IoU / K_gt; NaN when K_gt = 0 (§2 default)."""
    if isinstance(c, _SparseTable):
        return _miou_sparse(c, include_background)
    c = _tables_numpy(c)
    iou, a, b = _iou_tables(c)
    rows = _gt_rows(a, include_background)
    k_gt = rows.sum(1)
    out = np.full(c.shape[0], np.nan)
    iou_r = np.where(rows[:, :, None], iou, 0.0)
    best = iou_r.max(2)  # every counted GT row overlaps some prediction, so best > 0 there
    arg = iou_r.argmax(2)
    # Shortcut: when the per-row maxima lie in distinct columns, taking them is an assignment that
    # reaches the upper bound Σ_i max_j IoU_ij, hence optimal; only the other samples need scipy.
    kp = c.shape[2]
    bidx = np.broadcast_to(np.arange(c.shape[0])[:, None], arg.shape)
    hits = np.bincount((bidx * kp + arg)[rows], minlength=c.shape[0] * kp).reshape(c.shape[0], kp)
    easy = (hits.max(1) <= 1) & (k_gt > 0)
    out[easy] = best.sum(1)[easy] / k_gt[easy]
    for s in np.nonzero(~easy & (k_gt > 0))[0]:
        r = np.nonzero(rows[s])[0]
        cols = np.nonzero(b[s] > 0)[0]  # every predicted id present, background slot included
        m = iou[s][np.ix_(r, cols)]
        ri, ci = linear_sum_assignment(m, maximize=True)
        out[s] = m[ri, ci].sum() / len(r)  # unmatched GT masks (K_gt > C_pred) add 0
    return out


def _sparse_best(c: _SparseTable, include_background: bool) -> tuple[np.ndarray, ...]:
    """Per counted GT row of a sparse table: (rows mask [kt], row, col, IoU of its non-zero cells,
    best IoU per row scattered into [kt], the column of the first best IoU of each counted row)."""
    a, b = c.marginals()
    counted = _gt_rows(a[None], include_background)[0]
    keep = counted[c.rows]
    r, col, n = c.rows[keep], c.cols[keep], c.counts[keep]
    iou = n / (a[r] + b[col] - n)  # n > 0, so the union is > 0
    order = np.lexsort((col, -iou, r))  # per row: best IoU first, lowest column among ties (argmax)
    first = order[np.r_[True, r[order][1:] != r[order][:-1]]] if len(order) else order
    best = np.zeros(c.kt)
    best[r[first]] = iou[first]
    return counted, r, col, iou, best, col[first]


def _miou_sparse(c: _SparseTable, include_background: bool) -> np.ndarray:
    """``_miou_from_counts`` of a sparse table. Pairs without overlap have IoU 0 and never change
    the optimum, so the matching splits into the connected blocks of overlapping (GT, pred) masks,
    each solved alone: by its row maxima when they lie in distinct columns (as the dense
    shortcut), by its largest IoU when it has one GT or one predicted mask, else by the Hungarian
    algorithm on the block (dense; refused above ``MAX_TABLE_CELLS``). Equal to the dense value
    up to float rounding."""
    counted, r, col, iou, best, best_col = _sparse_best(c, include_background)
    k_gt = int(counted.sum())
    if k_gt == 0:
        return np.array([np.nan])
    hits = np.bincount(best_col, minlength=c.kp)
    if hits.max() <= 1:  # the row maxima form an assignment: the upper bound is reached
        return np.array([best.sum() / k_gt])
    n_comp, label = connected_components(coo_array((iou, (r, c.kt + col)), shape=(c.kt + c.kp,) * 2), directed=False)
    row_comp, edge_comp = label[: c.kt], label[: c.kt][r]
    best_rows = np.nonzero(counted)[0]  # ascending, as best_col
    clash = np.zeros(n_comp, bool)
    clash[row_comp[best_rows][hits[best_col] > 1]] = True
    n_rows = np.bincount(row_comp[best_rows], minlength=n_comp)
    n_cols = np.bincount(label[c.kt :][np.unique(col)], minlength=n_comp)
    single = clash & (np.minimum(n_rows, n_cols) == 1)  # one mask on a side: its largest IoU
    comp_max = np.zeros(n_comp)
    np.maximum.at(comp_max, edge_comp, iou)
    total = best[best_rows][~clash[row_comp[best_rows]]].sum() + comp_max[single].sum()
    hard = np.nonzero(clash & ~single)[0]
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.searchsorted(edge_comp[order], np.stack([hard, hard + 1]))
    for lo, hi in bounds.T:
        e = order[lo:hi]
        ur, ri = np.unique(r[e], return_inverse=True)
        uc, ci = np.unique(col[e], return_inverse=True)
        check_table_size(
            (len(ur), len(uc)),
            "miou",
            f": {len(ur)} GT masks overlap {len(uc)} predicted masks in one connected block, "
            f"too large for the Hungarian matching; use mbo or ari for such inputs",
        )
        m = np.zeros((len(ur), len(uc)))
        m[ri, ci] = iou[e]
        i, j = linear_sum_assignment(m, maximize=True)
        total += m[i, j].sum()
    return np.array([total / k_gt])


def _mbo_from_counts(c: Any) -> np.ndarray:
    """Mean over non-empty foreground GT masks of the best IoU over all predictions (§3)."""
    if isinstance(c, _SparseTable):
        counted, *_, best, _ = _sparse_best(c, include_background=False)
        k_gt = int(counted.sum())
        return np.array([np.where(counted, best, 0.0).sum() / k_gt if k_gt else np.nan])
    c = _tables_numpy(c)
    iou, a, _ = _iou_tables(c)
    rows = _gt_rows(a, include_background=False)
    k_gt = rows.sum(1)
    best = np.where(rows, iou.max(2), 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k_gt > 0, best / np.maximum(k_gt, 1), np.nan)


_CLEVRTEX_HINT = (
    ": the ClevrTex evaluator matches K x K padded mask stacks (K = the larger id count); "
    "use miou for inputs with this many ids"
)


def _clevrtex_from_counts(c: Any, soft_k: int | None, foreground: bool) -> np.ndarray:
    """Port of ``CLEVRTEX_Evaluator.update`` mIoU per table (§2 ``miou_clevrtex``).

    Mask stacks, per sample: predictions have ``Kp`` channels (K of soft masks, else the largest
    predicted id + 1), GT ``max(largest GT id + 1, Kp)``; both are padded with empty masks to
    ``K``. IoUs are float32 as in the reference (so that its assignment and tie-breaks are
    reproduced); entries with an empty mask are 0. ``linear_sum_assignment(iou.T, maximize=True)``
    aligns predictions to GT slots and
    ``mIoU = Σ_k IoU_k / #{k : GT_k non-empty or aligned pred_k non-empty}``; ``foreground`` drops
    GT slot 0 and divides by ``num_pairs − 1`` (NaN when that is 0). The reference takes the GT
    channel count over its batch; ocbench takes it per sample (the reference run with batch 1).
    The K x K matrix is refused above ``MAX_TABLE_CELLS`` (ValueError).
    """
    if isinstance(c, _SparseTable):
        kp = soft_k if soft_k is not None else int(c.cols.max()) + 1
        K = max(int(c.rows.max()) + 1, kp)
        check_table_size((K, K), "miou_clevrtex", _CLEVRTEX_HINT)
        c = c.dense()
    c = _tables_numpy(c)
    out = np.full(c.shape[0], np.nan)
    for s in range(c.shape[0]):
        cs = c[s]
        a, b = cs.sum(1), cs.sum(0)
        kp = soft_k if soft_k is not None else int(np.nonzero(b)[0].max()) + 1
        kt = max(int(np.nonzero(a)[0].max()) + 1 if a.any() else 1, kp)
        K = max(kt, kp)
        check_table_size((K, K), "miou_clevrtex", _CLEVRTEX_HINT)
        n = np.zeros((K, K), np.int64)  # [true, pred]
        r_, c_ = min(cs.shape[0], K), min(cs.shape[1], K)
        n[:r_, :c_] = cs[:r_, :c_]
        at, bp = n.sum(1), n.sum(0)
        union = at[:, None] + bp[None, :] - n
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = (n.astype(np.float32) / union.astype(np.float32)).astype(np.float32)
        iou[at == 0, :] = 0.0
        iou[:, bp == 0] = 0.0
        iou = np.nan_to_num(iou, nan=0.0, posinf=0.0, neginf=0.0)
        true_ind, pred_ind = linear_sum_assignment(iou, maximize=True)
        ious = iou[true_ind, pred_ind].astype(np.float64)
        num_pairs = int(((at > 0) | (bp[pred_ind] > 0)).sum())
        if foreground:
            out[s] = ious[1:].sum() / (num_pairs - 1) if num_pairs > 1 else np.nan
        else:
            out[s] = ious.sum() / num_pairs if num_pairs > 0 else np.nan
    return out


def miou(true_ids: Any, pred_ids: Any, *, include_background: bool = False) -> Any:
    """Object mIoU with Hungarian matching, float64 ``[B]`` (§2 default; video: ``T·H·W`` volumes).

    GT masks are the non-empty ids > 0 (id 0 too with ``include_background``, SlotDiffusion's
    convention); predicted masks are all predicted ids present, background slot included. The
    matching maximises the total IoU; unmatched GT masks score 0, extra predictions cost nothing.
    Value = Σ matched IoU / K_gt; samples with K_gt = 0 are NaN (skipped). With thousands of ids on
    both sides each connected block of overlapping masks is matched alone; a block whose matrix
    exceeds ``_checks.MAX_TABLE_CELLS`` raises ValueError.
    """
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    vals = _per_sample(ids, None, lambda c: _miou_from_counts(c, include_background))
    return wrap_output(vals, ids.out_kind, ids.device)


def mbo(true_ids: Any, pred_ids: Any) -> Any:
    """Mean best overlap, float64 ``[B]`` (§3): per foreground GT mask the best IoU over all
    predicted masks (one prediction may serve several), averaged; NaN without foreground GT."""
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    vals = _per_sample(ids, None, _mbo_from_counts)
    return wrap_output(vals, ids.out_kind, ids.device)


def miou_clevrtex(true_ids: Any, pred_ids: Any, *, foreground: bool = False) -> Any:
    """ClevrTex's mIoU (``CLEVRTEX_Evaluator``), float64 ``[B]``; unmatched non-empty predictions
    lower the score. ``foreground=True`` is its ``mIoU_fg`` (also ``miou_clevrtex_fg``). Its K x K
    matrix (K = the larger id count) is refused above ``_checks.MAX_TABLE_CELLS`` (ValueError)."""
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    vals = _per_sample(ids, None, lambda c: _clevrtex_from_counts(c, ids.soft_k, foreground))
    return wrap_output(vals, ids.out_kind, ids.device)


def miou_clevrtex_fg(true_ids: Any, pred_ids: Any) -> Any:
    """``miou_clevrtex(..., foreground=True)``: GT slot 0 dropped, divided by ``num_pairs − 1``."""
    return miou_clevrtex(true_ids, pred_ids, foreground=True)


# --------------------------------------------------------------------------------------------
# several metrics from one pass (used by SegmentationAccumulator)
# --------------------------------------------------------------------------------------------
SEGMENTATION_METRICS = (
    "ari",
    "fg_ari",
    "ari_frame",
    "fg_ari_frame",
    "miou",
    "miou_bg",
    "mbo",
    "miou_clevrtex",
    "miou_clevrtex_fg",
)


def segmentation_metrics(
    true_ids: Any,
    pred_ids: Any,
    metrics: tuple[str, ...] = ("ari", "fg_ari", "miou", "mbo"),
    *,
    skip_empty_fg: bool = False,
) -> dict[str, Any]:
    """Several per-sample metrics (names in ``SEGMENTATION_METRICS``) from one contingency pass
    (plus one per-frame pass for ``*_frame``); ``miou_bg`` is ``miou(include_background=True)``.
    ``skip_empty_fg`` applies to the ARI family. Returns ``{name: float64 [B]}``."""
    unknown = [m for m in metrics if m not in SEGMENTATION_METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; expected names from {SEGMENTATION_METRICS}")
    ids = prepare_pair(true_ids, pred_ids, check_values=False)
    fns: dict[str, Callable[[Any], Any]] = {
        "ari": lambda c: _ari_from_counts(c, False, skip_empty_fg),
        "fg_ari": lambda c: _ari_from_counts(c, True, skip_empty_fg),
        "miou": lambda c: _miou_from_counts(c, False),
        "miou_bg": lambda c: _miou_from_counts(c, True),
        "mbo": _mbo_from_counts,
        "miou_clevrtex": lambda c: _clevrtex_from_counts(c, ids.soft_k, False),
        "miou_clevrtex_fg": lambda c: _clevrtex_from_counts(c, ids.soft_k, True),
    }
    out: dict[str, Any] = {}
    whole = [m for m in metrics if m in fns]
    if whole:
        parts: dict[str, list] = {m: [] for m in whole}
        for _, c in _count_chunks(ids, None):
            for m in whole:
                parts[m].append(fns[m](c))
        for m in whole:
            if ids.backend == "torch":
                v = torch.cat([torch.as_tensor(x, dtype=torch.float64, device=ids.device) for x in parts[m]])
            else:
                v = np.concatenate([np.asarray(x, np.float64) for x in parts[m]])
            out[m] = wrap_output(v, ids.out_kind, ids.device)
    frame = [m for m in metrics if m.endswith("_frame")]
    if frame:
        B, T = ids.shape[:2]
        for m in frame:
            v = _per_sample(
                ids, None, lambda c, bg=(m == "fg_ari_frame"): _ari_from_counts(c, bg, skip_empty_fg), flat_frames=True
            ).reshape(B, T)
            v = _nanmean_rows(v) if skip_empty_fg else v.mean(1)
            out[m] = wrap_output(v, ids.out_kind, ids.device)
    return {m: out[m] for m in metrics}
