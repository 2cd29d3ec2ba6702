"""Segmentation metrics: ARI / FG-ARI, object mIoU (two conventions) and mBO (metrics.md §0-§3).

Every metric here is a function of one contingency table per sample, ``n[i, j]`` = number of
counted points with GT id ``i`` and predicted id ``j`` (row 0 is always the GT background). The
tables of a whole batch come from one ``bincount`` of ``(sample, gt, pred)`` keys, chunked so the
key array stays in cache; for video the ``T·H·W`` voxels of a clip form one table (§0 "video").
Hungarian matching (mIoU) runs per sample on the CPU with ``scipy.optimize.linear_sum_assignment``.

Per-sample outputs are float64 ``[B]``: torch in -> torch on the input's device, numpy in -> numpy;
NaN marks a skipped sample (``summarize`` counts them as ``n_skipped``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._checks import Ids, prepare_pair, prepare_valid, wrap_output

__all__ = ["ari", "fg_ari", "ari_frame", "fg_ari_frame", "contingency", "miou", "miou_clevrtex",
           "miou_clevrtex_fg", "mbo"]

# Pixels per bincount call on the CPU: 2**18 keys (~0.5 MiB as uint16) stay in cache; measured
# ~5x faster than one bincount over a whole 10k-image batch (benchmarks/bench_metrics.py).
_CHUNK_PIXELS = 1 << 18
# On an accelerator fewer, larger calls are better; this bounds the int64 key array (128 MiB).
_TORCH_CHUNK_PIXELS = 1 << 24
# Above this many (gt, pred) cells per sample the ids are first remapped to their distinct values.
_MAX_DENSE_CELLS = 1 << 16


# --------------------------------------------------------------------------------------------
# contingency tables
# --------------------------------------------------------------------------------------------
def _np_counts(t: np.ndarray, p: np.ndarray, valid: np.ndarray | None, kt: int, kp: int) -> np.ndarray:
    """int64 [b, kt, kp] tables of b samples (t, p: [b, N] ids < kt, kp); invalid points dropped."""
    b = t.shape[0]
    rows = kt + (valid is not None)  # invalid points go to an extra GT row that is cut off
    size = rows * kp
    total = b * size
    kd = np.uint16 if total <= (1 << 16) else (np.uint32 if total <= (1 << 32) else np.int64)
    key = t.astype(kd)
    if valid is not None:
        key[~valid] = kt
    key *= kd(kp)
    np.add(key, p, out=key, casting="unsafe")
    if b > 1:
        key += (np.arange(b, dtype=kd) * kd(size))[:, None]
    c = np.bincount(key.ravel(), minlength=total).reshape(b, rows, kp)
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


def _count_chunks(ids: Ids, valid: Any, flat_frames: bool = False) -> Iterator[tuple[slice, Any]]:
    """Yield (sample slice, int64 tables [b, Kt, Kp]) over the batch.

    ``flat_frames`` treats every frame as its own sample (``*_frame`` metrics). Tables are numpy on
    the CPU backend and torch on the input's device otherwise. Row i / column j are ids i / j,
    except when ids were remapped (more than ``_MAX_DENSE_CELLS`` cells); row 0 is the GT
    background in both cases.
    """
    t, p = ids.true, ids.pred
    B, T, H, W = ids.shape
    if flat_frames:
        B, T = B * T, 1
    n = T * H * W
    t = t.reshape(B, n)
    p = p.reshape(B, n)
    v = valid.reshape(B, n) if valid is not None else None
    kt, kp = ids.true_max + 1, ids.pred_max + 1
    dense = kt * kp <= _MAX_DENSE_CELLS
    per = _TORCH_CHUNK_PIXELS if ids.backend == "torch" else _CHUNK_PIXELS
    step = max(1, per // n) if dense else 1
    counts = _torch_counts if ids.backend == "torch" else _np_counts
    for lo in range(0, B, step):
        sl = slice(lo, min(B, lo + step))
        tc, pc = t[sl], p[sl]
        vc = v[sl] if v is not None else None
        if dense:
            yield sl, counts(tc, pc, vc, kt, kp)
        else:
            tr, kt_c = _remap(tc, keep_zero=True)
            pr, kp_c = _remap(pc, keep_zero=False)
            yield sl, counts(tr, pr, vc, kt_c, kp_c)


def contingency(true_ids: Any, pred_ids: Any, *, valid: Any = None) -> list[np.ndarray]:
    """Per-sample contingency tables ``n[i, j]`` (GT id i x predicted id j) over ``T·H·W``, int64.

    A helper for inspection and tests (the metrics use the same code internally). Tables are
    ``[max_true_id+1, max_pred_id+1]`` numpy arrays.
    """
    ids = prepare_pair(true_ids, pred_ids)
    v = prepare_valid(valid, ids)
    out: list[np.ndarray] = []
    for _, c in _count_chunks(ids, v):
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


def ari(true_ids: Any, pred_ids: Any, *, ignore_background: bool = False, valid: Any = None,
        skip_empty_fg: bool = False) -> Any:
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
    ids = prepare_pair(true_ids, pred_ids)
    v = prepare_valid(valid, ids)
    vals = _per_sample(ids, v, lambda c: _ari_from_counts(c, ignore_background, skip_empty_fg))
    return wrap_output(vals, ids.out_kind, ids.device)


def fg_ari(true_ids: Any, pred_ids: Any, *, valid: Any = None, skip_empty_fg: bool = False) -> Any:
    """FG-ARI: ARI over the points whose GT id is not 0 (``ari(..., ignore_background=True)``)."""
    return ari(true_ids, pred_ids, ignore_background=True, valid=valid, skip_empty_fg=skip_empty_fg)


def ari_frame(true_ids: Any, pred_ids: Any, *, ignore_background: bool = False, valid: Any = None,
              skip_empty_fg: bool = False) -> Any:
    """Mean over frames of the per-frame ARI, float64 ``[B]`` (the IODINE per-frame protocol, §1).

    With ``skip_empty_fg`` frames without GT foreground are left out of the mean, and a video
    with no such frame at all is NaN (skipped).
    """
    ids = prepare_pair(true_ids, pred_ids)
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
