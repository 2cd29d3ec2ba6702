"""Identity metrics IDF1, IDP, IDR (Ristani et al. 2016), as py-motmetrics 1.4.0 computes them
(docs/metrics.md §6).

Per video: ``tp[o, h]`` is the number of frames in which GT object ``o`` and hypothesis ``h`` are
both present and may pair (their CLEAR-MOT distance is not forbidden: IoU at or above the
threshold; motmetrics' raw events with a finite distance). The global min-cost bipartite
assignment of trajectories (motmetrics ``id_global_assignment``: cost ``fp + fn`` with a dummy
partner for every trajectory) is a maximum-weight matching of ``tp``, so

    IDTP = max over one-to-one matchings of Σ tp[o, h],   IDFN = #GT dets − IDTP,   IDFP = #pred dets − IDTP
    IDF1 = 2·IDTP / (#GT dets + #pred dets),   IDP = IDTP / #pred dets,   IDR = IDTP / #GT dets

Each video has its own matching; the dataset value sums IDTP and the detection counts over videos
(motmetrics ``OVERALL`` row, TrackEval ``combine_sequences``). A ratio with a zero denominator is
NaN (motmetrics' ``quiet_divide``; TrackEval returns 0 there).

The tables come as padded per-frame *slots*: ``valid [T, S]`` and ``lab [T, S]`` (the label of each
slot; ``None`` when slot ``s`` is label ``s``, as for dense mask ids).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["label_counts", "per_label_sum", "max_matching", "max_matchings", "identity_scores"]


def label_counts(valid: np.ndarray, lab: np.ndarray | None, n: int) -> np.ndarray:
    """Number of frames in which each label is present: int64 ``[n]``."""
    if lab is None:
        return valid.sum(0, dtype=np.int64)
    return np.bincount(lab[valid], minlength=n).astype(np.int64)


def per_label_sum(x: np.ndarray, olab: np.ndarray | None, hlab: np.ndarray | None, n_o: int, n_h: int) -> np.ndarray:
    """``Σ_t x[t, a, b]`` gathered by the labels of the slots: ``[n_o, n_h]`` (``x`` must be zero on
    invalid slots). Frames are added in time order (as TrackEval's loop does)."""
    if olab is None and hlab is None:
        return x.sum(0)
    T, A, B = x.shape
    lo = np.broadcast_to(np.arange(A)[None, :], (T, A)) if olab is None else olab
    lh = np.broadcast_to(np.arange(B)[None, :], (T, B)) if hlab is None else hlab
    key = (lo[:, :, None] * n_h + lh[:, None, :]).ravel()
    xs = x.ravel()
    nz = xs != 0
    if x.dtype == bool:
        return np.bincount(key[nz], minlength=n_o * n_h).reshape(n_o, n_h).astype(np.int64)
    return np.bincount(key[nz], weights=xs[nz], minlength=n_o * n_h).reshape(n_o, n_h)


def max_matching(w: np.ndarray) -> float:
    """Total weight of a maximum-weight one-to-one matching of the non-negative ``w [n_o, n_h]``."""
    nz = w > 0
    if not nz.any():
        return 0.0 if w.dtype.kind == "f" else 0
    rdeg, cdeg = nz.sum(1), nz.sum(0)
    if rdeg.max() <= 1 and cdeg.max() <= 1:  # disjoint pairs: all of them
        return w[nz].sum()
    sub = w[rdeg > 0][:, cdeg > 0]
    r, c = linear_sum_assignment(sub, maximize=True)
    return sub[r, c].sum()


def max_matchings(w: np.ndarray) -> list[int]:
    """``max_matching`` of each ``w[v]`` of ``w [V, n_o, n_h]`` (disjoint pairs summed for all at once)."""
    nz = w > 0
    simple = (nz.sum(2).max(1, initial=0) <= 1) & (nz.sum(1).max(1, initial=0) <= 1)
    out = w.sum((1, 2))
    for v in np.flatnonzero(~simple).tolist():
        out[v] = max_matching(w[v])
    return out.tolist()


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


def identity_scores(idtp: int, num_objects: int, num_predictions: int) -> dict:
    """IDF1, IDP, IDR and the counts from IDTP and the GT / predicted detection counts."""
    idtp, no, npred = int(idtp), int(num_objects), int(num_predictions)
    return {
        "idf1": _div(2 * idtp, no + npred),
        "idp": _div(idtp, npred),
        "idr": _div(idtp, no),
        "idtp": idtp,
        "idfn": no - idtp,
        "idfp": npred - idtp,
    }
